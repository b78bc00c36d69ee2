"""The result store under test: the local file store and S3 (moto's server on loopback)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from domain.results.store import BlobStore, open_blob_store
from tests.fakes.provider import FakeProvider

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto in server mode: a real S3 HTTP API on loopback, for the S3 store's own client.
    Credentials come from the standard AWS environment variables, as in production."""
    saved = {k: os.environ.get(k) for k in AWS_ENV}
    os.environ.update(AWS_ENV)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def s3_bucket(endpoint: str) -> str:
    name = f"results-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


def s3_url(endpoint: str, bucket: str, prefix: str = "oxinf/results") -> str:
    return f"s3://{bucket}/{prefix}?endpoint_url={endpoint}&region=us-east-1"


@pytest.fixture(params=["files", "s3"])
def blob_store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "files":
        return open_blob_store(None, tmp_path / "blobs")
    endpoint = request.getfixturevalue("s3_endpoint")
    return open_blob_store(s3_url(endpoint, s3_bucket(endpoint)), tmp_path)


@pytest.fixture(scope="session")
def results_fake() -> Iterator[FakeProvider]:
    with FakeProvider(api_key="sk-fake-results-" + "0" * 24) as provider:
        yield provider


@pytest.fixture(scope="session")
def elsewhere() -> Iterator[FakeProvider]:
    """Another host (origin) that result downloads may be redirected to."""
    with FakeProvider(api_key="sk-elsewhere-" + "0" * 24) as provider:
        yield provider


@pytest.fixture(autouse=True)
def _reset_fakes(request: pytest.FixtureRequest) -> None:
    for name in ("results_fake", "elsewhere"):
        if name in request.fixturenames:
            request.getfixturevalue(name).reset()
