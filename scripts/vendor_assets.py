"""Re-fetch, or check, the console's vendored JavaScript and CSS.

The console has no Node build step: the few third-party files it serves are committed under
`web/static/vendor/<name>-<version>/` with their licenses. This script is how they get there
and how we know they are still what was reviewed:

    python scripts/vendor_assets.py            # npm pack each pinned package, verify the
                                               # tarball's integrity, extract the files,
                                               # then check them against SHA256SUMS
    python scripts/vendor_assets.py --check    # no network: the committed files match
                                               # SHA256SUMS, and nothing is missing or extra
    python scripts/vendor_assets.py --write-sums   # after bumping a version on purpose

The tarball's sha512 integrity is pinned here as well as the extracted files' sha256 sums,
so a re-fetch that would bring different bytes fails before anything is written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "web" / "static" / "vendor"
SUMS = VENDOR / "SHA256SUMS"


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    integrity: str  # npm's sha512 of the tarball, as `npm pack --json` reports it
    files: dict[str, str]  # path inside the tarball's package/ -> file name in our folder

    @property
    def folder(self) -> str:
        return f"{self.name}-{self.version}"


PACKAGES = (
    Package(
        "htmx.org",
        "2.0.11",
        "sha512-Thx/WtpeOQqSrqBCw/A1cwGJGg4UrVa3+sW0GmrM3p4gJgO89ecH4qtbnyzDDWFvBTqjnIMCgELTNt636dtamA==",
        {"dist/htmx.min.js": "htmx.min.js", "LICENSE": "LICENSE"},
    ),
    Package(
        "uplot",
        "1.6.32",
        "sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw==",
        {
            "dist/uPlot.iife.min.js": "uPlot.iife.min.js",
            "dist/uPlot.min.css": "uPlot.min.css",
            "LICENSE": "LICENSE",
        },
    ),
)


class VendorError(Exception):
    """The vendored files are not what the pins say."""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_sums(path: Path = SUMS) -> dict[str, str]:
    """`sha256sum` format: `<hex>  <relative path>` per line."""
    sums: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            digest, _, name = line.partition("  ")
            sums[name.strip()] = digest.strip()
    return sums


def expected_files() -> set[str]:
    return {f"{p.folder}/{name}" for p in PACKAGES for name in p.files.values()}


def current_sums(vendor: Path = VENDOR) -> dict[str, str]:
    return {
        str(path.relative_to(vendor)): sha256(path)
        for path in sorted(vendor.rglob("*"))
        if path.is_file() and path.name != SUMS.name
    }


def check(vendor: Path = VENDOR) -> list[str]:
    """Every problem with the committed files; empty when they match the pins exactly."""
    problems: list[str] = []
    sums_file = vendor / SUMS.name
    if not sums_file.exists():
        return [f"{sums_file} is missing"]
    recorded = read_sums(sums_file)
    actual = current_sums(vendor)
    wanted = expected_files()
    for name in sorted(wanted - set(recorded)):
        problems.append(f"{name}: pinned in the script but not in SHA256SUMS")
    for name in sorted(set(recorded) - wanted):
        problems.append(f"{name}: in SHA256SUMS but no pinned package provides it")
    for name in sorted(set(actual) - set(recorded)):
        problems.append(f"{name}: present but not listed in SHA256SUMS")
    for name, digest in sorted(recorded.items()):
        if name not in actual:
            problems.append(f"{name}: listed in SHA256SUMS but missing")
        elif actual[name] != digest:
            problems.append(f"{name}: sha256 {actual[name]} != {digest}")
    return problems


def _npm_pack(package: Package, workdir: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise VendorError("npm is not on PATH; it is only needed to re-fetch, not to --check")
    out = subprocess.run(  # noqa: S603 (fixed argv, pinned package spec)
        [npm, "pack", f"{package.name}@{package.version}", "--json", "--silent"],
        cwd=workdir,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    info = json.loads(out)[0]
    if info.get("integrity") != package.integrity:
        raise VendorError(
            f"{package.folder}: tarball integrity {info.get('integrity')} "
            f"!= pinned {package.integrity}"
        )
    return workdir / str(info["filename"])


def _extract(package: Package, tarball: Path, vendor: Path) -> None:
    target = vendor / package.folder
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    with tarfile.open(tarball, "r:gz") as tar:
        for inner, name in package.files.items():
            member = tar.getmember(f"package/{inner}")
            if not member.isfile():
                raise VendorError(f"{package.folder}: {inner} is not a regular file")
            handle = tar.extractfile(member)
            assert handle is not None
            with handle, open(target / name, "wb") as out:
                shutil.copyfileobj(handle, out)


def fetch(vendor: Path = VENDOR) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for package in PACKAGES:
            _extract(package, _npm_pack(package, Path(tmp)), vendor)
    pinned = {p.folder for p in PACKAGES}
    for folder in vendor.iterdir():
        if folder.is_dir() and folder.name not in pinned:
            shutil.rmtree(folder)  # an old version left behind by a bump


def write_sums(vendor: Path = VENDOR) -> None:
    lines = [f"{digest}  {name}" for name, digest in current_sums(vendor).items()]
    (vendor / SUMS.name).write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Re-fetch or check the vendored assets.")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="verify without network")
    mode.add_argument("--write-sums", action="store_true", help="fetch, then record new sums")
    args = parser.parse_args(argv)
    try:
        if not args.check:
            fetch()
            if args.write_sums:
                write_sums()
    except (VendorError, subprocess.CalledProcessError) as exc:
        print(f"vendor_assets: {exc}", file=sys.stderr)
        return 1
    problems = check()
    for problem in problems:
        print(f"vendor_assets: {problem}", file=sys.stderr)
    if not problems:
        print(f"vendor_assets: {len(expected_files())} files match SHA256SUMS")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
