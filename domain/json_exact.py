"""Parsing JSON fast without changing a client's numbers.

orjson parses integers only up to 64 bits and turns longer ones into floats, so a client's
`"seed": 123456789012345678901234567890` would reach the upstream rounded. Bodies with a run
of 19 or more digits anywhere (rare: long ids, such integers) are parsed by the standard
library instead, which keeps every integer exact; the rest keep orjson's speed.

Both paths are strict: NaN and Infinity are not JSON and are refused, as orjson does.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

# int64 holds every 18-digit number; 19 digits may overflow, so they take the exact path.
_LONG_NUMBER = re.compile(rb"\d{19}")

JSONDecodeError = json.JSONDecodeError  # orjson's own error is a subclass of it


def _refuse_constant(name: str) -> Any:
    raise JSONDecodeError(f"{name} is not valid JSON", name, 0)


def loads(raw: bytes | str) -> Any:
    data = raw.encode() if isinstance(raw, str) else raw
    if _LONG_NUMBER.search(data) is None:
        return orjson.loads(data)
    return json.loads(data, parse_constant=_refuse_constant)


def dumps(obj: Any) -> bytes:
    """orjson, or the standard library for integers beyond 64 bits (orjson refuses them)."""
    try:
        return orjson.dumps(obj)
    except orjson.JSONEncodeError:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
