/* 0xinf console: the little behaviour pages need, in plain JS (no build step).
   Every piece is progressive: without JS, forms post and pages render as they are. */
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : null;
  }

  // htmx requests carry the CSRF token as a header; plain forms carry the hidden field.
  document.addEventListener("htmx:configRequest", function (event) {
    var token = csrfToken();
    if (token) event.detail.headers["X-CSRF-Token"] = token;
  });

  // Times arrive as UTC in <time datetime>; show them in the viewer's own time zone.
  var formats = {
    datetime: { dateStyle: "medium", timeStyle: "short" },
    date: { dateStyle: "medium" },
    time: { timeStyle: "medium" }
  };
  function localTimes(root) {
    root.querySelectorAll("time[data-local]").forEach(function (el) {
      var when = new Date(el.getAttribute("datetime"));
      if (isNaN(when)) return;
      var style = formats[el.getAttribute("data-local")] || formats.datetime;
      el.textContent = new Intl.DateTimeFormat(undefined, style).format(when);
      el.title = when.toISOString().replace(".000Z", "Z");
    });
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "offscreen";
    document.body.appendChild(area);
    area.select();
    var ok = document.execCommand("copy");
    area.remove();
    return ok ? Promise.resolve() : Promise.reject(new Error("copy failed"));
  }

  function wireCopy(root) {
    root.querySelectorAll("[data-copy]").forEach(function (button) {
      if (button.dataset.wired) return;
      button.dataset.wired = "1";
      var text = button.querySelector("[data-copy-label]") || button;
      var label = text.textContent;
      button.addEventListener("click", function () {
        var source = document.getElementById(button.getAttribute("data-copy"));
        if (!source) return;
        copyText(source.textContent).then(
          function () { text.textContent = "Copied"; },
          function () { text.textContent = "Select and copy"; }
        ).then(function () {
          setTimeout(function () { text.textContent = label; }, 1600);
        });
      });
    });
  }

  // Tabs: click or arrow keys; one tab in the tab order (WAI-ARIA tabs pattern).
  function wireTabs(root) {
    root.querySelectorAll("[data-tabs]").forEach(function (box) {
      if (box.dataset.wired) return;
      box.dataset.wired = "1";
      var tabs = Array.prototype.slice.call(box.querySelectorAll('[role="tab"]'));
      function select(tab, focus) {
        tabs.forEach(function (t) {
          var on = t === tab;
          t.setAttribute("aria-selected", on ? "true" : "false");
          t.tabIndex = on ? 0 : -1;
          document.getElementById(t.getAttribute("aria-controls")).hidden = !on;
        });
        if (focus) tab.focus();
      }
      tabs.forEach(function (tab, i) {
        tab.addEventListener("click", function () { select(tab, false); });
        tab.addEventListener("keydown", function (event) {
          var next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[event.key];
          if (next === undefined) return;
          event.preventDefault();
          select(tabs[(next + tabs.length) % tabs.length], true);
        });
      });
    });
  }

  function wire(root) {
    localTimes(root);
    wireCopy(root);
    wireTabs(root);
  }

  document.addEventListener("DOMContentLoaded", function () {
    wire(document);

    // The org switcher submits on change; its button stays for visitors without JS.
    document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
      select.addEventListener("change", function () { select.form.requestSubmit(); });
    });
    document.querySelectorAll("[data-js-hide]").forEach(function (el) { el.hidden = true; });

    // Forms that destroy something ask first; without JS they post straight away.
    document.addEventListener("submit", function (event) {
      var form = event.target.closest("form[data-confirm]");
      if (form && !window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
    });

    document.querySelectorAll("[data-back]").forEach(function (button) {
      if (window.history.length > 1) button.hidden = false;
      button.addEventListener("click", function () { window.history.back(); });
    });

    document.addEventListener("click", function (event) {
      var dismiss = event.target.closest("[data-dismiss]");
      if (dismiss) dismiss.closest("[data-flash]").remove();
      // Close an open menu when clicking elsewhere.
      document.querySelectorAll("details.menu[open]").forEach(function (menu) {
        if (!menu.contains(event.target)) menu.open = false;
      });
    });
    document.addEventListener("keydown", function (event) {
      if (event.key !== "Escape") return;
      document.querySelectorAll("details.menu[open]").forEach(function (menu) {
        menu.open = false;
        menu.querySelector("summary").focus();
      });
    });
  });

  // Content htmx swaps in gets the same treatment.
  document.addEventListener("htmx:load", function (event) { wire(event.target); });
})();
