/* 0xinf console charts: draws each [data-chart] box from the JSON block it names, with the
   vendored uPlot. Heights come from integer micros; the legend shows the server's exact
   decimal strings, so the figures people read are never rounded floats. */
(function () {
  "use strict";

  var PALETTE = ["#4f46e5", "#0e9f6e", "#d97706", "#db2777", "#0891b2", "#7c3aed", "#64748b"];

  function css(name, fallback) {
    var v = getComputedStyle(document.documentElement).getPropertyValue(name);
    return (v && v.trim()) || fallback;
  }

  function draw(box) {
    var source = document.getElementById(box.getAttribute("data-chart"));
    if (!source || typeof uPlot === "undefined") return;
    var spec = JSON.parse(source.textContent);
    var text = css("--muted", "#5b6372");
    var grid = css("--border", "#e2e5ea");
    var accent = css("--accent", "#4f46e5");
    var bars = uPlot.paths.bars({ size: [0.7, 48] });
    var data = [spec.x];
    var series = [{
      label: "Day",
      value: function (u, v, s, i) { return i == null ? "—" : spec.days[i]; }
    }];
    spec.series.forEach(function (s, n) {
      var total = n === 0;
      // A day without spend has no bar (null), rather than a zero-height sliver.
      data.push(s.micros.map(function (m) { return total && m === 0 ? null : m / 1e6; }));
      // The total is drawn as bars; each model only speaks in the legend as the cursor
      // moves (lines between days would suggest values no day had).
      series.push({
        label: s.label,
        stroke: total ? accent : PALETTE[n % PALETTE.length],
        fill: total ? accent + "40" : undefined,
        width: 1,
        paths: total ? bars : function () { return null; },
        points: { show: false },
        value: function (u, v, si, i) { return i == null ? "—" : s.text[i]; }
      });
    });
    var axis = { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } };
    var opts = {
      width: size(box).width,
      height: size(box).height,
      series: series,
      scales: {
        x: { time: true, range: function (u, min, max) { return [min - 43200, max + 43200]; } },
        y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; } } },
      axes: [Object.assign({}, axis, { space: 60 }), Object.assign({}, axis, { size: 64 })],
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); },
      legend: { live: true },
      cursor: { points: { size: 7 } }
    };
    box.querySelectorAll(".uplot").forEach(function (el) { el.remove(); });
    var chart = new uPlot(opts, data, box);
    box.setAttribute("data-drawn", "true");
    return chart;
  }

  var charts = [];

  function size(box) {
    return { width: Math.max(box.clientWidth, 280), height: box.clientWidth < 500 ? 220 : 280 };
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-chart]").forEach(function (box) {
      var chart = draw(box);
      if (chart) charts.push({ box: box, chart: chart });
    });
  });
  // Follow the box's width at once (a rotated phone, a narrowed window).
  window.addEventListener("resize", function () {
    charts.forEach(function (c) { c.chart.setSize(size(c.box)); });
  });
})();
