"""The round trip every HTTP chat provider shares, written once.

A chat call builds the upstream's request, posts it for a JSON answer or opens it as an SSE
stream (primed past its first output, so fallback decisions are done), and reads the answer
back in OpenAI's shape. A provider module says only what is its own: where to send
(`url`), how to authenticate (`headers`), what to send (`payload`), how to read a JSON
answer (`result`) and which `SseChatStream` reads its stream (`stream_type`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import httpx

from domain.providers.base import ChatResult, ChatStream, Upstream, Usage
from domain.providers.convert import new_completion_id, now
from domain.providers.tokens import estimate_prompt_tokens, estimate_text_tokens
from domain.providers.transport import (
    JsonReply,
    RequestIdGetter,
    SseChatStream,
    open_sse,
    post_json,
)


class HttpChatAdapter(ABC):
    request_id: RequestIdGetter  # reads the upstream's request id from its headers
    stream_type: type[SseChatStream]

    @abstractmethod
    def url(self, upstream: Upstream, stream: bool) -> str: ...

    @abstractmethod
    def headers(self, upstream: Upstream) -> dict[str, str]: ...

    @abstractmethod
    def payload(
        self, upstream: Upstream, request: dict[str, Any], stream: bool
    ) -> dict[str, Any]: ...

    @abstractmethod
    def result(
        self, reply: JsonReply, upstream: Upstream, request: dict[str, Any], public_model: str
    ) -> ChatResult: ...

    async def chat(
        self,
        http: httpx.AsyncClient,
        upstream: Upstream,
        request: dict[str, Any],
        public_model: str,
    ) -> ChatResult:
        payload = self.payload(upstream, request, False)
        url = self.url(upstream, False)
        reply = await post_json(
            http, url, payload, self.headers(upstream), upstream, self.request_id
        )
        return self.result(reply, upstream, request, public_model)

    async def stream(
        self,
        http: httpx.AsyncClient,
        upstream: Upstream,
        request: dict[str, Any],
        public_model: str,
    ) -> ChatStream:
        payload = self.payload(upstream, request, True)
        url = self.url(upstream, True)
        response = await open_sse(
            http, url, payload, self.headers(upstream), upstream, self.request_id
        )
        stream = self.stream_type(
            response,
            upstream=upstream,
            request=request,
            public_model=public_model,
            chunk_id=new_completion_id(),
            request_id=self.request_id,
        )
        await stream.prime()
        return stream


def estimated_usage(request: dict[str, Any], text: str) -> Usage:
    """What an answer that came without a token count is billed as."""
    return Usage(
        prompt_tokens=estimate_prompt_tokens(request),
        completion_tokens=estimate_text_tokens(text),
        estimated=True,
    )


def completion(
    ident: str, public_model: str, text: str, finish: str, usage: Usage
) -> dict[str, Any]:
    """A one-choice OpenAI chat completion, for adapters that rebuild one."""
    message = {"role": "assistant", "content": text, "refusal": None}
    return {
        "id": ident,
        "object": "chat.completion",
        "created": now(),
        "model": public_model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": usage.to_openai(),
    }
