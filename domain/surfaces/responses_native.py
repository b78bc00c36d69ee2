"""Responses requests sent as-is to upstreams that speak the Responses API (native mode), and
what is billed.

A channel whose upstream answers `POST {base}/responses` (provider `openai`, or a channel
with the `responses_api` capability) gets the client's own body, so everything the Responses
API offers over chat (reasoning items replayed, `include`, `truncation`, stored responses
where the route allows them) works as against the upstream directly. The gateway changes
only `model` (the channel's upstream name) and, when the org's balance capped the output,
`max_output_tokens` (the cap the hold was sized for). Everything else, unknown fields
included, is the upstream's to judge.

`store: true` and `previous_response_id` need a provider that keeps responses: they are
accepted only when every route of the call speaks Responses natively (`stateful_param`,
checked by the relay's plan), since a translated route cannot serve them.

Billing reads the upstream's own usage: `input_tokens` (cached included, like OpenAI's
`prompt_tokens`), `input_tokens_details.cached_tokens`, `output_tokens` (reasoning
included). A stream's usage arrives with its terminal event (`response.completed` or
`response.incomplete`); text seen before it sizes the estimate if it never comes.
"""

from __future__ import annotations

from typing import Any

from domain.providers.base import Usage

# Request fields a translated (chat) route cannot serve but a native route passes through.
STATEFUL = ("store", "previous_response_id")
# Events that end a stream with a Response carrying the final usage.
TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete"})
# Events sent before any output: a failure up to here may still fall back to another route.
PREAMBLE_EVENTS = frozenset({"response.created", "response.in_progress", "response.queued"})
# Deltas whose text is output the model produced (sizes the estimate of a cut stream).
_PRODUCED = frozenset(
    {
        "response.output_text.delta",
        "response.refusal.delta",
        "response.function_call_arguments.delta",
        "response.reasoning_text.delta",
        "response.reasoning_summary_text.delta",
    }
)


def stateful_param(body: Any) -> str | None:
    """The first field of `body` only a native route can serve (`store: true`, a
    `previous_response_id`), or None."""
    if not isinstance(body, dict):
        return None
    if body.get("store") is True:
        return "store"
    if body.get("previous_response_id") is not None:
        return "previous_response_id"
    return None


def without_state(body: dict[str, Any]) -> dict[str, Any]:
    """The body minus the stateful fields: what is translated to size and route the call."""
    return {k: v for k, v in body.items() if k not in STATEFUL}


def native_payload(
    body: dict[str, Any], *, upstream_model: str, max_output: int | None = None
) -> dict[str, Any]:
    """The body a Responses channel receives: the client's, with the upstream's model name
    and, when the org's balance capped the output, that cap.

    `store` is sent as `false` unless the client set it: OpenAI keeps responses by default,
    and a response kept on the platform's upstream account that nobody asked to keep is
    data we would hold for the tenant without saying so. Translated routes keep nothing
    either, so a call behaves the same whichever route serves it."""
    payload = dict(body)  # shallow: only top-level keys change
    payload["model"] = upstream_model
    payload.setdefault("store", False)
    if max_output is not None:
        asked = payload.get("max_output_tokens")
        if not isinstance(asked, int) or isinstance(asked, bool) or asked > max_output:
            payload["max_output_tokens"] = max_output
    return payload


def _count(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return 0


def usage_from_responses(raw: Any) -> Usage | None:
    """A Response's `usage` as billable `Usage` (None when it reports none)."""
    if not isinstance(raw, dict):
        return None
    if "input_tokens" not in raw and "output_tokens" not in raw:
        return None
    details = raw.get("input_tokens_details")
    cached = _count(details.get("cached_tokens")) if isinstance(details, dict) else 0
    prompt = _count(raw.get("input_tokens"))
    return Usage(prompt, _count(raw.get("output_tokens")), min(cached, prompt))


def usage_from_response(body: Any) -> Usage | None:
    """Billable usage of a Response object (a JSON answer, or a terminal event's)."""
    return usage_from_responses(body.get("usage")) if isinstance(body, dict) else None


def produced_text(event: dict[str, Any]) -> str | None:
    """Output text an event carries (text, refusal, tool arguments, reasoning), if any."""
    if event.get("type") in _PRODUCED and isinstance(event.get("delta"), str):
        return str(event["delta"])
    return None


def is_output(event: dict[str, Any]) -> bool:
    """Whether a client seeing this event has seen the answer begin (no fallback after)."""
    return event.get("type") not in PREAMBLE_EVENTS


def error_event(message: str, sequence_number: int) -> dict[str, Any]:
    """The stream's last event when the upstream broke (`ResponseErrorEvent`)."""
    return {
        "type": "error",
        "code": "server_error",
        "message": message,
        "param": None,
        "sequence_number": sequence_number,
    }


class ResponsesPassthrough:
    """Native mode's stream translator: the upstream's own events, as they came (the relay's
    closing usage chunk, which is chat-shaped, is not one of them); a failure is the SDK's
    `error` event, numbered after the last event forwarded."""

    def __init__(self) -> None:
        self._next = 0

    def start(self) -> list[dict[str, Any]]:
        return []

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        if "type" not in chunk or "choices" in chunk:
            return []
        number = chunk.get("sequence_number")
        if isinstance(number, int) and not isinstance(number, bool):
            self._next = max(self._next, number + 1)
        return [chunk]

    def finish(self, usage: Usage | None = None) -> list[dict[str, Any]]:
        return []

    def fail(self, message: str) -> list[dict[str, Any]]:
        return [error_event(message, self._next)]
