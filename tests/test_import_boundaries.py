"""The rooms' import boundaries (DESIGN.md §2): the import-linter contracts in pyproject.toml
hold for the tree, and each of them does fail when a forbidden import is added.

The failing cases run the very contracts of pyproject.toml over a scratch tree of empty
packages with one forbidden import in it, so the real tree is never touched.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]


def run_lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_tree_keeps_every_contract() -> None:
    done = run_lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def make_module(root: Path, name: str, source: str) -> None:
    path = root.joinpath(*name.split(".")).with_suffix(".py")
    for parent in reversed(path.relative_to(root).parents):
        if parent != Path("."):
            (root / parent).mkdir(exist_ok=True)
            (root / parent / "__init__.py").touch()
    path.write_text(source)


def scratch_tree(tmp_path: Path, module: str, source: str) -> Path:
    """Empty root packages, the project's contracts, and `source` as `module`."""
    for package in CONFIG["root_packages"]:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    # The ignored imports must exist to be ignored: the scratch tree makes them.
    for contract in CONFIG["contracts"]:
        for line in contract.get("ignore_imports", []):
            importer, imported = (part.strip() for part in line.split("->"))
            for name in (imported, importer):
                make_module(tmp_path, name, f"import {imported}\n" if name == importer else "")
    make_module(tmp_path, module, source)
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    return tmp_path


@pytest.mark.parametrize(
    ("module", "source", "contract"),
    [
        ("domain.bad", "import api\n", "domain imports nothing above it"),
        ("domain.bad", "from workflows import media\n", "domain imports nothing above it"),
        ("domain.bad", "import config\n", "domain imports nothing above it"),
        ("domain.bad", "import web\n", "domain imports nothing above it"),
        ("web.bad", "import api\n", "nothing outside api imports api"),
        ("config.bad", "import api\n", "nothing outside api imports api"),
        ("activities.bad", "import api\n", "nothing outside api imports api"),
        ("edge.bad", "import web\n", "edge (shared by api and web) imports neither"),
        ("workflows.bad", "import domain\n", "workflows import no domain"),
        ("workflows.bad", "import sqlalchemy\n", "workflows import no domain"),
        ("workflows.bad", "import httpx\n", "workflows import no domain"),
        # Indirect: workflows -> schema -> sqlmodel is broken twice over.
        ("workflows.bad", "import schema.bad\n", "workflows import no domain"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(
    tmp_path: Path, module: str, source: str, contract: str
) -> None:
    tree = scratch_tree(tmp_path, module, source)
    (tree / "schema" / "bad.py").write_text("import sqlmodel\n")
    done = run_lint_imports(tree)
    assert done.returncode == 1, done.stdout + done.stderr
    broken = [line for line in done.stdout.splitlines() if " BROKEN" in line]
    assert any(line.startswith(contract) for line in broken), done.stdout


@pytest.mark.parametrize("script", ["cli.py", "worker.py", "devstack.py"])
def test_entry_scripts_do_not_import_api(script: str) -> None:
    """import-linter takes only packages as roots; the three top-level scripts are read here.
    (`cli.py` names `api.app:create_app` for uvicorn as a string, which is no import.)"""
    tree = ast.parse((ROOT / script).read_text())
    imported: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.append(node.module)
    assert not [name for name in imported if name == "api" or name.startswith("api.")]
