"""What activities are given at worker start, so none of them opens its own pools."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from config.settings import Settings
from schema.db import SessionFactory


@dataclass(frozen=True)
class ActivityDeps:
    settings: Settings
    sessions: SessionFactory
    http: httpx.AsyncClient
