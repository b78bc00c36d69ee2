"""Legacy `/v1/completions` served by chat models.

Upstreams dropped the completions endpoint long ago, so a prompt becomes the single user
message of a chat request and each chat choice becomes a completion choice. The answer is
therefore the chat model's reply to the prompt, not a raw continuation of it; clients of
this endpoint today (SDK samples, older tools) send instructions, which chat models answer
well. What chat cannot do is refused with a 400 naming the field: `echo` (the prompt is
not part of a chat answer), `logprobs` (not carried through translation), `suffix`
(insertion), `best_of` above 1 (server-side sampling of candidates), and more than one
prompt or token-id prompts (one request is one chat request). `max_tokens` defaults to 16,
as OpenAI's does.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Any

from domain.errors import InvalidRequest

DEFAULT_MAX_TOKENS = 16
# Sampling and accounting fields with the same name and meaning in chat.
_PASSED = (
    "temperature",
    "top_p",
    "n",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "seed",
    "user",
)
_FINISH = {"stop": "stop", "length": "length", "content_filter": "content_filter"}


def _refuse(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param)


@dataclass(frozen=True)
class CompletionsRequest:
    chat: dict[str, Any]
    model: str
    stream: bool
    include_usage: bool


def _prompt(raw: Any) -> str:
    if isinstance(raw, str):
        return raw
    if isinstance(raw, list) and len(raw) == 1 and isinstance(raw[0], str):
        return raw[0]
    if isinstance(raw, list) and raw and all(isinstance(p, str) for p in raw):
        raise _refuse("only one prompt per request is supported", "prompt")
    raise _refuse("`prompt` must be a string (token-id prompts are not supported)", "prompt")


def completions_to_chat(body: Any) -> CompletionsRequest:
    """A completions request as a chat body; refusals are `InvalidRequest` with `param`."""
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise _refuse("`model` is required", "model")
    if "prompt" not in body:
        raise _refuse("`prompt` is required", "prompt")
    prompt = _prompt(body["prompt"])
    if body.get("echo") is True:
        raise _refuse("`echo` is not supported: answers come from chat models", "echo")
    if body.get("logprobs") is not None:
        raise _refuse("`logprobs` is not supported on this endpoint", "logprobs")
    if body.get("suffix"):
        raise _refuse("`suffix` (insertion) is not supported", "suffix")
    if body.get("best_of") not in (None, 1):
        raise _refuse("`best_of` above 1 is not supported", "best_of")
    cap = body.get("max_tokens", DEFAULT_MAX_TOKENS)
    if not isinstance(cap, int) or isinstance(cap, bool) or cap < 1:
        raise _refuse("`max_tokens` must be a positive integer", "max_tokens")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise _refuse("`stream` must be a boolean", "stream")
    chat: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": cap,
    }
    for name in _PASSED:
        if body.get(name) is not None:
            chat[name] = body[name]
    stream = body.get("stream") is True
    options = body.get("stream_options")
    include_usage = stream and isinstance(options, dict) and options.get("include_usage") is True
    if stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}  # the relay bills from it
    return CompletionsRequest(chat=chat, model=model, stream=stream, include_usage=include_usage)


def new_completion_id() -> str:
    return f"cmpl-{uuid.uuid4().hex[:24]}"


def _finish(reason: Any) -> str | None:
    if reason is None:
        return None
    return _FINISH.get(str(reason), "stop")  # tool_calls cannot happen: no tools were sent


def _text(message: Any) -> str:
    content = message.get("content") if isinstance(message, dict) else None
    return content if isinstance(content, str) else ""


def completion_from_chat(
    body: dict[str, Any], *, model: str, completion_id: str | None = None
) -> dict[str, Any]:
    """The relay's chat completion as a `text_completion` object, one choice per choice."""
    choices = []
    for position, choice in enumerate(body.get("choices") or ()):
        if not isinstance(choice, dict):
            continue
        index = choice.get("index", position)
        choices.append(
            {
                "text": _text(choice.get("message")),
                "index": index if isinstance(index, int) else position,
                "logprobs": None,
                "finish_reason": _finish(choice.get("finish_reason")) or "stop",
            }
        )
    created = body.get("created")
    out: dict[str, Any] = {
        "id": completion_id or new_completion_id(),
        "object": "text_completion",
        "created": created if isinstance(created, int) else int(time.time()),
        "model": model,
        "choices": choices,
    }
    if isinstance(body.get("usage"), dict):
        out["usage"] = body["usage"]
    if isinstance(body.get("system_fingerprint"), str):
        out["system_fingerprint"] = body["system_fingerprint"]
    return out


class CompletionsStream:
    """Chat chunks in, `text_completion` chunks out (bare `data:` frames, then `[DONE]`).

    A choice's role announcement carries no text and is skipped; the usage-only chunk is
    forwarded only when the client asked for it, as the chat route does."""

    def __init__(
        self, *, model: str, include_usage: bool, completion_id: str | None = None
    ) -> None:
        self.model = model
        self.include_usage = include_usage
        self.completion_id = completion_id or new_completion_id()
        self.created: int | None = None

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        if self.created is None:
            created = chunk.get("created")
            self.created = created if isinstance(created, int) else int(time.time())
        choices = chunk.get("choices")
        if not choices:
            if self.include_usage and isinstance(chunk.get("usage"), dict):
                return [self._chunk([], usage=chunk["usage"])]
            return []
        out: list[dict[str, Any]] = []
        for position, choice in enumerate(choices):
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            text = _text(delta)
            finish = _finish(choice.get("finish_reason"))
            if not text and finish is None:
                continue
            index = choice.get("index", position)
            entry = {
                "text": text,
                "index": index if isinstance(index, int) else position,
                "logprobs": None,
                "finish_reason": finish,
            }
            out.append(entry)
        return [self._chunk(out)] if out else []

    def _chunk(self, choices: list[dict[str, Any]], usage: Any = None) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.completion_id,
            "object": "text_completion",
            "created": self.created or int(time.time()),
            "model": self.model,
            "choices": choices,
        }
        if usage is not None:
            chunk["usage"] = usage
        return chunk


async def completion_chunks(
    chunks: AsyncIterable[dict[str, Any]], stream: CompletionsStream
) -> AsyncIterator[dict[str, Any]]:
    """Async-iterator form. Upstream errors propagate: the edge ends this stream as it ends
    a chat stream (an error frame instead of `[DONE]`)."""
    async for chunk in chunks:
        for out in stream.feed(chunk):
            yield out
