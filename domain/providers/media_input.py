"""What a media task may ask for, and the most it can cost.

Validation runs at `POST /v1/tasks` (so a bad input is a synchronous 400, before any credit
is held) and again inside `submit`; the cleaned copy is what gets stored, so both runs see
the same thing and `max_units` of a stored input always equals the hold that was taken.
"""

from __future__ import annotations

from typing import Any

from domain.errors import InvalidField
from domain.inputs import json_problem
from domain.providers.errors import invalid_request
from domain.providers.media_base import MEDIA_TYPES, MediaType

IMAGE_MAX_N = 10
VIDEO_DEFAULT_SECONDS = 4
VIDEO_MIN_SECONDS = 1
VIDEO_MAX_SECONDS = 60
AUDIO_MAX_CHARS = 100_000
AUDIO_CHARS_PER_UNIT = 1000
DEFAULT_VOICE = "alloy"
# Generous for every current image/video model; bounds what a task row and a payload carry.
PROMPT_MAX_CHARS = 32_000
SHORT_FIELD_MAX_CHARS = 64

# OpenAI's speech formats; the content type is only a fallback for upstreams that omit one.
AUDIO_FORMATS: dict[str, str] = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}

# The task's own model is authoritative; one smuggled into the input must not override it.
_DROPPED = ("model",)


def _bad(message: str, name: str) -> InvalidField:
    return InvalidField(message, param=f"input.{name}")


def _text(data: dict[str, Any], name: str, limit: int) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value.strip():
        raise _bad(f"`input.{name}` is required and must be a non-empty string", name)
    if len(value) > limit:
        raise _bad(f"`input.{name}` must be at most {limit:,} characters", name)
    return value


def _short(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > SHORT_FIELD_MAX_CHARS:
        raise _bad(
            f"`input.{name}` must be a non-empty string of at most "
            f"{SHORT_FIELD_MAX_CHARS} characters",
            name,
        )
    return value


def _count(data: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = data.get(name)
    if value is None:
        return default
    # OpenAI's own video API spells seconds as a string ("8"); accept that spelling too.
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _bad(f"`input.{name}` must be an integer from {low} to {high}", name)
    return value


def _extras(data: dict[str, Any], known: tuple[str, ...]) -> dict[str, Any]:
    if data.get("stream"):
        raise _bad("streaming is not supported for media tasks", "stream")
    skip = {*known, *_DROPPED, "stream"}
    return {k: v for k, v in data.items() if k not in skip}


def _image(data: dict[str, Any]) -> dict[str, Any]:
    out = _extras(data, ("prompt", "n", "size", "quality"))
    out["prompt"] = _text(data, "prompt", PROMPT_MAX_CHARS)
    out["n"] = _count(data, "n", 1, 1, IMAGE_MAX_N)
    for name in ("size", "quality"):
        value = _short(data, name)
        if value is not None:
            out[name] = value
    return out


def _video(data: dict[str, Any]) -> dict[str, Any]:
    out = _extras(data, ("prompt", "seconds", "size"))
    out["prompt"] = _text(data, "prompt", PROMPT_MAX_CHARS)
    out["seconds"] = _count(
        data, "seconds", VIDEO_DEFAULT_SECONDS, VIDEO_MIN_SECONDS, VIDEO_MAX_SECONDS
    )
    size = _short(data, "size")
    if size is not None:
        out["size"] = size
    return out


def _audio(data: dict[str, Any]) -> dict[str, Any]:
    # `input` is OpenAI's name, `text` ours; one canonical key keeps unit counting unambiguous.
    out = _extras(data, ("text", "input", "voice", "format", "response_format"))
    text, alias = data.get("text"), data.get("input")
    if text is not None and alias is not None and text != alias:
        raise _bad("give the text once, as `input.text` or `input.input`", "text")
    if text is None and alias is None:
        raise _bad("`input.text` (or OpenAI's `input.input`) is required", "text")
    name = "text" if text is not None else "input"
    out["text"] = _text(data, name, AUDIO_MAX_CHARS)
    out["voice"] = _short(data, "voice") or DEFAULT_VOICE
    fmt, fmt_alias = data.get("format"), data.get("response_format")
    if fmt is not None and fmt_alias is not None and fmt != fmt_alias:
        raise _bad("give the format once, as `input.format`", "format")
    fmt_name = "format" if fmt is not None or fmt_alias is None else "response_format"
    chosen = _short(data, fmt_name)
    if chosen is not None:
        if chosen not in AUDIO_FORMATS:
            raise _bad(f"`input.format` must be one of {', '.join(AUDIO_FORMATS)}", "format")
        out["format"] = chosen
    return out


def validate_media_input(media_type: MediaType, input: dict[str, Any]) -> dict[str, Any]:
    """Returns the cleaned copy to store and submit; validating it again changes nothing."""
    if media_type not in MEDIA_TYPES:
        raise InvalidField(f"type must be one of {', '.join(MEDIA_TYPES)}", param="type")
    if not isinstance(input, dict):
        raise InvalidField("`input` must be an object", param="input")
    found = json_problem(input)  # the input is stored as JSONB and passed upstream as is
    if found is not None:
        where = f"input.{found[0]}" if found[0] else "input"
        raise InvalidField(f"`{where}` {found[1]}", param=where)
    if media_type == "image":
        return _image(input)
    if media_type == "video":
        return _video(input)
    return _audio(input)


def speech_units(text: str) -> int:
    """Thousands of characters, rounded up: integer division, no floats near money."""
    return max(1, -(-len(text) // AUDIO_CHARS_PER_UNIT))


def max_units(media_type: MediaType, input: dict[str, Any]) -> int:
    """The most this input can bill; the hold is priced from this, so it must never undercount."""
    cleaned = validate_media_input(media_type, input)
    if media_type == "image":
        return int(cleaned["n"])
    if media_type == "video":
        return int(cleaned["seconds"])
    return speech_units(cleaned["text"])


def checked_input(media_type: MediaType, input: dict[str, Any]) -> dict[str, Any]:
    """Validation inside `submit`: the workflow handles one error type, UpstreamError."""
    try:
        return validate_media_input(media_type, input)
    except InvalidField as exc:
        raise invalid_request(exc.message) from None
