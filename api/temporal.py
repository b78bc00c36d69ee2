"""Temporal client connection shared by the API, the worker and the CLI.

The API connects lazily so it can start, and report itself not ready, while Temporal is
still coming up; everything money-moving waits for a real client.
"""

from __future__ import annotations

import asyncio

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from api.settings import Settings


async def connect_temporal(settings: Settings) -> Client:
    return await Client.connect(
        settings.temporal_target,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
    )


class TemporalHandle:
    """Holds one client per process, connecting on first use and retrying after failures."""

    def __init__(self, settings: Settings, client: Client | None = None) -> None:
        self._settings = settings
        self._client = client
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return self._client is not None

    async def get(self, wait_s: float = 5.0) -> Client:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                self._client = await asyncio.wait_for(connect_temporal(self._settings), wait_s)
            return self._client

    async def check(self, wait_s: float = 2.0) -> None:
        client = await self.get(wait_s)
        await asyncio.wait_for(client.service_client.check_health(), wait_s)
