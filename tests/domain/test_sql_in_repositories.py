"""Only repositories run SQL (DESIGN.md §2): a domain module that is not one neither builds
a statement nor executes one.

Read from the source (AST), so it holds for code no test reaches. A repository is a module
named `repository.py` or `*_repository.py`.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = ROOT / "domain"

# What a service may take from SQLAlchemy: session types to pass on, errors to catch.
ALLOWED_MODULES = {"sqlalchemy.ext.asyncio", "sqlalchemy.exc"}
ALLOWED_NAMES = {"exc"}  # `from sqlalchemy import exc`
# Calls that run SQL on a session, a connection or the direct pool.
RUNS_SQL = {"execute", "exec_driver_sql", "scalar", "scalars", "fetchrow", "fetch",
            "fetch_together", "refresh"}  # fmt: skip
# ORM calls that run SQL too, when made on something named like a session.
SESSION_NAMES = {"session", "s", "conn", "connection", "db", "direct"}
SESSION_SQL = {"get", "add", "add_all", "delete", "merge", "flush"}


def _is_repository(path: Path) -> bool:
    return path.name == "repository.py" or path.name.endswith("_repository.py")


def sql_outside_repositories(root: Path) -> list[str]:
    found: list[str] = []
    for path in sorted(root.rglob("*.py")):
        if _is_repository(path):
            continue
        where = path.relative_to(root.parent)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
                if node.module in ALLOWED_MODULES:
                    continue
                names = {alias.name for alias in node.names}
                if node.module == "sqlalchemy" and names <= ALLOWED_NAMES:
                    continue
                found.append(f"{where}:{node.lineno} imports {', '.join(sorted(names))}")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("sqlalchemy"):
                        found.append(f"{where}:{node.lineno} imports {alias.name}")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                attr, owner = node.func.attr, node.func.value
                if attr in RUNS_SQL:
                    found.append(f"{where}:{node.lineno} calls .{attr}()")
                elif (
                    attr in SESSION_SQL
                    and isinstance(owner, ast.Name)
                    and owner.id in SESSION_NAMES
                ):
                    found.append(f"{where}:{node.lineno} calls {owner.id}.{attr}()")
    return found


def test_domain_runs_sql_only_in_repositories() -> None:
    assert sql_outside_repositories(DOMAIN) == []


def test_the_check_sees_a_statement_built_or_run_outside_a_repository(tmp_path: Path) -> None:
    pkg = tmp_path / "domain" / "things"
    pkg.mkdir(parents=True)
    (pkg / "repository.py").write_text(
        "from sqlalchemy import text\n\nasync def f(session):\n"
        "    await session.execute(text('SELECT 1'))\n"
    )
    (pkg / "service.py").write_text(
        "from sqlalchemy import select, text\nimport sqlalchemy as sa\n\n"
        "async def f(session, direct):\n"
        "    await session.execute(text('SELECT 1'))\n"
        "    await direct.fetchrow(select(1), {})\n"
        "    await session.get(object, 1)\n"
    )
    assert sql_outside_repositories(tmp_path / "domain") == [
        "domain/things/service.py:1 imports select, text",
        "domain/things/service.py:2 imports sqlalchemy",
        "domain/things/service.py:5 calls .execute()",
        "domain/things/service.py:6 calls .fetchrow()",
        "domain/things/service.py:7 calls session.get()",
    ]
