"""`/v1/embeddings`: validation, the hold estimate, and both encodings as the SDK decodes
them."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import httpx2
import pytest
from openai.types import CreateEmbeddingResponse

from domain.errors import InvalidRequest
from domain.surfaces.embeddings import (
    MAX_INPUTS,
    decode_base64,
    embeddings_response,
    encode_base64,
    estimate_input_tokens,
    read_embeddings,
    validate_embeddings_body,
)
from tests.surfaces.sdk import no_extras, openai_client

VECTORS = [[0.1, -0.25, 3.5e-5, 1.0], [-0.0, 0.333333, 12.75, -1e-8]]


def _float32(values: list[float]) -> list[float]:
    return list(struct.unpack(f"<{len(values)}f", struct.pack(f"<{len(values)}f", *values)))


@pytest.mark.parametrize(
    ("value", "count", "tokens"),
    [
        ("The food was delicious", 1, 8),  # 22 bytes / 3, rounded up
        (["a", "bcd", "é"], 3, 3),
        ([1, 2, 3, 4], 1, 4),  # token ids are counted exactly
        ([[1, 2], [3, 4, 5]], 2, 5),
    ],
)
def test_valid_inputs(value: Any, count: int, tokens: int) -> None:
    request = validate_embeddings_body({"model": "text-embedding-3-small", "input": value})
    assert request.input == value and request.count == count
    assert request.encoding_format == "float" and request.dimensions is None
    assert estimate_input_tokens(request.input) == tokens


def test_upstream_body_always_asks_for_floats() -> None:
    request = validate_embeddings_body(
        {
            "model": "public",
            "input": ["x"],
            "encoding_format": "base64",
            "dimensions": 256,
            "user": "u",
        }
    )
    assert request.upstream_body("text-embedding-3-large") == {
        "model": "text-embedding-3-large",
        "input": ["x"],
        "encoding_format": "float",
        "dimensions": 256,
        "user": "u",
    }


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"input": ""}, "input"),
        ({"input": []}, "input"),
        ({"input": ["ok", ""]}, "input"),
        ({"input": ["ok", 3]}, "input"),
        ({"input": [1, -2]}, "input"),
        ({"input": [1, True]}, "input"),
        ({"input": [[1], []]}, "input"),
        ({"input": [[1], "x"]}, "input"),
        ({"input": "nul\x00byte"}, "input"),
        ({"input": {"text": "x"}}, "input"),
        ({"input": ["x"] * (MAX_INPUTS + 1)}, "input"),
        ({"encoding_format": "int8"}, "encoding_format"),
        ({"dimensions": 0}, "dimensions"),
        ({"dimensions": 1.5}, "dimensions"),
        ({"dimensions": True}, "dimensions"),
        ({"model": 5}, "model"),
        ({"user": 5}, "user"),
    ],
)
def test_refusals_name_the_field(changes: dict[str, Any], param: str) -> None:
    body = {"model": "m", "input": "x", **changes}
    with pytest.raises(InvalidRequest) as caught:
        validate_embeddings_body(body)
    assert caught.value.param == param


def test_base64_is_little_endian_float32_exactly() -> None:
    encoded = encode_base64([1.0, -2.5])
    assert base64.b64decode(encoded) == b"\x00\x00\x80\x3f\x00\x00\x20\xc0"
    assert decode_base64(encode_base64(VECTORS[1])) == _float32(VECTORS[1])
    with pytest.raises(ValueError):
        decode_base64(base64.b64encode(b"\x00\x01\x02").decode())


@pytest.mark.parametrize("fmt", ["float", "base64"])
def test_response_shapes(fmt: str) -> None:
    out = embeddings_response(
        VECTORS, model="text-embedding-3-small", encoding_format=fmt, prompt_tokens=11
    )  # type: ignore[arg-type]
    if fmt == "float":
        parsed = CreateEmbeddingResponse.model_validate(out)
        no_extras(parsed)
        assert [d.embedding for d in parsed.data] == VECTORS
    else:
        assert all(isinstance(d["embedding"], str) for d in out["data"])
    assert [d["index"] for d in out["data"]] == [0, 1]
    assert out["usage"] == {"prompt_tokens": 11, "total_tokens": 11}
    assert read_embeddings(out) == (
        [_float32(v) for v in VECTORS] if fmt == "base64" else VECTORS,
        11,
    )


def test_reading_an_upstream_answer_out_of_order() -> None:
    body = {
        "data": [{"index": 1, "embedding": [2.0]}, {"index": 0, "embedding": [1]}],
        "usage": {"prompt_tokens": 3},
    }
    assert read_embeddings(body) == ([[1.0], [2.0]], 3)
    assert read_embeddings({"data": []}) == ([], None)
    for bad in (
        {},
        {"data": [5]},
        {"data": [{"embedding": "%%%"}]},
        {"data": [{"embedding": ["x"]}]},
    ):
        with pytest.raises(ValueError):
            read_embeddings(bad)


@pytest.mark.parametrize("fmt", [None, "float", "base64"])
async def test_the_openai_sdk_decodes_both_encodings(fmt: str | None) -> None:
    seen: list[dict[str, Any]] = []

    async def handler(request: httpx2.Request) -> httpx2.Response:
        request_body = json.loads(request.content)
        seen.append(request_body)
        parsed = validate_embeddings_body(request_body)
        out = embeddings_response(
            VECTORS, model=parsed.model, encoding_format=parsed.encoding_format, prompt_tokens=6
        )
        return httpx2.Response(200, json=out)

    client = openai_client(handler)
    kwargs: dict[str, Any] = {} if fmt is None else {"encoding_format": fmt}
    answer = await client.embeddings.create(
        model="text-embedding-3-small", input=["a", "b"], **kwargs
    )
    got = [d.embedding for d in answer.data]
    assert answer.usage.prompt_tokens == 6
    if fmt == "float":
        assert got == VECTORS
    elif fmt == "base64":  # asked for explicitly, the SDK hands over the strings
        assert [decode_base64(e) for e in got] == [_float32(v) for v in VECTORS]  # type: ignore[arg-type]
    else:  # by default the SDK asks for base64 and decodes it itself
        assert seen[0]["encoding_format"] == "base64"
        assert got == [_float32(v) for v in VECTORS]
