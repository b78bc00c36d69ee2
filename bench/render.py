"""The bench's printed report: one table per kind of measurement, then the §11 budgets.

Everything printed is also in the JSON report (`.oxinf/bench/last.json`); this module only
formats it.
"""

from __future__ import annotations

from typing import Any

from bench.report import BILLED_RPS, CPU_PER_CALL_MS

W = [34, 12, 12, 14]
RULE = ["-" * 34, "-" * 12, "-" * 12, "-" * 14]
SCALE_W = [14, 10, 12, 12, 40]
ORDER = ("api", "postgres", "temporal", "upstream", "loadgen", "others")


def _pct(value: float | None) -> str:
    return "?%" if value is None else f"{value:.0f}%"


def _ms(value: float) -> str:
    return f"{value:.3f} ms"


def _row(cells: list[str], widths: list[int] = W) -> str:
    out = [cells[0].ljust(widths[0])]
    out += [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
    return "  ".join(out).rstrip()


def _per_call(per: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f} ms" for k, v in per.items()) or "?"


def _cpu_line(label: str, cpu: dict[str, float]) -> str:
    parts = [f"{k} {cpu[k]:.0f}" for k in ORDER if k in cpu]
    busy = cpu.get("machine_busy")
    tail = f"; machine {busy:.0f}% busy" if busy is not None else ""
    return f"  {label:10}  " + ", ".join(parts) + tail


def _header(report: dict[str, Any]) -> list[str]:
    machine, pg = report["machine"], report["postgres"]
    return [
        "",
        f"0xinf bench: relay vs the same upstream called directly ({report['mode']} run, "
        f"{report['elapsed_s']:.0f}s)",
        f"machine: {machine['cpus']} CPUs, {_pct(machine.get('busy_before_start_pct'))} busy "
        f"before start (load average {machine['loadavg_at_start']}); "
        f"PostgreSQL {pg.get('server_version', '?')} (fsync {pg.get('fsync', '?')}, "
        f"synchronous_commit {pg.get('synchronous_commit', '?')}); API: 1 uvicorn process "
        "unless said, billing, request logs and RPM limiting on",
        "",
    ]


def _relay(phases: dict[str, Any]) -> list[str]:
    lat, tput, stream = phases["latency_1c"], phases["throughput"], phases["stream_1c"]
    lines = [_row(["measurement", "direct", "relay", "relay - direct"]), _row(RULE)]
    n = lat["relay"]["measured_ok"]
    for label, key in (("p50", "p50_ms"), ("p90", "p90_ms"), ("p99", "p99_ms")):
        d, r = lat["direct"][key], lat["relay"][key]
        lines.append(_row([f"1 conn latency {label} (n={n})", _ms(d), _ms(r), _ms(r - d)]))
    c = tput["connections"]
    d, r = tput["direct"], tput["relay"]
    lines.append(
        _row(
            [f"{c} conn requests/s ({tput['duration_s']:g}s)"]
            + [f"{x['requests_per_s']:,.0f}" for x in (d, r)]
            + [""]
        )
    )
    for label, key in (("p50", "p50_ms"), ("p99", "p99_ms")):
        lines.append(_row([f"{c} conn latency {label}", _ms(d[key]), _ms(r[key]), ""]))
    lines.append(_row([f"{c} conn errors", str(d["errors"]), str(r["errors"]), ""]))
    sd, sr = stream["direct"], stream["relay"]
    for label, key in (("p50", "p50_ms"), ("p99", "p99_ms")):
        name = f"stream 1 conn, {label} to [DONE]"
        if label == "p50":
            name += f" (n={sr['measured_ok']})"
        lines.append(_row([name, _ms(sd[key]), _ms(sr[key]), _ms(sr[key] - sd[key])]))
    return lines


def _gc(report: dict[str, Any]) -> list[str]:
    gc = report.get("gc_pauses")
    if not gc:
        return []
    per = ", ".join(f"gen{g} {n:,}" for g, n in sorted(gc["collections"].items()))
    longest = gc["longest_at_most_ms"]
    # (Past the last bucket it is infinite, and null once written to JSON.)
    bound = "over 1 s" if longest is None or longest == float("inf") else f"≤ {longest:g} ms"
    return [
        "",
        f"GC pauses in the API (relay phases and hot account): {gc['total']:,} collections "
        f"({per}), {gc['paused_ms']:.0f} ms stopped in all, {gc['over_10ms']} over 10 ms, "
        f"longest {bound}",
    ]


def _cpu(report: dict[str, Any]) -> list[str]:
    c = report["phases"]["throughput"]["connections"]
    lines = [
        "",
        f"CPU, % of one core, over each {c}-connection phase (others: kernel, anything not ours):",
        _cpu_line("direct", report["cpu"].get("throughput_direct", {})),
        _cpu_line("relay", report["cpu"].get("throughput_relay", {})),
    ]
    per_call = report["cpu_ms_per_call"]
    if per_call.get("throughput"):
        parts = [
            f"{label} {_per_call(per_call[name])}"
            for name, label in (("latency_1c", "1 conn"), ("throughput", f"{c} conn"))
            if per_call.get(name)
        ]
        lines.append(
            "  relay CPU per billed call: "
            + "; ".join(parts)
            + f" (budget: API + PostgreSQL ≤ {CPU_PER_CALL_MS:g} ms; ≥ {BILLED_RPS:,.0f}/s "
            f"on one API process needs api ≤ {1000 / BILLED_RPS:.2f} ms)"
        )
    lines.append(f"  {report['client_verdict']}")
    return lines


def _scale_out(report: dict[str, Any]) -> list[str]:
    phase = report["phases"].get("scale_out")
    if not phase:
        return []
    c = phase["connections"]
    lines = [
        "",
        f"scale-out: the {c}-connection relay run with the API as 1 and as N processes "
        "(oxinf api --workers N)",
        _row(["API processes", "calls/s", "per process", "p99", "CPU per call"], SCALE_W),
    ]
    for key in sorted(phase["runs"], key=int):
        run = phase["runs"][key]
        lines.append(
            _row(
                [
                    key,
                    f"{run['requests_per_s']:,.0f}",
                    f"{run['requests_per_s'] / int(key):,.0f}",
                    _ms(run["p99_ms"]),
                    _per_call(run["per_call"]),
                ],
                SCALE_W,
            )
        )
    for key in sorted(phase["runs"], key=int):
        lines.append(
            _cpu_line(f"{key} process" + ("es" if key != "1" else ""), phase["runs"][key]["cpu"])
        )
    for key in sorted(phase["runs"], key=int):
        split = phase["runs"][key].get("api_worker_cpu_pct")
        if split:
            lines.append(
                f"  {key} API processes' CPU, each (% of a core): "
                + " / ".join(f"{v:.0f}" for v in split)
            )
    lines.append(f"  verdict: {phase['verdict']}")
    return lines


def _hot(report: dict[str, Any]) -> list[str]:
    phase = report["phases"].get("hot_account")
    if not phase:
        return []
    r, ledger = phase["relay"], report.get("ledger_hot_account") or {}
    f = ledger.get("figures", {})
    statuses = ", ".join(f"{k}: {v:,}" for k, v in sorted(r["statuses"].items()))
    other = sum(v for k, v in r["statuses"].items() if k not in ("200", "402"))
    lines = [
        "",
        f"hot account: {phase['calls']:,} concurrent calls on one org funded for "
        f"{phase['affordable']:,} ({phase['funds_micros']:,} micros), one connection each",
        f"  answered {phase['answered_200_or_402']:,}/{phase['calls']:,} with 200 or 402 "
        f"({statuses}; no answer: {r['errors'] - other}) in {phase['time_s']:.2f} s; "
        f"latency p50 {_ms(r['p50_ms'])}, p99 {_ms(r['p99_ms'])}, max {_ms(r['max_ms'])}",
    ]
    if f:
        lines.append(
            f"  charged {f['charged_micros']:,} of {f['seeded_micros']:,} micros for "
            f"{f['succeeded_logs']:,} billed calls; lowest balance after any entry "
            f"{f['lowest_balance_after_micros']:,}; balance now {f['balance_micros']:,}"
        )
        lines += [f"  {'ok  ' if ok else 'FAIL'}  {n}" for n, ok in ledger["checks"].items()]
    if r["error_samples"]:
        lines.append(f"  e.g. {r['error_samples'][:2]}")
    return lines


def _tasks(report: dict[str, Any]) -> list[str]:
    one, many = report["phases"].get("tasks_1c"), report["phases"].get("tasks_throughput")
    if not one or not many:
        return []
    per = report["cpu_ms_per_call"]
    w = [34, 12, 12, 52]
    lines = [
        "",
        "task submission: POST /v1/tasks → 202 (task row and hold committed, workflow started on "
        "a Temporal dev server; no worker runs, so no task is processed)",
        _row(["measurement", "p50", "p99", "tasks/s; CPU per task"], w),
    ]
    r1, rn = one["relay"], many["relay"]
    lines.append(
        _row(
            [
                f"1 conn (n={r1['measured_ok']})",
                _ms(r1["p50_ms"]),
                _ms(r1["p99_ms"]),
                f"{r1['requests_per_s']:,.0f}/s; " + _per_call(per.get("tasks_1c", {})),
            ],
            w,
        )
    )
    lines.append(
        _row(
            [
                f"{many['connections']} conn ({many['duration_s']:g}s)",
                _ms(rn["p50_ms"]),
                _ms(rn["p99_ms"]),
                f"{rn['requests_per_s']:,.0f} tasks/s",
            ],
            w,
        )
    )
    lines.append(
        f"  {many['connections']} conn CPU per task: {_per_call(per.get('tasks_throughput', {}))}"
    )
    ledger = report.get("ledger_tasks")
    if ledger:
        f = ledger["figures"]
        lines.append(
            f"  books: {f['tasks']:,} live tasks for {f['accepted_202']:,} 202s, "
            f"{f['pending_holds']:,} pending holds of {f['task_cost_micros']:,} micros"
        )
        lines += [f"  {'ok  ' if ok else 'FAIL'}  {n}" for n, ok in ledger["checks"].items()]
    return lines


def _budgets(report: dict[str, Any]) -> list[str]:
    w = [44, 12, 18, 6]
    lines = ["", _row(["budget (DESIGN.md §11)", "target", "measured", "result"], w)]
    lines.append(_row(["-" * 44, "-" * 12, "-" * 18, "-" * 6], w))
    for b in report["budgets"]:
        lines.append(_row([b["name"], b["target"], b["measured"], b["result"]], w))
    return lines


def _ledger(report: dict[str, Any]) -> list[str]:
    ledger = report["ledger"]
    if not ledger:
        return []
    f = ledger["figures"]
    lines = [
        "",
        f"ledger (relay org): {'PASS' if ledger['passed'] else 'FAIL'} (no drift) - "
        f"{f['succeeded_logs']:,} billed calls, charged {f['charged_micros']:,} micros = "
        f"Σ request_logs.cost {f['logged_cost_micros']:,} "
        f"({f['expected_cost_per_call_micros']:,} per call); "
        f"{f['relay_ok_responses']:,} relay 200s seen by the client",
    ]
    lines += [f"  {'ok  ' if ok else 'FAIL'}  {n}" for n, ok in ledger["checks"].items()]
    return lines


def render(report: dict[str, Any]) -> str:
    lines = _header(report) + _relay(report["phases"]) + _cpu(report) + _gc(report)
    lines += _scale_out(report) + _hot(report) + _tasks(report)
    lines += _budgets(report)
    if report.get("shared_machine"):
        lines += ["", f"WARNING: {report['shared_machine']}"]
    lines += _ledger(report)
    problems = report["harness"]["problems"]
    lines.append("")
    if problems:
        lines.append("HARNESS FAILED:")
        lines += [f"  - {p}" for p in problems]
    else:
        lines.append("harness: ok (errors ≤ 1% in every phase, every org's ledger reconciled)")
    lines.append(f"report written to {report['json_path']}")
    return "\n".join(lines)
