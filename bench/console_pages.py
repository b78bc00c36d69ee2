"""Console page times with a busy org: `python -m bench.console_pages` (run by hand).

Starts its own PostgreSQL (pgserver) and the API exactly as `oxinf api` runs it, gives one
org 100,000 request logs (and as many ledger debits) spread over the last 30 days across
five models and three keys, then fetches the credits, usage and requests pages one at a time
as a signed-in owner and reports p50/p95/max per page against the 50 ms p95 budget
(issue 18). Times are taken at the client over localhost, so they include the HTTP round
trip: an upper bound on the server's own time.

The org's people, keys and money go through the domain services; the 100k history rows are
one `generate_series` INSERT each (through the services they would take minutes), shaped
like the relay's rows, and then the nightly rollup runs once as the retention schedule would
(`--no-rollup` skips it, to see the pages on raw logs alone). The bench reports; it does
not gate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from bench.seed import bench_settings
from bench.stack import ROOT, HarnessError, Stack, sigterm_as_interrupt
from config.runtime import identity_config
from config.settings import Settings
from domain.audit.service import SYSTEM
from domain.billing_cycles import retention
from domain.identity import repository as identity_repo
from domain.identity.service import OrgContext, create_user, issue_session
from domain.keys.service import create_key
from domain.ledger import service as ledger
from schema.db import create_engine, session_factory
from schema.migrate import upgrade
from schema.unit_of_work import unit_of_work

WORK_DIR = ROOT / ".oxinf" / "bench-console"
PG_DIR = ROOT / ".oxinf" / "bench-console-pg"
BUDGET_P95_MS = 50.0
MODELS = ("gpt-4o-mini", "gpt-4o", "claude-sonnet", "gemini-flash", "llama-70b")

_LOGS = text(
    """
    INSERT INTO request_logs (id, org_id, api_key_id, model, status, http_status, error_code,
        prompt_tokens, completion_tokens, cost_micros, billing, latency_ms, created_at)
    SELECT 'req_bench' || lpad(g::text, 15, '0'), :org, (CAST(:keys AS uuid[]))[1 + g % 3],
           (CAST(:models AS text[]))[1 + (g * 7) % 5],
           CASE WHEN g % 50 = 0 THEN 'failed' ELSE 'succeeded' END,
           CASE WHEN g % 50 = 0 THEN 502 ELSE 200 END,
           CASE WHEN g % 50 = 0 THEN 'upstream_error' END,
           20 + g % 400, 10 + g % 800, CASE WHEN g % 50 = 0 THEN 0 ELSE 500 + g % 9000 END,
           'platform', 200 + g % 900,
           now() - make_interval(secs => (g::float8 / CAST(:n AS int)) * 30 * 86400)
    FROM generate_series(1, CAST(:n AS int)) AS g
    """
)
_DEBITS = text(
    """
    INSERT INTO ledger_entries (org_id, kind, amount_micros, balance_after_micros,
        idempotency_key, actor, api_key_id, created_at)
    SELECT :org, 'debit', -(500 + g % 9000), CAST(:start AS bigint) - g * 5000,
           'bench-debit:' || g,
           'relay', (CAST(:keys AS uuid[]))[1 + g % 3],
           now() - make_interval(
               secs => ((CAST(:n AS int) - g)::float8 / CAST(:n AS int)) * 30 * 86400)
    FROM generate_series(1, CAST(:n AS int)) AS g
    """
)


@dataclass(frozen=True)
class Org:
    session_token: str
    key_ids: list[uuid.UUID]
    request_id: str


async def seed(settings: Settings, logs: int, *, rollup: bool = True) -> Org:
    assert settings.database_url is not None
    engine = create_engine(settings.database_url, pool_size=2)
    try:
        await upgrade(engine)
        sessions = session_factory(engine)
        identity = replace(identity_config(settings), bcrypt_rounds=4)
        async with unit_of_work(sessions) as s:
            user = await create_user(
                s, identity, f"console-{secrets.token_hex(4)}@example.com", secrets.token_hex(16)
            )
            org = (await identity_repo.memberships_of(s, user.id))[0].org
            await ledger.credit(
                s, org.id, 10**15, kind="purchase", key=f"bench:{org.id}", actor="bench"
            )
            ctx = OrgContext(user, org, "owner", SYSTEM)
            keys = [
                (await create_key(s, ctx, identity.pepper, name=f"key {i}"))[0].id for i in range(3)
            ]
            issued = await issue_session(s, identity, user.id, None)
        params = {"org": org.id, "keys": keys, "models": list(MODELS), "n": logs}
        async with unit_of_work(sessions) as s:
            await s.execute(_LOGS, params)
            await s.execute(_DEBITS, {**params, "start": 10**15})
        if rollup:  # what the nightly retention run does: monthly and daily usage buckets
            async with unit_of_work(sessions) as s:
                now = datetime.now(UTC)
                plan = await retention.plan_rollup(s, now)
                await retention.rollup_batch(s, plan, after=None, limit=10, now=now)
        async with engine.connect() as conn:
            await conn.execute(text("COMMIT"))
            await conn.execute(text("ANALYZE request_logs"))
            await conn.execute(text("ANALYZE ledger_entries"))
            await conn.execute(text("ANALYZE usage_daily"))
        return Org(issued.token, keys, f"req_bench{logs // 2:015d}")
    finally:
        await engine.dispose()


def pages(org: Org) -> dict[str, str]:
    key = org.key_ids[0]
    return {
        "credits": "/console/credits",
        "usage (30 days by day)": "/console/usage",
        "usage by model": "/console/usage?group_by=model",
        "usage by key": "/console/usage?group_by=key",
        "usage CSV by model": "/console/usage.csv?group_by=model",
        "requests": "/console/requests",
        "requests, failed only": "/console/requests?status=failed",
        "requests, one key": f"/console/requests?key={key}",
        "requests, one model": f"/console/requests?model={MODELS[1]}",
        "requests, page 2": "",  # filled in from page 1's Older link
        "request detail": f"/console/requests/{org.request_id}",
    }


def measure(
    stack: Stack, base: str, org: Org, rounds: int, warmup: int
) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    cookies = {"oxinf_session": org.session_token}
    with httpx.Client(base_url=base, cookies=cookies, timeout=30) as client:
        first = client.get("/console/requests")
        marker = 'href="/console/requests?cursor='
        start = first.text.find(marker)
        if first.status_code != 200 or start < 0:
            raise HarnessError(f"requests page did not render: {first.status_code}")
        end = first.text.index('"', start + len('href="'))
        targets = pages(org)
        targets["requests, page 2"] = first.text[start + len('href="') : end].replace("&amp;", "&")
        for name, path in targets.items():
            for _ in range(warmup):
                client.get(path)
            samples = []
            before = stack.cpu_sample()
            for _ in range(rounds):
                began = time.perf_counter()
                resp = client.get(path)
                samples.append((time.perf_counter() - began) * 1000)
                if resp.status_code != 200:
                    raise HarnessError(f"{path} answered {resp.status_code}")
            after = stack.cpu_sample()
            samples.sort()
            cpu = {
                part: (after.per_proc.get(part, 0.0) - before.per_proc.get(part, 0.0))
                * 1000
                / rounds
                for part in ("api", "postgres")
            }
            out[name] = {
                "p50_ms": statistics.median(samples),
                "p95_ms": samples[max(0, int(len(samples) * 0.95) - 1)],
                "max_ms": samples[-1],
                "api_cpu_ms": cpu["api"],
                "postgres_cpu_ms": cpu["postgres"],
            }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.console_pages", description=__doc__)
    parser.add_argument("--logs", type=int, default=100_000, help="request logs in the org")
    parser.add_argument("--rounds", type=int, default=200, help="measured fetches per page")
    parser.add_argument(
        "--no-rollup",
        action="store_true",
        help="skip the nightly rollup (every page then reads the raw logs)",
    )
    parser.add_argument("--json", type=Path, default=WORK_DIR / "last.json")
    args = parser.parse_args(argv)
    with sigterm_as_interrupt():
        try:
            with Stack(WORK_DIR, PG_DIR) as stack:
                print("console bench: starting PostgreSQL …", file=sys.stderr)
                database_url = stack.start_postgres()
                settings = bench_settings(database_url)
                print(f"console bench: seeding {args.logs:,} request logs …", file=sys.stderr)
                org = asyncio.run(seed(settings, args.logs, rollup=not args.no_rollup))
                env = {
                    "OXINF_ENV": "test",
                    "OXINF_DATABASE_URL": database_url,
                    "OXINF_HMAC_PEPPER": settings.hmac_pepper.get_secret_value(),
                    "OXINF_ENCRYPTION_KEYS": settings.encryption_keys.get_secret_value(),
                    "OXINF_TEMPORAL_ADDRESS": "127.0.0.1:1",
                    "OXINF_LOG_LEVEL": "WARNING",
                }
                port = stack.start_api(env)
                print("console bench: measuring …", file=sys.stderr)
                results = measure(stack, f"http://127.0.0.1:{port}", org, args.rounds, warmup=10)
                load = os.getloadavg()[0]
        except KeyboardInterrupt:
            return 130
        except HarnessError as exc:
            print(f"console bench: FAILED: {exc}", file=sys.stderr)
            return 2
    report: dict[str, Any] = {
        "logs": args.logs,
        "rollup": not args.no_rollup,
        "budget_p95_ms": BUDGET_P95_MS,
        "load_average_1m": load,
        "pages": results,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    cores = os.cpu_count() or 1
    print(f"{args.logs:,} request logs; load average {load:.1f} on {cores} CPUs (wall times")
    print("grow with it; CPU per page, API + PostgreSQL, is what an idle machine would take)")
    print(f"{'page':<26} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} {'CPU ms':>7}")
    for name, r in results.items():
        verdict = "ok" if r["p95_ms"] <= BUDGET_P95_MS else "over"
        cpu_ms = r["api_cpu_ms"] + r["postgres_cpu_ms"]
        print(
            f"{name:<26} {r['p50_ms']:7.1f} {r['p95_ms']:7.1f} {r['max_ms']:7.1f}"
            f" {cpu_ms:7.1f}  {verdict}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
