"""The built-in provider that answers without a network, for `make dev` and benchmarks.

Answers are a pure function of the request so demos and benchmark runs are reproducible and
ledger checks can predict the exact usage: prompt tokens are our own estimate and
completion tokens are the words in the answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from domain.providers.base import ChatResult, ChatStream, Upstream, Usage
from domain.providers.convert import max_output_tokens, new_completion_id, now
from domain.providers.http_chat import completion
from domain.providers.tokens import estimate_prompt_tokens

GREETING = "Hello from 0xinf demo."
ECHO_WORDS = 20


def _last_user_text(request: dict[str, Any]) -> str:
    messages = request.get("messages")
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return " ".join(
                p["text"]
                for p in content
                if isinstance(p, dict)
                and p.get("type") == "text"
                and isinstance(p.get("text"), str)
            )
        return ""
    return ""


def answer_words(request: dict[str, Any]) -> tuple[list[str], bool]:
    """The answer's words and whether max_tokens cut it short."""
    said = _last_user_text(request).split()[:ECHO_WORDS]
    words = GREETING.split() + (["You", "said:", *said] if said else [])
    cap = max_output_tokens(request)
    if cap is not None and cap < len(words):
        return words[:cap], True
    return words, False


def _usage(request: dict[str, Any], words: list[str]) -> Usage:
    return Usage(prompt_tokens=estimate_prompt_tokens(request), completion_tokens=len(words))


class DemoAdapter:
    async def chat(
        self,
        http: httpx.AsyncClient,
        upstream: Upstream,
        request: dict[str, Any],
        public_model: str,
    ) -> ChatResult:
        words, capped = answer_words(request)
        usage = _usage(request, words)
        ident = new_completion_id()
        finish = "length" if capped else "stop"
        body = completion(ident, public_model, " ".join(words), finish, usage)
        return ChatResult(body, usage, ident, {}, 200)

    async def stream(
        self,
        http: httpx.AsyncClient,
        upstream: Upstream,
        request: dict[str, Any],
        public_model: str,
    ) -> ChatStream:
        words, capped = answer_words(request)
        return DemoStream(words, capped, _usage(request, words), public_model)


class DemoStream:
    def __init__(self, words: list[str], capped: bool, usage: Usage, public_model: str) -> None:
        self.usage: Usage | None = None
        self.text = ""
        self.finished = False
        self.upstream_request_id: str | None = new_completion_id()
        self.diagnostics: dict[str, str] = {}
        self._words = words
        self._capped = capped
        self._final_usage = usage
        self._model = public_model
        self._created = now()

    def _chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.upstream_request_id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": choices,
        }

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[dict[str, Any]]:
        for i, word in enumerate(self._words):
            piece = word if i == 0 else f" {word}"
            self.text += piece
            delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
            yield self._chunk([{"index": 0, "delta": delta, "finish_reason": None}])
        finish = "length" if self._capped else "stop"
        yield self._chunk([{"index": 0, "delta": {}, "finish_reason": finish}])
        self.usage = self._final_usage
        self.finished = True
        yield {**self._chunk([]), "usage": self._final_usage.to_openai()}

    async def aclose(self) -> None:
        return None
