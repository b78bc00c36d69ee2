"""Vendored assets match their pinned checksums; static files are served cache-safely."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx

from scripts import vendor_assets
from tests.fixtures.console import sign_up
from web.assets import LONG_CACHE, REVALIDATE

ROOT = Path(__file__).resolve().parents[2]


def test_committed_vendor_files_match_sha256sums() -> None:
    assert vendor_assets.check() == []
    run = subprocess.run(
        [sys.executable, "scripts/vendor_assets.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    for package in vendor_assets.PACKAGES:
        assert (vendor_assets.VENDOR / package.folder / "LICENSE").is_file()


def test_check_catches_changed_missing_and_extra_files(tmp_path: Path) -> None:
    copy = tmp_path / "vendor"
    shutil.copytree(vendor_assets.VENDOR, copy)
    assert vendor_assets.check(copy) == []

    htmx = copy / "htmx.org-2.0.11" / "htmx.min.js"
    htmx.write_bytes(htmx.read_bytes() + b"\n// injected")
    (copy / "uplot-1.6.32" / "uPlot.min.css").unlink()
    (copy / "uplot-1.6.32" / "extra.js").write_text("alert(1)")
    problems = "\n".join(vendor_assets.check(copy))
    assert "htmx.org-2.0.11/htmx.min.js: sha256" in problems
    assert "uplot-1.6.32/uPlot.min.css: listed in SHA256SUMS but missing" in problems
    assert "uplot-1.6.32/extra.js: present but not listed" in problems


async def test_static_files_are_versioned_and_cached_safely(client: httpx.AsyncClient) -> None:
    await sign_up(client)
    page = (await client.get("/console")).text
    urls = re.findall(r'(?:src|href)="(/static/[^"]+)"', page)
    assert any("/static/vendor/htmx.org-2.0.11/htmx.min.js?v=" in u for u in urls)
    assert any(u.startswith("/static/css/console.css?v=") for u in urls)
    for url in urls:
        resp = await client.get(url)
        assert resp.status_code == 200, url
        assert resp.headers["cache-control"] == LONG_CACHE, url
        assert resp.headers["x-content-type-options"] == "nosniff"

    css = next(u for u in urls if "console.css" in u)
    bare, _, _ = css.partition("?")
    for stale in (bare, bare + "?v=0000000000000000"):
        resp = await client.get(stale)
        assert resp.status_code == 200
        assert resp.headers["cache-control"] == REVALIDATE  # never pin an old version
    assert (await client.get("/static/../web/errors.py")).status_code == 404
    assert (await client.get("/static/nope.js")).status_code == 404
