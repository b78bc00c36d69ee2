"""The relay's tests run against one fake upstream over real HTTP, reset per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.egress.fake_dns import fake_dns  # noqa: F401
from tests.fakes.provider import FakeProvider


@pytest.fixture(scope="session")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider(api_key="sk-fake-upstream-" + "0" * 24) as provider:
        yield provider


@pytest.fixture(autouse=True)
def _reset_fake(fake: FakeProvider) -> None:
    fake.reset()
