"""Media input rules, hold sizes and the outcome's wire form (it crosses Temporal activities)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from temporalio.converter import DataConverter

from api.errors import domain_error_response
from domain.errors import InvalidField
from domain.providers.media import (
    MediaOutcome,
    MediaSubmission,
    MediaType,
    max_units,
    validate_media_input,
)


@pytest.mark.parametrize(
    ("media_type", "data", "param", "fragment"),
    [
        ("image", {}, "input.prompt", "required"),
        ("image", {"prompt": "   "}, "input.prompt", "required"),
        ("image", {"prompt": 3}, "input.prompt", "required"),
        ("image", {"prompt": "x" * 32_001}, "input.prompt", "at most 32,000"),
        ("image", {"prompt": "p", "n": 0}, "input.n", "from 1 to 10"),
        ("image", {"prompt": "p", "n": 11}, "input.n", "from 1 to 10"),
        ("image", {"prompt": "p", "n": True}, "input.n", "integer"),
        ("image", {"prompt": "p", "n": 2.0}, "input.n", "integer"),
        ("image", {"prompt": "p", "size": ""}, "input.size", "non-empty"),
        ("image", {"prompt": "p", "stream": True}, "input.stream", "streaming"),
        ("video", {"seconds": 4}, "input.prompt", "required"),
        ("video", {"prompt": "p", "seconds": 0}, "input.seconds", "from 1 to 60"),
        ("video", {"prompt": "p", "seconds": 61}, "input.seconds", "from 1 to 60"),
        ("video", {"prompt": "p", "seconds": 4.5}, "input.seconds", "integer"),
        ("video", {"prompt": "p", "seconds": "-4"}, "input.seconds", "integer"),
        ("audio", {}, "input.text", "required"),
        ("audio", {"input": None}, "input.text", "required"),
        ("audio", {"text": ""}, "input.text", "required"),
        ("audio", {"text": "x" * 100_001}, "input.text", "at most 100,000"),
        ("audio", {"text": "a", "input": "b"}, "input.text", "once"),
        ("audio", {"text": "a", "format": "ogg"}, "input.format", "mp3"),
        ("audio", {"text": "a", "voice": 7}, "input.voice", "string"),
    ],
)
def test_bad_input_is_a_clear_invalid_field(
    media_type: MediaType, data: dict[str, Any], param: str, fragment: str
) -> None:
    with pytest.raises(InvalidField) as info:
        validate_media_input(media_type, data)
    err = info.value
    assert (err.code, err.param) == ("invalid_request", param)
    assert domain_error_response(err).status_code == 400
    assert fragment in err.message
    with pytest.raises(InvalidField):
        max_units(media_type, data)  # the hold is never sized from a bad input


def test_bad_type_and_shape() -> None:
    with pytest.raises(InvalidField) as info:
        validate_media_input("music", {"prompt": "p"})  # type: ignore[arg-type]
    assert info.value.param == "type"
    with pytest.raises(InvalidField) as info:
        validate_media_input("image", ["p"])  # type: ignore[arg-type]
    assert info.value.param == "input"


@pytest.mark.parametrize(
    ("media_type", "data", "cleaned"),
    [
        ("image", {"prompt": "p"}, {"prompt": "p", "n": 1}),
        (
            "image",
            {"prompt": "p", "n": 4, "size": "512x512", "quality": "hd", "style": {"x": 1}},
            {"prompt": "p", "n": 4, "size": "512x512", "quality": "hd", "style": {"x": 1}},
        ),
        ("image", {"prompt": "p", "model": "other", "stream": False}, {"prompt": "p", "n": 1}),
        ("video", {"prompt": "p"}, {"prompt": "p", "seconds": 4}),
        ("video", {"prompt": "p", "seconds": "8", "size": "720x1280"}, None),
        ("audio", {"input": "hi"}, {"text": "hi", "voice": "alloy"}),
        (
            "audio",
            {"text": "hi", "input": "hi", "voice": "nova", "response_format": "wav", "speed": 2},
            {"text": "hi", "voice": "nova", "format": "wav", "speed": 2},
        ),
    ],
)
def test_cleaned_copy(
    media_type: MediaType, data: dict[str, Any], cleaned: dict[str, Any] | None
) -> None:
    before = copy.deepcopy(data)
    out = validate_media_input(media_type, data)
    assert data == before
    if cleaned is None:
        cleaned = {"prompt": "p", "seconds": 8, "size": "720x1280"}
    assert out == cleaned
    # Stored inputs are validated again at submit: that must be a no-op.
    assert validate_media_input(media_type, out) == out


@pytest.mark.parametrize(
    ("media_type", "data", "units"),
    [
        ("image", {"prompt": "p"}, 1),
        ("image", {"prompt": "p", "n": 10}, 10),
        ("video", {"prompt": "p"}, 4),
        ("video", {"prompt": "p", "seconds": 60}, 60),
        ("video", {"prompt": "p", "seconds": "12"}, 12),
        ("audio", {"text": "a"}, 1),
        ("audio", {"text": "a" * 1000}, 1),
        ("audio", {"text": "a" * 1001}, 2),
        ("audio", {"input": "a" * 100_000}, 100),
    ],
)
def test_max_units(media_type: MediaType, data: dict[str, Any], units: int) -> None:
    got = max_units(media_type, data)
    assert got == units and type(got) is int


def test_outcome_round_trips_as_json() -> None:
    outcome = MediaOutcome(
        status="succeeded",
        progress=100,
        urls=["https://x/1"],
        content_b64="aGk=",
        content_type="audio/mpeg",
        units=3,
    )
    sub = MediaSubmission("job_1", outcome, "req_1", {"cf-ray": "abc"})
    wire = json.loads(json.dumps(sub.to_dict()))
    assert MediaSubmission.from_dict(wire) == sub
    assert MediaOutcome.from_dict(json.loads(json.dumps(outcome.to_dict()))) == outcome
    # Temporal's own converter handles the dataclasses as well.
    converter = DataConverter.default.payload_converter
    payloads = converter.to_payloads([sub, outcome])
    assert converter.from_payloads(payloads, [MediaSubmission, MediaOutcome]) == [sub, outcome]


@pytest.mark.parametrize(
    "data",
    [
        {"status": "done"},
        {"status": "succeeded", "units": -1},
        {"status": "succeeded", "units": "3"},
        {"status": "processing", "progress": 101},
        {"status": "failed", "urls": "https://x"},
        {"status": "failed", "error_code": 3},
    ],
)
def test_corrupt_outcomes_are_rejected(data: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        MediaOutcome.from_dict(data)


def test_repr_stays_small() -> None:
    outcome = MediaOutcome(
        status="succeeded", urls=["data:image/png;base64," + "A" * 10_000], content_b64="B" * 10_000
    )
    text = repr(outcome)
    assert len(text) < 400 and "10000 b64 chars" in text
