"""Chaos tests own their fake upstream: fault knobs set here never reach other suites."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.provider import FakeProvider


@pytest.fixture
def chaos_fake() -> Iterator[FakeProvider]:
    with FakeProvider(api_key="sk-fake-chaos-" + "0" * 24) as provider:
        yield provider
