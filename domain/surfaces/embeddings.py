"""`/v1/embeddings`: request validation, the token estimate, and the response encodings.

The relay asks every upstream for plain floats (every OpenAI-compatible server supports
them; base64 is optional there) and encodes for the client itself, so `encoding_format`
means the same on every channel. `base64` is what OpenAI sends: each vector's float32
values, little-endian, concatenated and base64-encoded; the official SDK requests it by
default and decodes it exactly so. `dimensions` is passed through: only the model can
shorten its vectors meaningfully.

Input is billed in input tokens only. The estimate sizes the credit hold before dispatch,
so it leans high like `estimate_prompt_tokens` (UTF-8 bytes / 3 for text, exact counts for
token-id input); the charge uses the upstream's reported `prompt_tokens`.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from domain.errors import InvalidRequest
from domain.inputs import INT32_MAX, text_problem

MAX_INPUTS = 2048  # OpenAI's limit on inputs per request
MAX_DIMENSIONS = 65536

EncodingFormat = Literal["float", "base64"]
EmbeddingInput = str | list[str] | list[int] | list[list[int]]


def _refuse(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param)


@dataclass(frozen=True)
class EmbeddingsRequest:
    model: str
    input: EmbeddingInput
    encoding_format: EncodingFormat
    dimensions: int | None
    user: str | None

    def upstream_body(self, upstream_model: str) -> dict[str, Any]:
        """What an OpenAI-compatible upstream receives (floats: see the module note)."""
        body: dict[str, Any] = {
            "model": upstream_model,
            "input": self.input,
            "encoding_format": "float",
        }
        if self.dimensions is not None:
            body["dimensions"] = self.dimensions
        if self.user is not None:
            body["user"] = self.user
        return body

    @property
    def count(self) -> int:
        """How many vectors the answer must hold."""
        if isinstance(self.input, str):
            return 1
        if self.input and isinstance(self.input[0], list):
            return len(self.input)
        if self.input and isinstance(self.input[0], int):
            return 1
        return len(self.input)


def _token_ids(values: list[Any], where: str) -> list[int]:
    if not values:
        raise _refuse(f"{where} must not be empty", "input")
    for value in values:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= INT32_MAX:
            raise _refuse(f"{where} must hold non-negative integer token ids", "input")
    return values


def _check_text(value: str, where: str) -> str:
    if not value:
        raise _refuse(f"{where} must not be an empty string", "input")
    problem = text_problem(value)
    if problem:
        raise _refuse(f"{where} {problem}", "input")
    return value


def _input(raw: Any) -> EmbeddingInput:
    if isinstance(raw, str):
        return _check_text(raw, "`input`")
    if not isinstance(raw, list) or not raw:
        raise _refuse(
            "`input` must be a string, an array of strings or an array of token ids", "input"
        )
    if len(raw) > MAX_INPUTS:
        raise _refuse(f"`input` may hold at most {MAX_INPUTS} items", "input")
    first = raw[0]
    if isinstance(first, str):
        if not all(isinstance(v, str) for v in raw):
            raise _refuse("`input` must not mix strings with other values", "input")
        return [_check_text(v, f"input[{i}]") for i, v in enumerate(raw)]
    if isinstance(first, list):
        if not all(isinstance(v, list) for v in raw):
            raise _refuse("`input` must not mix token arrays with other values", "input")
        return [_token_ids(v, f"input[{i}]") for i, v in enumerate(raw)]
    return _token_ids(raw, "`input`")


def validate_embeddings_body(body: Any) -> EmbeddingsRequest:
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise _refuse("`model` is required", "model")
    if "input" not in body:
        raise _refuse("`input` is required", "input")
    fmt = body.get("encoding_format", "float")
    if fmt is None:
        fmt = "float"
    if fmt not in ("float", "base64"):
        raise _refuse("`encoding_format` must be 'float' or 'base64'", "encoding_format")
    dims = body.get("dimensions")
    if dims is not None and (
        not isinstance(dims, int) or isinstance(dims, bool) or not 1 <= dims <= MAX_DIMENSIONS
    ):
        raise _refuse(
            f"`dimensions` must be a positive integer (at most {MAX_DIMENSIONS})", "dimensions"
        )
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise _refuse("`user` must be a string", "user")
    return EmbeddingsRequest(
        model=model,
        input=_input(body["input"]),
        encoding_format=fmt,
        dimensions=dims,
        user=user,
    )


def _text_tokens(text: str) -> int:
    return -(-len(text.encode("utf-8")) // 3)


def estimate_input_tokens(value: EmbeddingInput) -> int:
    """Input tokens to hold credits for: bytes/3 per text (leaning high, as the chat
    estimate does), the exact count for token ids."""
    if isinstance(value, str):
        return _text_tokens(value)
    total = 0
    for item in value:
        if isinstance(item, str):
            total += _text_tokens(item)
        elif isinstance(item, list):
            total += len(item)
        else:
            total += 1
    return total


def encode_base64(vector: Sequence[float]) -> str:
    """OpenAI's base64 form: float32, little-endian, concatenated."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def decode_base64(data: str) -> list[float]:
    raw = base64.b64decode(data, validate=True)
    if len(raw) % 4:
        raise ValueError("base64 embedding is not a whole number of float32 values")
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def embeddings_response(
    vectors: Sequence[Sequence[float]],
    *,
    model: str,
    encoding_format: EncodingFormat,
    prompt_tokens: int,
) -> dict[str, Any]:
    """The OpenAI embeddings answer for `vectors`, in the client's encoding."""
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": encode_base64(v) if encoding_format == "base64" else [float(x) for x in v],
        }
        for i, v in enumerate(vectors)
    ]
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def read_embeddings(body: Any) -> tuple[list[list[float]], int | None]:
    """Vectors (in index order) and reported prompt tokens from an OpenAI-compatible
    upstream's answer, float or base64. Raises ValueError on a malformed answer."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise ValueError("embeddings answer has no data list")
    indexed: list[tuple[int, list[float]]] = []
    for position, item in enumerate(data):
        if not isinstance(item, dict):
            raise ValueError("embeddings answer item is not an object")
        raw = item.get("embedding")
        if isinstance(raw, str):
            vector = decode_base64(raw)
        elif isinstance(raw, list) and all(
            isinstance(x, int | float) and not isinstance(x, bool) for x in raw
        ):
            vector = [float(x) for x in raw]
        else:
            raise ValueError("embeddings answer item has no vector")
        index = item.get("index", position)
        indexed.append((index if isinstance(index, int) else position, vector))
    indexed.sort(key=lambda pair: pair[0])
    usage = body.get("usage")
    tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    reported = tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else None
    return [v for _, v in indexed], reported
