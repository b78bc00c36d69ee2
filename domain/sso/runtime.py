"""What SSO services need besides a database session, built once by the edge."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from domain.crypto import SecretBox
from domain.egress.policy import EgressPolicy
from domain.identity.service import IdentityConfig


@dataclass(frozen=True)
class SsoRuntime:
    """`http` must be the tenant egress client (built with `egress`): every URL SSO fetches
    is chosen by a tenant."""

    box: SecretBox
    http: httpx.AsyncClient
    egress: EgressPolicy
    identity: IdentityConfig
