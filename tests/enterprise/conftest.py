"""Enterprise tests bill real chats through the fake upstream, like the relay tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.provider import FakeProvider


@pytest.fixture(scope="session")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider(api_key="sk-fake-upstream-" + "1" * 24) as provider:
        yield provider


@pytest.fixture(autouse=True)
def _reset_fake(fake: FakeProvider) -> None:
    fake.reset()
