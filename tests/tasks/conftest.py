"""Task tests share one fake upstream (reset per test) and the relay test fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.provider import FakeProvider


@pytest.fixture(scope="session")
def media_fake() -> Iterator[FakeProvider]:
    with FakeProvider(api_key="sk-fake-media-" + "0" * 24) as provider:
        yield provider


@pytest.fixture(autouse=True)
def _reset_media_fake(media_fake: FakeProvider) -> None:
    media_fake.reset()
