"""Figures from the load generator's raw results, judged against DESIGN.md §11.

The budgets live here, next to the table that prints them, so a changed budget is one edit
and the JSON in `.oxinf/bench/last.json` always says which targets a run was judged by.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

OVERHEAD_P50_MS = 1.5
OVERHEAD_P99_MS = 8.0
BILLED_RPS = 800.0
MAX_ERROR_RATE = 0.01
CLIENT_HEAVY_PCT = 50.0  # of one core: above this the client competes with the API


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank: a value that was actually observed, never an interpolation."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def stats(raw: dict[str, Any]) -> dict[str, Any]:
    lat = sorted(raw["latencies_us"])
    window = raw["window_s"] or math.nan
    done = raw["ok"] + raw["errors"]
    return {
        "measured_ok": raw["measured_ok"],
        "ok_total": raw["ok"],
        "http_200_total": raw["statuses"].get("200", 0),
        "errors": raw["errors"],
        "error_rate": raw["errors"] / done if done else 0.0,
        "error_samples": raw["error_samples"],
        "statuses": raw["statuses"],
        "window_s": round(raw["window_s"], 3),
        "requests_per_s": raw["measured_ok"] / window,
        "p50_ms": percentile(lat, 50) / 1000,
        "p90_ms": percentile(lat, 90) / 1000,
        "p99_ms": percentile(lat, 99) / 1000,
        "max_ms": (lat[-1] / 1000) if lat else math.nan,
        "mean_ms": (sum(lat) / len(lat) / 1000) if lat else math.nan,
        "loadgen_cpu_pct": 100 * raw["cpu_s"] / window,
        "reconnects": raw["reconnects"],
    }


@dataclass(frozen=True)
class Budget:
    name: str
    target: str
    measured: str
    met: bool
    value: float | None = None  # the measured figure, for tools reading last.json
    limit: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "target": self.target,
            "measured": self.measured,
            "value": self.value,
            "limit": self.limit,
            "result": "PASS" if self.met else "MISS",
        }


def budgets(phases: dict[str, dict[str, Any]], ledger_ok: bool | None) -> list[Budget]:
    lat, tput = phases["latency_1c"], phases["throughput"]
    p50 = lat["relay"]["p50_ms"] - lat["direct"]["p50_ms"]
    p99 = lat["relay"]["p99_ms"] - lat["direct"]["p99_ms"]
    rps = tput["relay"]["requests_per_s"]
    return [
        Budget(
            "relay overhead p50, 1 connection",
            f"≤ {OVERHEAD_P50_MS:g} ms",
            _ms(p50),
            p50 <= OVERHEAD_P50_MS,
            p50,
            OVERHEAD_P50_MS,
        ),
        Budget(
            "relay overhead p99, 1 connection",
            f"≤ {OVERHEAD_P99_MS:g} ms",
            _ms(p99),
            p99 <= OVERHEAD_P99_MS,
            p99,
            OVERHEAD_P99_MS,
        ),
        Budget(
            f"billed requests/s, {tput['connections']} connections",
            f"≥ {BILLED_RPS:,.0f}",
            f"{rps:,.0f}",
            rps >= BILLED_RPS,
            rps,
            BILLED_RPS,
        ),
        Budget(
            "ledger drift",
            "none",
            "none" if ledger_ok else ("not checked" if ledger_ok is None else "DRIFT"),
            bool(ledger_ok),
        ),
    ]


def _pct(value: float | None) -> str:
    return "?%" if value is None else f"{value:.0f}%"


def _ms(value: float) -> str:
    return f"{value:.3f} ms"


def _row(cells: list[str], widths: list[int]) -> str:
    out = [cells[0].ljust(widths[0])]
    out += [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
    return "  ".join(out).rstrip()


def render(report: dict[str, Any]) -> str:
    phases = report["phases"]
    lat, tput, stream = phases["latency_1c"], phases["throughput"], phases["stream_1c"]
    machine = report["machine"]
    lines = [
        "",
        f"0xinf bench: relay vs the same upstream called directly ({report['mode']} run, "
        f"{report['elapsed_s']:.0f}s)",
        f"machine: {machine['cpus']} CPUs, {_pct(machine.get('busy_before_start_pct'))} busy "
        f"before start (load average {machine['loadavg_at_start']}); "
        f"PostgreSQL {report['postgres'].get('server_version', '?')} "
        f"(fsync {report['postgres'].get('fsync', '?')}, synchronous_commit "
        f"{report['postgres'].get('synchronous_commit', '?')}); API: 1 uvicorn process, "
        f"billing, request logs and RPM limiting on",
        "",
    ]
    w = [34, 12, 12, 12]
    lines.append(_row(["measurement", "direct", "relay", "relay - direct"], w))
    lines.append(_row(["-" * 34, "-" * 12, "-" * 12, "-" * 14], [34, 12, 12, 14]))
    n = lat["relay"]["measured_ok"]
    for label, key in (("p50", "p50_ms"), ("p90", "p90_ms"), ("p99", "p99_ms")):
        d, r = lat["direct"][key], lat["relay"][key]
        lines.append(_row([f"1 conn latency {label} (n={n})", _ms(d), _ms(r), _ms(r - d)], w))
    c = tput["connections"]
    d, r = tput["direct"], tput["relay"]
    lines.append(
        _row(
            [f"{c} conn requests/s ({tput['duration_s']:g}s)"]
            + [f"{x['requests_per_s']:,.0f}" for x in (d, r)]
            + [""],
            w,
        )
    )
    for label, key in (("p50", "p50_ms"), ("p99", "p99_ms")):
        lines.append(_row([f"{c} conn latency {label}", _ms(d[key]), _ms(r[key]), ""], w))
    lines.append(_row([f"{c} conn errors", str(d["errors"]), str(r["errors"]), ""], w))
    sd, sr = stream["direct"], stream["relay"]
    for label, key in (("p50", "p50_ms"), ("p99", "p99_ms")):
        name = f"stream 1 conn, {label} to [DONE]"
        if label == "p50":
            name += f" (n={sr['measured_ok']})"
        lines.append(_row([name, _ms(sd[key]), _ms(sr[key]), _ms(sr[key] - sd[key])], w))

    lines += ["", _row(["budget (DESIGN.md §11)", "target", "measured", "result"], w)]
    lines.append(_row(["-" * 34, "-" * 12, "-" * 12, "-" * 6], [34, 12, 12, 14]))
    for b in report["budgets"]:
        lines.append(_row([b["name"], b["target"], b["measured"], b["result"]], w))

    lines += [
        "",
        f"CPU, % of one core, over each {c}-connection phase (others: kernel, anything not ours):",
    ]
    order = ("api", "postgres", "upstream", "loadgen", "others")
    for phase in ("direct", "relay"):
        cpu = report["cpu"].get(f"throughput_{phase}", {})
        parts = [f"{k} {cpu[k]:.0f}" for k in order if k in cpu]
        busy = cpu.get("machine_busy")
        tail = f"; machine {busy:.0f}% busy" if busy is not None else ""
        lines.append(f"  {phase:6}  " + ", ".join(parts) + tail)
    per_call = report["cpu_ms_per_call"]
    if per_call.get("throughput"):
        lines.append(
            "  relay CPU per call: "
            + "; ".join(
                f"{label} " + ", ".join(f"{k} {v:.2f} ms" for k, v in per_call[name].items())
                for name, label in (("latency_1c", "1 conn"), ("throughput", f"{c} conn"))
                if per_call.get(name)
            )
            + f" (≥ {BILLED_RPS:,.0f}/s on one API process needs api ≤ "
            f"{1000 / BILLED_RPS:.2f} ms)"
        )
    lines.append(f"  {report['client_verdict']}")
    if report.get("shared_machine"):
        lines.append(f"  WARNING: {report['shared_machine']}")

    ledger = report["ledger"]
    if ledger:
        f = ledger["figures"]
        lines += [
            "",
            f"ledger: {'PASS' if ledger['passed'] else 'FAIL'} (no drift) - "
            f"{f['succeeded_logs']:,} billed calls, charged {f['charged_micros']:,} micros = "
            f"Σ request_logs.cost {f['logged_cost_micros']:,} "
            f"({f['expected_cost_per_call_micros']:,} per call); "
            f"{f['relay_ok_responses']:,} relay 200s seen by the client",
        ]
        for name, ok in ledger["checks"].items():
            lines.append(f"  {'ok  ' if ok else 'FAIL'}  {name}")

    problems = report["harness"]["problems"]
    lines.append("")
    if problems:
        lines.append("HARNESS FAILED:")
        lines += [f"  - {p}" for p in problems]
    else:
        lines.append("harness: ok (errors ≤ 1% in every phase, ledger reconciled)")
    lines.append(f"report written to {report['json_path']}")
    return "\n".join(lines)
