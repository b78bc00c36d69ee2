"""OpenAI-compatible `/v1/chat/completions` and `/v1/models`: the official SDK just works."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from api.auth import ApiKeyAuth, api_key_principal
from api.errors import domain_error_response, outage_response
from config.runtime import Resources
from domain import json_exact
from domain.admission import service as admission
from domain.enterprise import governance
from domain.errors import DomainError, InvalidRequest, PermissionDenied
from domain.inputs import MODEL_NAME_MAX, NO_NUL
from domain.keys.auth import KeyPrincipal
from domain.outages import as_unavailable
from domain.pricing import repository as pricing_repo
from domain.relay.stream import sse_events, start_pump
from edge.deps import ResourcesDep, SessionDep, get_resources

router = APIRouter(prefix="/v1", tags=["relay"])


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json_exact.loads(raw)  # strict JSON: NaN and Infinity are refused here
    except json_exact.JSONDecodeError:
        raise InvalidRequest("request body is not valid JSON") from None


class _Json(JSONResponse):
    """The upstream's answer re-encoded with orjson (several times faster than `json`), or
    the standard encoder when it holds integers beyond 64 bits (`domain.json_exact`)."""

    def render(self, content: Any) -> bytes:
        return json_exact.dumps(content)


async def _serve_chat(
    request: Request, key: KeyPrincipal, resources: Resources
) -> JSONResponse | StreamingResponse:
    body = await _json_body(request)
    relay = resources.relay
    plan = await relay.plan(
        key, body, request.state.request_id, request.headers.get("x-client-request-id")
    )
    if not plan.stream:
        done = await relay.complete(plan)
        return _Json(done.body, headers=done.headers)
    opened = await relay.open_stream(plan)
    return StreamingResponse(
        sse_events(start_pump(relay, opened)),
        media_type="text/event-stream",
        headers={**opened.headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


# Described for the OpenAPI document only: the body is parsed by hand (`validate_chat_body`),
# so any field the upstream understands passes through.
CHAT_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["model", "messages"],
                "properties": {
                    "model": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": MODEL_NAME_MAX,
                        "pattern": NO_NUL,
                    },
                    "messages": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["role"],
                            "properties": {"role": {"type": "string"}, "content": {}},
                        },
                    },
                    "max_tokens": {"type": "integer", "minimum": 1},
                    "max_completion_tokens": {"type": "integer", "minimum": 1},
                    "stream": {"type": "boolean"},
                    "stream_options": {
                        "type": "object",
                        "properties": {"include_usage": {"type": "boolean"}},
                    },
                },
            }
        }
    },
}


@router.post("/chat/completions", response_model=None, openapi_extra={"requestBody": CHAT_BODY})
async def chat_completions(
    request: Request, key: ApiKeyAuth, resources: ResourcesDep
) -> JSONResponse | StreamingResponse:
    """OpenAI's chat completions, JSON or SSE. (`serve_chat` answers it in front of the
    framework; this route describes it in the OpenAPI schema and serves it otherwise.)"""
    return await _serve_chat(request, key, resources)


class _Route:
    path = "/v1/chat/completions"  # the label metrics give the route


_CHAT_ROUTE = _Route()


async def serve_chat(scope: Scope, receive: Receive, send: Send) -> None:
    """The same route as plain ASGI: the same handler, auth and error envelope, without
    FastAPI's and Starlette's middleware, routing, dependency solving and exit stacks
    (about 0.15 ms of CPU a call). `OxinfApp` sends POST /v1/chat/completions here,
    behind its own `EdgeMiddleware`."""
    scope["route"] = _CHAT_ROUTE
    request = Request(scope, receive)
    response: Response
    try:
        resources = await get_resources(request)
        key = await api_key_principal(request, resources)
        response = await _serve_chat(request, key, resources)
    except DomainError as exc:
        response = domain_error_response(exc)
    except Exception as exc:
        down = as_unavailable(exc)
        if down is None:
            raise  # a bug: the edge's safety net logs it and answers 500
        down.__cause__ = exc
        response = outage_response(down)
    await response(scope, receive, send)


@router.get("/models")
async def list_models(key: ApiKeyAuth, session: SessionDep) -> dict[str, Any]:
    if not key.scopes & {"llm:models", "llm:inference"}:
        raise PermissionDenied("this key lacks the llm:models scope")
    catalog = await pricing_repo.list_models(session, enabled_only=True, at=None)
    rules = await governance.for_key(session, key.org_id, key.key_id)
    data = [
        {
            "id": entry.model.name,
            "object": "model",
            "created": int(entry.model.created_at.timestamp()),
            "owned_by": entry.model.provider or "0xinf",
        }
        for entry in catalog
        if entry.price is not None and admission.may_use(key, rules, entry.model.name)
    ]
    return {"object": "list", "data": data}
