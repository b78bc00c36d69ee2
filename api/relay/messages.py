"""Anthropic's Messages API (`/v1/messages`, `/v1/messages/count_tokens`): what Claude Code
and the `anthropic` SDK call with `base_url` set to 0xinf.

The request is translated to chat (`domain.surfaces.anthropic_in`) and relayed like any
chat call, so it is admitted, held, routed, settled and logged exactly as chat is; the
answer is translated back. Every error on these routes, including authentication and the
relay's own, is answered in Anthropic's shape with our status kept, because the SDK picks
its exception by status and reads Anthropic's body.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from api.auth import api_key_principal
from api.errors import domain_error_response, outage_response
from api.relay.bodies import COUNT_TOKENS_BODY, MESSAGES_BODY
from api.relay.chat import _Json, _json_body
from api.relay.surfaces import event_stream
from domain.admission import service as admission
from domain.errors import DomainError
from domain.outages import as_unavailable
from domain.providers import Usage
from domain.providers.anthropic_passthrough import NativeRequest
from domain.relay.stream import Translator, start_pump, translated_events
from domain.surfaces.anthropic_in import count_tokens, messages_to_chat
from domain.surfaces.anthropic_native import native_headers
from domain.surfaces.anthropic_out import anthropic_error_from_envelope, message_from_chat
from domain.surfaces.anthropic_stream import MessagesStream
from domain.surfaces.sse import event_frame
from edge.deps import get_resources

router = APIRouter(prefix="/v1", tags=["anthropic"])

# Headers of our error answers that still mean something in Anthropic's shape.
_KEPT_HEADERS = ("retry-after", "x-should-retry", "x-oxinf-billing")
ANTHROPIC_HEADERS = {
    "parameters": [
        {"name": "anthropic-version", "in": "header", "required": False,
         "schema": {"type": "string"}, "description": "accepted whatever its value"},
        {"name": "anthropic-beta", "in": "header", "required": False,
         "schema": {"type": "string"}, "description": "never a reason to fail"},
    ]
}  # fmt: skip


def _anthropic_shaped(response: JSONResponse) -> JSONResponse:
    envelope = json.loads(bytes(response.body))
    headers = {k: v for k, v in response.headers.items() if k.lower().startswith(_KEPT_HEADERS)}
    headers.update(
        {k: v for k, v in response.headers.items() if k.lower().startswith("x-ratelimit-")}
    )
    status = response.status_code
    return JSONResponse(anthropic_error_from_envelope(status, envelope), status, headers=headers)


async def _answer(request: Request, serve: Callable[[Request], Awaitable[Response]]) -> Response:
    try:
        return await serve(request)
    except DomainError as exc:
        return _anthropic_shaped(domain_error_response(exc))
    except Exception as exc:
        down = as_unavailable(exc)
        if down is None:
            raise  # a bug: the edge's safety net logs it and answers 500
        down.__cause__ = exc
        return _anthropic_shaped(outage_response(down))


async def _messages(request: Request) -> Response:
    resources = await get_resources(request)
    key = await api_key_principal(request, resources)
    admission.require_scope(key, admission.CHAT.scope)
    body = await _json_body(request)
    req = messages_to_chat(body)
    native = NativeRequest(body, native_headers(request.headers.items()), req.input_tokens)
    relay = resources.relay
    plan = await relay.plan(
        key, req.chat, request.state.request_id, request.headers.get("x-client-request-id"),
        prompt_estimate=req.input_tokens, translated=True, native=native,
    )  # fmt: skip
    if not plan.stream:
        done = await relay.complete(plan)
        if done.body.get("type") == "message":  # an Anthropic channel answered natively
            return _Json(done.body, headers=done.headers)
        message = message_from_chat(
            done.body, model=req.model, thinking=req.thinking, stop_sequences=req.stop_sequences
        )
        return _Json(message, headers=done.headers)
    opened = await relay.open_stream(plan)
    translator: Translator = (
        Passthrough() if opened.route.provider == "anthropic" else MessagesStream.for_request(req)
    )
    events = translated_events(start_pump(relay, opened), translator, event_frame)
    return event_stream(opened, events)


class Passthrough:
    """Native mode's stream: Anthropic's own events, as they came (the relay's closing
    usage chunk, which is OpenAI-shaped, is not one of them)."""

    def start(self) -> list[dict[str, Any]]:
        return []

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        return [chunk] if "type" in chunk and "choices" not in chunk else []

    def finish(self, usage: Usage | None = None) -> list[dict[str, Any]]:
        return []

    def fail(self, message: str) -> list[dict[str, Any]]:
        return [{"type": "error", "error": {"type": "api_error", "message": message}}]


async def _count_tokens(request: Request) -> Response:
    resources = await get_resources(request)
    key = await api_key_principal(request, resources)
    admission.require_scope(key, admission.CHAT.scope)
    return JSONResponse({"input_tokens": count_tokens(await _json_body(request))})


@router.post(
    "/messages",
    response_model=None,
    openapi_extra={"requestBody": MESSAGES_BODY, **ANTHROPIC_HEADERS},
)
async def messages(request: Request) -> Response:
    """Anthropic Messages, JSON or SSE; auth by `x-api-key` or `Authorization: Bearer`."""
    return await _answer(request, _messages)


@router.post(
    "/messages/count_tokens",
    response_model=None,
    openapi_extra={"requestBody": COUNT_TOKENS_BODY, **ANTHROPIC_HEADERS},
)
async def messages_count_tokens(request: Request) -> Response:
    """The input tokens the relay would hold credits for on the same request (not billed)."""
    return await _answer(request, _count_tokens)
