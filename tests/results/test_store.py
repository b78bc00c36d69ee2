"""The result store's contract, run against the local file store and S3 (moto) alike."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import boto3
import pytest

from domain.results.store import (
    PART_SIZE,
    BlobNotFound,
    BlobStore,
    BlobStoreConfigError,
    BlobStoreUnavailable,
    open_blob_store,
)
from tests.fixtures.relay import free_port
from tests.results.conftest import s3_bucket, s3_url

MiB = 1024 * 1024


async def pieces(total: int, piece: int = 256 * 1024) -> AsyncIterator[bytes]:
    """`total` deterministic bytes, produced a piece at a time (as a download arrives)."""
    sent = 0
    counter = 0
    while sent < total:
        block = hashlib.sha256(counter.to_bytes(8, "big")).digest() * (piece // 32)
        block = block[: min(piece, total - sent)]
        counter += 1
        sent += len(block)
        yield block


async def expected(total: int) -> bytes:
    return b"".join([p async for p in pieces(total)])


async def test_put_open_streams_back_the_bytes_with_their_type(blob_store: BlobStore) -> None:
    size = PART_SIZE * 2 + 12_345  # several multipart parts, and a short last one
    stored = await blob_store.put("tasks/t1/0", pieces(size), "video/mp4")
    assert stored == size

    blob = await blob_store.open("tasks/t1/0")
    assert (blob.info.size, blob.info.content_type) == (size, "video/mp4")
    chunks = [c async for c in blob.chunks()]
    assert len(chunks) > 1  # streamed, not handed over whole
    assert b"".join(chunks) == await expected(size)
    head = await blob_store.head("tasks/t1/0")
    assert head is not None and (head.size, head.content_type) == (size, "video/mp4")


async def test_a_put_replaces_the_object_under_its_key(blob_store: BlobStore) -> None:
    await blob_store.put("tasks/t2/0", pieces(1000), "image/png")
    await blob_store.put("tasks/t2/0", pieces(10), "image/webp")
    blob = await blob_store.open("tasks/t2/0")
    assert (blob.info.size, blob.info.content_type) == (10, "image/webp")
    assert await blob.read() == await expected(10)


async def test_a_failing_stream_leaves_nothing_behind(blob_store: BlobStore) -> None:
    async def broken() -> AsyncIterator[bytes]:
        async for piece in pieces(PART_SIZE + MiB):
            yield piece
        raise ConnectionResetError("the download broke off")

    with pytest.raises(ConnectionResetError):
        await blob_store.put("tasks/t3/0", broken(), "video/mp4")
    assert await blob_store.head("tasks/t3/0") is None
    with pytest.raises(BlobNotFound):
        await blob_store.open("tasks/t3/0")

    # A failed retry does not damage an object already there either.
    await blob_store.put("tasks/t3/0", pieces(100), "video/mp4")
    with pytest.raises(ConnectionResetError):
        await blob_store.put("tasks/t3/0", broken(), "video/mp4")
    assert await (await blob_store.open("tasks/t3/0")).read() == await expected(100)


async def test_delete_is_idempotent(blob_store: BlobStore) -> None:
    await blob_store.put("tasks/t4/0", pieces(10), "audio/wav")
    await blob_store.put("tasks/t4/1", pieces(20), "audio/wav")
    await blob_store.delete("tasks/t4/0")
    await blob_store.delete("tasks/t4/0")
    await blob_store.delete_many(["tasks/t4/1", "tasks/never/0"])
    for key in ("tasks/t4/0", "tasks/t4/1"):
        assert await blob_store.head(key) is None
        with pytest.raises(BlobNotFound):
            await blob_store.open(key)


async def test_an_empty_object_is_an_object(blob_store: BlobStore) -> None:
    async def nothing() -> AsyncIterator[bytes]:
        return
        yield b""

    assert await blob_store.put("tasks/t5/0", nothing(), "image/png") == 0
    assert (await blob_store.open("tasks/t5/0")).info.size == 0


async def test_s3_keys_live_under_the_url_prefix(s3_endpoint: str, tmp_path: Path) -> None:
    bucket = s3_bucket(s3_endpoint)
    store = open_blob_store(s3_url(s3_endpoint, bucket, prefix="deploy/a"), tmp_path)
    await store.put("tasks/x/0", pieces(5), "image/png")
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert [o["Key"] for o in listed] == ["deploy/a/tasks/x/0"]
    head = s3.head_object(Bucket=bucket, Key="deploy/a/tasks/x/0")
    assert head["ContentType"] == "image/png"  # stored with the object, not beside it


def test_local_files_are_the_default(tmp_path: Path) -> None:
    store = open_blob_store(None, tmp_path / "blobs")
    assert (tmp_path / "blobs").is_dir()
    assert str(tmp_path / "blobs") in store.describe


@pytest.mark.parametrize(
    "url",
    [
        "https://bucket.example/x",
        "s3://",
        "s3://key:secret@bucket/x",
        "s3://bucket/x?access_key_id=AKIA",
        "file://relative/path",
        "ftp://host/x",
    ],
)
def test_blob_urls_that_name_no_store_are_refused(url: str, tmp_path: Path) -> None:
    with pytest.raises(BlobStoreConfigError):
        open_blob_store(url, tmp_path)


async def test_an_unreachable_store_is_unavailable_not_a_crash(tmp_path: Path) -> None:
    store = open_blob_store(s3_url(f"http://127.0.0.1:{free_port()}", "nowhere"), tmp_path)
    with pytest.raises(BlobStoreUnavailable) as raised:
        await store.open("tasks/x/0")
    assert raised.value.code == "service_unavailable"
    with pytest.raises(BlobStoreUnavailable):
        await store.put("tasks/x/0", pieces(10), "image/png")
