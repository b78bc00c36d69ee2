"""Small modules (DESIGN.md §2): none of the application's modules grows past 600 lines.

A module that does is split along its seams, not added here: there is no allow-list.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("api", "domain", "web", "workflows", "activities")
MAX_LINES = 600


def oversized(root: Path, packages: tuple[str, ...], limit: int) -> dict[str, int]:
    sizes = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            lines = len(path.read_text().splitlines())
            if lines > limit:
                sizes[str(path.relative_to(root))] = lines
    return sizes


def test_no_module_is_over_600_lines() -> None:
    assert oversized(ROOT, PACKAGES, MAX_LINES) == {}


def test_the_check_counts_lines(tmp_path: Path) -> None:
    (tmp_path / "domain" / "big").mkdir(parents=True)
    (tmp_path / "domain" / "big" / "a.py").write_text("x = 1\n" * 601)
    (tmp_path / "domain" / "big" / "b.py").write_text("x = 1\n" * 600)
    assert oversized(tmp_path, ("domain",), MAX_LINES) == {"domain/big/a.py": 601}
