"""Request body schemas of the media shims (images, videos, speech), for the OpenAPI
document only: the shims read their bodies by hand and the task validator
(`domain.providers.media_input`) decides, so `/docs` can build a request and the fuzz run
knows each body's shape."""

from __future__ import annotations

from typing import Any

from api.relay.bodies import MODEL, json_body
from domain.providers.media_input import (
    AUDIO_FORMATS,
    AUDIO_MAX_CHARS,
    IMAGE_MAX_N,
    PROMPT_MAX_CHARS,
    SHORT_FIELD_MAX_CHARS,
    VIDEO_MAX_SECONDS,
    VIDEO_MIN_SECONDS,
)

PROMPT: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": PROMPT_MAX_CHARS}
SHORT: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": SHORT_FIELD_MAX_CHARS}

IMAGES_BODY = json_body(
    {
        "type": "object",
        "required": ["model", "prompt"],
        "properties": {
            "model": MODEL,
            "prompt": PROMPT,
            "n": {"type": "integer", "minimum": 1, "maximum": IMAGE_MAX_N},
            "size": SHORT,
            "quality": SHORT,
            "response_format": {"type": "string", "enum": ["url", "b64_json"]},
            "user": {"type": "string"},
        },
    },
    {"model": "demo-image", "prompt": "a lighthouse at dawn", "n": 1},
)

_VIDEO_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["model", "prompt"],
    "properties": {
        "model": MODEL,
        "prompt": PROMPT,
        # OpenAI's video API spells seconds as a string ("8"); integers are accepted too.
        "seconds": {
            "oneOf": [
                {"type": "string", "pattern": "^[0-9]+$"},
                {"type": "integer", "minimum": VIDEO_MIN_SECONDS, "maximum": VIDEO_MAX_SECONDS},
            ]
        },
        "size": SHORT,
    },
}
VIDEOS_BODY = json_body(_VIDEO_SCHEMA, {"model": "demo-video", "prompt": "waves", "seconds": "4"})
# The OpenAI SDK sends video requests as a multipart form.
VIDEOS_BODY["content"]["multipart/form-data"] = {"schema": _VIDEO_SCHEMA}

SPEECH_BODY = json_body(
    {
        "type": "object",
        "required": ["model", "input"],
        "properties": {
            "model": MODEL,
            "input": {"type": "string", "minLength": 1, "maxLength": AUDIO_MAX_CHARS},
            "voice": SHORT,
            "response_format": {"type": "string", "enum": sorted(AUDIO_FORMATS)},
        },
    },
    {"model": "demo-speech", "input": "Hello there!", "voice": "alloy"},
)
