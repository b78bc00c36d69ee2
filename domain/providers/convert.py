"""Reading an OpenAI chat request for the adapters that must rebuild it in another format.

Whatever cannot be expressed upstream is refused with a clear invalid_request instead of
being dropped: a silently ignored tool definition or JSON mode would hand the client a
well-formed answer to a different question.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from domain.providers.errors import invalid_request

SYSTEM_ROLES = frozenset({"system", "developer"})


@dataclass(frozen=True)
class TextPart:
    text: str


@dataclass(frozen=True)
class ImagePart:
    url: str | None  # a remote URL, or None for inline data
    media_type: str | None
    data: str | None  # base64, for data: URLs


Part = TextPart | ImagePart


def new_completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def now() -> int:
    return int(time.time())


def reject_unsupported(request: dict[str, Any], label: str) -> None:
    if request.get("tools") or request.get("functions"):
        raise invalid_request(f"tools are not supported for {label} channels yet")
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid_request("messages must be a non-empty list")
    for message in messages:
        if not isinstance(message, dict):
            raise invalid_request("each message must be an object")
        if message.get("role") in ("tool", "function") or message.get("tool_calls"):
            raise invalid_request(f"tools are not supported for {label} channels yet")
        if message.get("function_call"):
            raise invalid_request(f"tools are not supported for {label} channels yet")
    n = request.get("n")
    if n is not None and n != 1:
        raise invalid_request(f"n other than 1 is not supported for {label} channels")
    fmt = request.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") not in (None, "text"):
        allowed = label == "google" and fmt.get("type") == "json_object"
        if not allowed:
            raise invalid_request(
                f"response_format {fmt.get('type')!r} is not supported for {label} channels yet"
            )


def parse_data_url(url: str) -> ImagePart:
    header, sep, data = url.partition(",")
    meta = header.removeprefix("data:").split(";")
    if not sep or "base64" not in meta[1:] or not data:
        raise invalid_request("image data URLs must be base64 encoded (data:<type>;base64,...)")
    return ImagePart(url=None, media_type=meta[0] or "application/octet-stream", data=data)


def iter_parts(content: Any, label: str) -> Iterator[Part]:
    """Text and image parts of one message's content, in order; empty text is skipped."""
    if content is None:
        return
    if isinstance(content, str):
        if content:
            yield TextPart(content)
        return
    if not isinstance(content, list):
        raise invalid_request("message content must be a string or a list of parts")
    for part in content:
        if isinstance(part, str):
            if part:
                yield TextPart(part)
            continue
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part, dict):
            text = part.get("text")
            if not isinstance(text, str):
                raise invalid_request("text parts need a string 'text'")
            if text:
                yield TextPart(text)
        elif kind == "image_url" and isinstance(part, dict):
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str) or not url:
                raise invalid_request("image_url parts need a url")
            if url.startswith("data:"):
                yield parse_data_url(url)
            else:
                yield ImagePart(url=url, media_type=None, data=None)
        elif kind == "refusal":
            continue  # an earlier assistant refusal carries no content to replay
        else:
            raise invalid_request(f"content part type {kind!r} is not supported for {label}")


def text_only(content: Any, label: str) -> str:
    parts = list(iter_parts(content, label))
    if any(isinstance(p, ImagePart) for p in parts):
        raise invalid_request("system messages may only contain text")
    return "".join(p.text for p in parts if isinstance(p, TextPart))


def positive_int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def max_output_tokens(request: dict[str, Any]) -> int | None:
    return positive_int(request.get("max_completion_tokens")) or positive_int(
        request.get("max_tokens")
    )


def stop_sequences(request: dict[str, Any]) -> list[str] | None:
    stop = request.get("stop")
    if isinstance(stop, str):
        return [stop] if stop else None
    if isinstance(stop, list):
        items = [s for s in stop if isinstance(s, str) and s]
        return items or None
    return None


def number(value: Any) -> int | float | None:
    """Sampling knobs (not money) copied only when they are real numbers."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return None


def split_system(request: dict[str, Any], label: str) -> tuple[list[str], list[dict[str, Any]]]:
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for message in request["messages"]:
        role = message.get("role")
        if role in SYSTEM_ROLES:
            text = text_only(message.get("content"), label)
            if text:
                system.append(text)
        elif role in ("user", "assistant"):
            turns.append(message)
        else:
            raise invalid_request(f"message role {role!r} is not supported for {label} channels")
    return system, turns
