"""Static files under `/static/`, with versioned URLs so browsers may cache them for a year.

Templates ask for `asset("css/console.css")` and get `/static/css/console.css?v=<digest>`.
A request carrying the file's current digest is answered `immutable` for a year; any other
(an old page asking for an old version, a hand-typed URL) must revalidate, so a deploy never
leaves a browser on stale code.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from starlette.datastructures import QueryParams
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).parent / "static"
STATIC_PATH = "/static"
LONG_CACHE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"


class AssetManifest:
    """Digest per static file; `reload` re-hashes a file whose mtime changed (dev edits)."""

    def __init__(self, root: Path = STATIC_DIR, *, reload: bool = False) -> None:
        self.root = root.resolve()
        self.reload = reload
        self._digests: dict[str, tuple[float, str]] = {}

    def digest(self, relative: str) -> str:
        path = self.root / relative
        known = self._digests.get(relative)
        if known is not None and not self.reload:
            return known[1]
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            raise LookupError(f"no static file {relative!r} under {self.root}") from None
        if known is not None and known[0] == mtime:
            return known[1]
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        self._digests[relative] = (mtime, digest)
        return digest

    def url(self, relative: str) -> str:
        return f"{STATIC_PATH}/{relative}?v={self.digest(relative)}"


class VersionedStaticFiles(StaticFiles):
    def __init__(self, manifest: AssetManifest) -> None:
        super().__init__(directory=manifest.root)
        self.manifest = manifest

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        relative = Path(full_path).relative_to(self.manifest.root).as_posix()
        wanted = QueryParams(scope.get("query_string", b"")).get("v")
        current = wanted is not None and wanted == self.manifest.digest(relative)
        response.headers["cache-control"] = LONG_CACHE if current else REVALIDATE
        response.headers["x-content-type-options"] = "nosniff"
        return response
