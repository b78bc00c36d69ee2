"""Temporal client connection shared by the API, the worker and the CLI.

The API connects lazily so it can start, and report itself not ready, while Temporal is
still coming up; everything money-moving waits for a real client. While Temporal is down
the API's calls give up within `OXINF_TEMPORAL_TIMEOUT_S` (the caller answers 503), and
nothing needs restarting when it returns: a client that never connected connects on the
next call, and a connected one re-dials by itself.
"""

from __future__ import annotations

import asyncio

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RetryConfig

from config.settings import Settings
from domain.outages import DependencyUnavailable


async def connect_temporal(settings: Settings, *, retry: RetryConfig | None = None) -> Client:
    """`retry`: how long each call keeps retrying an unreachable server (the SDK's default,
    about 10 s, unless given)."""
    return await Client.connect(
        settings.temporal_target,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        retry_config=retry or RetryConfig(),
    )


def bounded_retry(timeout_s: float) -> RetryConfig:
    """Retry an unreachable server for at most `timeout_s` per call, then fail."""
    return RetryConfig(max_elapsed_time_millis=max(1, int(timeout_s * 1000)))


class TemporalHandle:
    """Holds one client per process, connecting on first use and retrying after failures."""

    def __init__(self, settings: Settings, client: Client | None = None) -> None:
        self._settings = settings
        self._client = client
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return self._client is not None

    async def get(self, wait_s: float | None = None) -> Client:
        """The client; `DependencyUnavailable` (a 503) if Temporal cannot be reached."""
        if self._client is not None:
            return self._client
        timeout = wait_s if wait_s is not None else self._settings.temporal_timeout_s
        async with self._lock:
            if self._client is None:
                try:
                    self._client = await asyncio.wait_for(
                        connect_temporal(
                            self._settings,
                            retry=bounded_retry(self._settings.temporal_timeout_s),
                        ),
                        timeout,
                    )
                except (RuntimeError, OSError) as exc:  # refused, unreachable, timed out
                    raise DependencyUnavailable("temporal") from exc
            return self._client

    async def check(self, wait_s: float = 2.0) -> None:
        client = await self.get(wait_s)
        await asyncio.wait_for(client.service_client.check_health(), wait_s)
