"""The OpenAI surfaces besides chat: `/v1/models/{id}`, `/v1/embeddings`, `/v1/completions`,
`/v1/responses`. Each is translated at the edge (`domain.surfaces`) into what the relay
already routes, bills and logs, so every one is charged exactly like chat; Responses also
goes natively to channels that speak it (`domain.providers.responses_passthrough`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, StreamingResponse

from api.auth import ApiKeyAuth
from api.relay.bodies import COMPLETIONS_BODY, EMBEDDINGS_BODY, RESPONSES_BODY
from api.relay.chat import _Json, _json_body
from domain.admission import service as admission
from domain.enterprise import governance
from domain.errors import NotFound, PermissionDenied
from domain.inputs import MODEL_NAME_MAX, text_problem
from domain.pricing import repository as pricing_repo
from domain.providers import Usage
from domain.providers.responses_passthrough import ResponsesNative
from domain.providers.tokens import estimate_prompt_tokens
from domain.relay.service import Opened
from domain.relay.stream import Translator, start_pump, translated_events
from domain.surfaces.completions import (
    CompletionsStream,
    completion_from_chat,
    completions_to_chat,
)
from domain.surfaces.embeddings import (
    embeddings_response,
    estimate_input_tokens,
    validate_embeddings_body,
)
from domain.surfaces.responses_in import responses_to_chat
from domain.surfaces.responses_native import (
    ResponsesPassthrough,
    stateful_param,
    without_state,
)
from domain.surfaces.responses_out import response_from_chat
from domain.surfaces.responses_stream import ResponsesStream
from domain.surfaces.sse import DONE_FRAME, data_frame, event_frame
from edge.deps import ResourcesDep, SessionDep

router = APIRouter(prefix="/v1", tags=["relay"])
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def event_stream(opened: Opened, events: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(
        events, media_type="text/event-stream", headers={**opened.headers, **STREAM_HEADERS}
    )


def _model_not_found(model_id: str) -> NotFound:
    return NotFound(
        f"The model {model_id!r} does not exist or you do not have access to it.",
        code="model_not_found",
        param="model",
    )


@router.get("/models/{model_id:path}")
async def retrieve_model(model_id: str, key: ApiKeyAuth, session: SessionDep) -> dict[str, Any]:
    """One model of `/v1/models`; a model the key may not use is as unknown as a missing one."""
    if not key.scopes & {"llm:models", "llm:inference"}:
        raise PermissionDenied("this key lacks the llm:models scope")
    if len(model_id) > MODEL_NAME_MAX or text_problem(model_id):
        raise _model_not_found(model_id[:MODEL_NAME_MAX])  # a name we could never store
    model = await pricing_repo.get_model(session, model_id)
    price = await pricing_repo.price_at(session, model_id, datetime.now(UTC)) if model else None
    rules = await governance.for_key(session, key.org_id, key.key_id)
    if (
        model is None
        or not model.enabled
        or price is None
        or not admission.may_use(key, rules, model_id)
    ):
        raise _model_not_found(model_id)
    return {
        "id": model.name,
        "object": "model",
        "created": int(model.created_at.timestamp()),
        "owned_by": model.provider or "0xinf",
    }


@router.post("/embeddings", response_model=None, openapi_extra={"requestBody": EMBEDDINGS_BODY})
async def embeddings(request: Request, key: ApiKeyAuth, resources: ResourcesDep) -> JSONResponse:
    """OpenAI's embeddings, charged per input token like a chat prompt with no output."""
    req = validate_embeddings_body(await _json_body(request))
    relay = resources.relay
    plan = await relay.plan(
        key, req.upstream_body(req.model), request.state.request_id,
        request.headers.get("x-client-request-id"), surface=admission.EMBEDDINGS,
        prompt_estimate=estimate_input_tokens(req.input),
    )  # fmt: skip
    done = await relay.complete(plan)
    body = embeddings_response(
        done.body["vectors"],
        model=req.model,
        encoding_format=req.encoding_format,
        prompt_tokens=done.body["prompt_tokens"],
    )
    return _Json(body, headers=done.headers)


@router.post("/completions", response_model=None, openapi_extra={"requestBody": COMPLETIONS_BODY})
async def completions(
    request: Request, key: ApiKeyAuth, resources: ResourcesDep
) -> JSONResponse | StreamingResponse:
    """Legacy completions: the prompt is the single user turn of a chat call."""
    req = completions_to_chat(await _json_body(request))
    relay = resources.relay
    plan = await relay.plan(
        key, req.chat, request.state.request_id, request.headers.get("x-client-request-id"),
        translated=True,
    )  # fmt: skip
    if not plan.stream:
        done = await relay.complete(plan)
        return _Json(completion_from_chat(done.body, model=req.model), headers=done.headers)
    opened = await relay.open_stream(plan)
    translator = _CompletionsTranslator(
        CompletionsStream(model=req.model, include_usage=req.include_usage), plan.request_id
    )
    events = translated_events(start_pump(relay, opened), translator, data_frame, done=DONE_FRAME)
    return event_stream(opened, events)


class _CompletionsTranslator:
    """Legacy completions stream like chat: bare chunks, `[DONE]`, an error object on failure."""

    def __init__(self, stream: CompletionsStream, request_id: str) -> None:
        self.stream = stream
        self.request_id = request_id

    def start(self) -> list[dict[str, Any]]:
        return []

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        return self.stream.feed(chunk)

    def finish(self, usage: Usage | None = None) -> list[dict[str, Any]]:
        return []

    def fail(self, message: str) -> list[dict[str, Any]]:
        error: Mapping[str, Any] = {
            "type": "upstream_error", "code": "upstream_error", "message": message,
            "request_id": self.request_id,
        }  # fmt: skip
        return [{"error": error}]


@router.post("/responses", response_model=None, openapi_extra={"requestBody": RESPONSES_BODY})
async def responses(
    request: Request, key: ApiKeyAuth, resources: ResourcesDep
) -> JSONResponse | StreamingResponse:
    """The Responses API: passed through as written to channels that speak it (provider
    `openai`, or the `responses_api` capability), translated to chat for the rest, with
    fallback across both. `store: true` and `previous_response_id` are accepted only when
    every channel the call could take speaks it; otherwise a 400 names the field."""
    body = await _json_body(request)
    stateful = stateful_param(body)
    req = responses_to_chat(without_state(body) if stateful else body)
    estimate = estimate_prompt_tokens(req.chat)
    native = ResponsesNative(body, estimate, only_native=stateful)
    relay = resources.relay
    plan = await relay.plan(
        key, req.chat, request.state.request_id, request.headers.get("x-client-request-id"),
        prompt_estimate=estimate, translated=True, native=native,
    )  # fmt: skip
    if not plan.stream:
        done = await relay.complete(plan)
        if done.body.get("object") == "response":  # a Responses channel answered natively
            return _Json(done.body, headers=done.headers)
        return _Json(response_from_chat(done.body, req), headers=done.headers)
    opened = await relay.open_stream(plan)
    translator: Translator = (
        ResponsesPassthrough() if plan.native_for(opened.route) else ResponsesStream(req)
    )
    events = translated_events(start_pump(relay, opened), translator, event_frame)
    return event_stream(opened, events)
