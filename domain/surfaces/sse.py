"""Server-sent event framing for the translated streams.

Anthropic and the Responses API name each event (`event: <type>` before its `data:`), and
their SDKs dispatch on that name; OpenAI's chat and legacy completions streams send bare
`data:` lines ended by `[DONE]`. Each translated event carries its own `type`, so the name
is taken from it and the two can never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from domain import json_exact

DONE_FRAME = b"data: [DONE]\n\n"


def event_frame(event: Mapping[str, Any]) -> bytes:
    """`event: <type>` + `data: <json>`: the framing of Anthropic and Responses streams."""
    name = str(event["type"]).encode()
    return b"event: " + name + b"\ndata: " + json_exact.dumps(dict(event)) + b"\n\n"


def data_frame(payload: Mapping[str, Any]) -> bytes:
    """A bare `data: <json>` frame: OpenAI chat and legacy completions streams."""
    return b"data: " + json_exact.dumps(dict(payload)) + b"\n\n"
