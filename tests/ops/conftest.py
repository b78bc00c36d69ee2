"""Reuse the relay tests' fake upstream: these tests make real billed calls through it."""

from __future__ import annotations

from tests.relay.conftest import _reset_fake, fake  # noqa: F401
