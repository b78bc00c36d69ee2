"""The result store: the bytes of task results, once copied from the provider (DESIGN.md §6).

Files under `<data dir>/blobs` by default; S3-compatible object storage with
`OXINF_BLOB_URL=s3://bucket/prefix?endpoint_url=…&region=…`, credentials from the standard AWS
environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
instance roles …).

Built on `obstore` (Python bindings of Rust's `object_store`, as used by Delta Lake and
DataFusion) rather than boto3 in a thread or aiobotocore/aioboto3:
- it is async by itself (no thread pool hop per chunk, no botocore session juggling);
- a put from an async iterator is a streamed multipart upload, and atomic: no reader ever
  sees part of an object, and an iterator that raises (a size bound, a dropped download)
  aborts the upload. So a video is never held whole in memory, and a failed copy leaves
  nothing half-written behind;
- a get streams in bounded chunks;
- one API covers S3-compatible stores and the local filesystem, so `make dev` runs the same
  code path as production.

The local filesystem keeps no object attributes, so there the content type is a sidecar
object `<key>.type`, written before the object and deleted after it: whoever sees an object
also sees its type.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from obstore.exceptions import BaseError, NotFoundError
from obstore.store import LocalStore, S3Store

from domain.errors import ServiceUnavailable

if TYPE_CHECKING:
    from obstore import GetResult
    from obstore.store import ClientConfig, RetryConfig

log = logging.getLogger("oxinf.results")

CONTENT_TYPE = "Content-Type"
OCTET_STREAM = "application/octet-stream"
READ_CHUNK = 256 * 1024
PART_SIZE = 8 * 1024 * 1024  # multipart part (and local write buffer) size
_TYPE_SUFFIX = ".type"
# Downloads of large videos by slow clients run long: bound the whole request generously,
# and catch a stalled connection with the read timeout instead.
_CLIENT_OPTIONS: ClientConfig = {
    "connect_timeout": timedelta(seconds=10),
    "read_timeout": timedelta(minutes=5),
    "timeout": timedelta(hours=12),
}
_RETRY: RetryConfig = {"max_retries": 3, "retry_timeout": timedelta(seconds=30)}
_S3_QUERY = {"endpoint_url": "endpoint", "endpoint": "endpoint", "region": "region"}


class BlobNotFound(Exception):
    """No object under that key (never stored, or deleted by retention)."""


class BlobStoreConfigError(ValueError):
    """`OXINF_BLOB_URL` names no store this build can open."""


class BlobStoreUnavailable(ServiceUnavailable):
    """The store did not answer as it should (unreachable, credentials refused): a 503 for a
    download, a retry for a copy."""


_MISSING = (FileNotFoundError, NotFoundError)


@contextlib.contextmanager
def _store_errors(action: str) -> Iterator[None]:
    try:
        yield
    except _MISSING:
        raise
    except BaseError as exc:
        # obstore's messages name the endpoint and key, never credentials; still, keep them
        # for the log and give callers a fixed sentence.
        log.warning("result store error", extra={"action": action, "error": str(exc)[:300]})
        raise BlobStoreUnavailable(
            f"the result store could not {action} right now; retry shortly"
        ) from None


@dataclass(frozen=True)
class BlobInfo:
    size: int
    content_type: str


class Blob:
    """An object opened for reading: size and type known, the body streamed by `chunks()`
    (iterate it once)."""

    def __init__(self, result: GetResult, content_type: str) -> None:
        self._result = result
        self.info = BlobInfo(int(result.meta["size"]), content_type)

    async def chunks(self) -> AsyncIterator[bytes]:
        async for piece in self._result.stream(min_chunk_size=READ_CHUNK):
            yield bytes(piece)

    async def read(self) -> bytes:
        """The whole object: only for results known to be small (images for `b64_json`)."""
        return bytes(await self._result.bytes_async())


class BlobStore:
    def __init__(self, store: S3Store | LocalStore, *, describe: str) -> None:
        self._store = store
        self._sidecar_types = isinstance(store, LocalStore)
        self.describe = describe  # for logs and the README: never carries credentials

    async def put(self, key: str, chunks: AsyncIterable[bytes], content_type: str) -> int:
        """Stores the stream under `key` (replacing any object there) and returns its size.
        Atomic: if `chunks` raises, nothing new is visible under `key`."""
        size = 0

        async def counted() -> AsyncIterator[bytes]:
            nonlocal size
            async for piece in chunks:
                size += len(piece)
                yield piece

        with _store_errors("store a result"):
            if self._sidecar_types:
                await self._store.put_async(key + _TYPE_SUFFIX, content_type.encode())
                await self._store.put_async(key, counted(), chunk_size=PART_SIZE)
            else:
                await self._store.put_async(
                    key, counted(), attributes={CONTENT_TYPE: content_type}, chunk_size=PART_SIZE
                )
        return size

    async def open(self, key: str) -> Blob:
        with _store_errors("read a result"):
            try:
                result = await self._store.get_async(key)
            except _MISSING:
                raise BlobNotFound(key) from None
            return Blob(result, await self._content_type(key, result.attributes))

    async def head(self, key: str) -> BlobInfo | None:
        with _store_errors("read a result"):
            try:
                meta = await self._store.head_async(key)
            except _MISSING:
                return None
            return BlobInfo(int(meta["size"]), await self._content_type(key, None))

    async def delete(self, key: str) -> None:
        """Idempotent: deleting what is not there is fine."""
        await self.delete_many([key])

    async def delete_many(self, keys: list[str]) -> None:
        """Idempotent; S3 deletes up to 1,000 keys per request."""
        with _store_errors("delete a result"):
            if not self._sidecar_types:
                for start in range(0, len(keys), 1000):
                    await self._store.delete_async(keys[start : start + 1000])
                return
            for key in keys:
                for each in (key, key + _TYPE_SUFFIX):
                    with contextlib.suppress(*_MISSING):
                        await self._store.delete_async(each)

    async def _content_type(self, key: str, attributes: dict[Any, str] | None) -> str:
        if not self._sidecar_types:
            if attributes is None:
                attributes = (await self._store.get_async(key, options={"head": True})).attributes
            return attributes.get(CONTENT_TYPE) or OCTET_STREAM
        try:
            raw = await (await self._store.get_async(key + _TYPE_SUFFIX)).bytes_async()
        except _MISSING:
            return OCTET_STREAM
        return bytes(raw).decode("ascii", "replace") or OCTET_STREAM


def open_blob_store(url: str | None, default_dir: Path) -> BlobStore:
    """`url` unset: files under `default_dir`. Else `file:///path` or
    `s3://bucket[/prefix][?endpoint_url=…&region=…]`."""
    if not url:
        return _local(default_dir)
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc or not parts.path.startswith("/"):
            raise BlobStoreConfigError("OXINF_BLOB_URL file URLs look like file:///absolute/path")
        return _local(Path(parts.path))
    if parts.scheme != "s3" or not parts.netloc or parts.username or parts.password:
        raise BlobStoreConfigError(
            "OXINF_BLOB_URL must be s3://bucket[/prefix][?endpoint_url=…&region=…] or "
            "file:///path (S3 credentials come from the AWS environment variables)"
        )
    options: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=False):
        if name not in _S3_QUERY:
            raise BlobStoreConfigError(
                f"OXINF_BLOB_URL: unknown option {name!r} (known: endpoint_url, region)"
            )
        options[_S3_QUERY[name]] = value
    client: ClientConfig = {**_CLIENT_OPTIONS}
    if options.get("endpoint", "").startswith("http://"):
        client["allow_http"] = True
    prefix = parts.path.strip("/") or None
    store = S3Store(
        parts.netloc,
        prefix=prefix,
        client_options=client,
        retry_config=_RETRY,
        **options,  # type: ignore[arg-type]
    )
    endpoint = options.get("endpoint", "AWS")
    return BlobStore(store, describe=f"s3://{parts.netloc}/{prefix or ''} at {endpoint}")


def _local(root: Path) -> BlobStore:
    store = LocalStore(root.resolve(), mkdir=True, automatic_cleanup=True)
    return BlobStore(store, describe=f"files under {root}")
