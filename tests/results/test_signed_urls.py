"""Signed result URLs: `ResultSigner` and `GET /v1/files/{task}/{index}` over the app."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from config.runtime import Resources
from domain.errors import PermissionDenied
from domain.results.signing import ResultSigner
from domain.results.store import open_blob_store
from tests.fixtures.relay import free_port, make_tenant

PEPPER = "p" * 40


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_a_signature_opens_exactly_its_object_until_it_expires() -> None:
    signer = ResultSigner(PEPPER, ttl_s=3600)
    task = uuid.uuid4()
    now = 1_800_000_000.0
    url = signer.url("https://api.example.com/", task, 1, now=now)
    assert url.startswith(f"https://api.example.com/v1/files/{task}/1?exp=1800003600&sig=")
    q = query(url)
    exp, sig = int(q["exp"]), q["sig"]
    signer.verify(task, 1, exp, sig, now=now + 3599)
    refusals = [
        (task, 0, exp, sig, now),  # another index
        (uuid.uuid4(), 1, exp, sig, now),  # another task
        (task, 1, exp + 1, sig, now),  # a longer life
        (task, 1, exp, sig[:-1] + ("A" if sig[-1] != "A" else "B"), now),  # altered
        (task, 1, exp, sig, now + 3600),  # expired
        (task, 1, exp, "", now),
    ]
    for args in refusals:
        with pytest.raises(PermissionDenied):
            signer.verify(*args[:4], now=args[4])
    # Another server secret signs differently: rotating the pepper voids handed-out URLs.
    with pytest.raises(PermissionDenied):
        ResultSigner("q" * 40).verify(task, 1, exp, sig, now=now)
    assert signer.path(task, 0, now=now).startswith(f"/v1/files/{task}/0?exp=")


@pytest.fixture
async def api(resources: Resources) -> AsyncIterator[httpx.AsyncClient]:
    from api.app import create_app

    app = create_app(resources=resources)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_files_are_served_without_a_key_through_a_valid_signature(
    api: httpx.AsyncClient, resources: Resources
) -> None:
    task = uuid.uuid4()
    png = b"\x89PNG\r\n\x1a\n" + b"x" * 5000
    await resources.results.store.put(f"tasks/{task}/2", _one(png), "image/png")
    url = resources.results.signer.url("http://t", task, 2)

    resp = await api.get(url)
    assert resp.status_code == 200, resp.text
    assert resp.content == png
    assert resp.headers["content-type"] == "image/png"
    assert resp.headers["content-length"] == str(len(png))
    assert resp.headers["content-disposition"] == f'inline; filename="{task}-2.png"'
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in resp.headers["content-security-policy"]
    assert resp.headers["cache-control"].startswith("private, max-age=")

    q = query(url)
    expired_exp = int(time.time()) - 1
    bad = [
        f"/v1/files/{task}/2",
        f"/v1/files/{task}/2?exp={q['exp']}",
        f"/v1/files/{task}/2?exp={q['exp']}&sig=nope",
        f"/v1/files/{task}/1?exp={q['exp']}&sig={q['sig']}",
        f"/v1/files/{task}/2?exp={expired_exp}&sig="
        + query(resources.results.signer.url(None, task, 2, now=expired_exp - 3600))["sig"],
    ]
    for path in bad:
        refused = await api.get(path)
        assert refused.status_code == 403, (path, refused.text)
        error = refused.json()["error"]
        assert (error["code"], error["type"]) == ("permission_denied", "permission_error")
        assert error["request_id"]
    assert "expired" in (await api.get(bad[-1])).json()["error"]["message"]


async def test_a_signed_url_to_a_missing_object_is_not_found(
    api: httpx.AsyncClient, resources: Resources
) -> None:
    task = uuid.uuid4()
    resp = await api.get(resources.results.signer.path(task, 0))
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "not_found"


async def test_an_api_key_is_no_substitute_for_a_signature(
    api: httpx.AsyncClient, resources: Resources
) -> None:
    tenant = await make_tenant(resources)
    task = uuid.uuid4()
    await resources.results.store.put(f"tasks/{task}/0", _one(b"abc"), "image/png")
    resp = await api.get(f"/v1/files/{task}/0", headers=tenant.auth)
    assert resp.status_code == 403


async def test_a_store_that_does_not_answer_is_a_503(
    api: httpx.AsyncClient, resources: Resources, tmp_path: Path
) -> None:
    saved = resources.results
    dead = open_blob_store(f"s3://gone/x?endpoint_url=http://127.0.0.1:{free_port()}", tmp_path)
    resources.results = dataclasses.replace(saved, store=dead)
    try:
        resp = await api.get(saved.signer.path(uuid.uuid4(), 0))
    finally:
        resources.results = saved
    assert resp.status_code == 503
    error = resp.json()["error"]
    assert error["code"] == "service_unavailable" and "result store" in error["message"]
