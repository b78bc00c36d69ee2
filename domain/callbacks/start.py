"""What a callback sends: the body every attempt of one delivery carries.

A delivery is started only after the transaction that finished the task has committed
(`domain.ports.WorkflowStarter.start_callback`, or the task workflow's own child start).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


def build_payload(event: str, data: dict[str, Any], occurred_at: datetime) -> dict[str, Any]:
    """The body shape Standard Webhooks recommends: `{type, timestamp, data}`.

    `occurred_at` is when the event happened (not when it is sent), so every retry carries
    the same body.
    """
    return {"type": event, "timestamp": occurred_at.isoformat(), "data": data}
