"""Anthropic Messages sent as-is to Anthropic channels (native mode), and what is billed.

An Anthropic channel gets the client's own body: every feature Claude Code relies on
(thinking with signatures, cache_control, tool_reference blocks, context management, the
betas it announces) then works as it does against Anthropic directly, and nothing is lost
to a translation. The gateway changes only what it must:

- `model` becomes the channel's upstream name;
- `service_tier` is pinned to `standard_only` and `speed` is removed: priority and fast
  modes are billed by Anthropic at premium rates the gateway's price table does not know,
  and a customer must never be able to spend the platform's money past their own charge;
- server tools Anthropic bills per use (web search, code execution) are refused unless the
  caller says they are priced, for the same reason; tools that cost only tokens (web
  fetch, tool search, bash, text editor, memory, ...) pass;
- headers: only `anthropic-version` (the client's, else ours) and `anthropic-beta` (every
  flag, as sent) reach the upstream. The client's credentials are 0xinf keys and never
  leave; the channel's own key is added by the caller.

Billing reads the upstream's own usage from the answer (`NativeUsage` for streams):
Anthropic's usage already is the truth, cache reads and writes included.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from domain.errors import InvalidRequest
from domain.providers.anthropic import API_VERSION, usage_from_anthropic
from domain.providers.base import Usage
from domain.providers.tokens import estimate_text_tokens
from domain.surfaces.anthropic_in import check_envelope

FORWARDED_HEADERS = ("anthropic-version", "anthropic-beta")
PINNED_SERVICE_TIER = "standard_only"
# Server tools with a per-use price on top of tokens (Anthropic's pricing page).
PER_USE_TOOL_PREFIXES = ("web_search_", "code_execution_")

_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_BETA_FLAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_MAX_BETAS = 64


def native_headers(client_headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The upstream headers taken from the client's: version and betas only.

    Every `anthropic-beta` value (repeated headers and comma lists alike) is forwarded,
    unknown flags included: Anthropic judges them, and Claude Code's list changes with each
    release. Only values that could not be a flag (spaces, control characters) are dropped.
    """
    version: str | None = None
    betas: list[str] = []
    for name, value in client_headers:
        key = name.lower()
        if key == "anthropic-version" and version is None:
            candidate = value.strip()
            version = candidate if _VERSION.match(candidate) else None
        elif key == "anthropic-beta":
            for flag in value.split(","):
                flag = flag.strip()
                if _BETA_FLAG.match(flag) and flag not in betas and len(betas) < _MAX_BETAS:
                    betas.append(flag)
    headers = {"anthropic-version": version or API_VERSION}
    if betas:
        headers["anthropic-beta"] = ",".join(betas)
    return headers


def native_payload(
    body: Any,
    *,
    upstream_model: str,
    per_use_tools_priced: bool = False,
    max_tokens_required: bool = True,
) -> dict[str, Any]:
    """The body an Anthropic channel receives. Refusals are `InvalidRequest` with `param`.

    `max_tokens_required=False` for `/v1/messages/count_tokens`, whose body has none."""
    body = check_envelope(body, max_tokens_required=max_tokens_required)
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise InvalidRequest("`tools` must be an array", param="tools")
    if not per_use_tools_priced:
        for tool in tools or ():
            kind = tool.get("type") if isinstance(tool, dict) else None
            if isinstance(kind, str) and kind.startswith(PER_USE_TOOL_PREFIXES):
                raise InvalidRequest(
                    f"tool type {kind!r} is billed per use by the provider and is not "
                    "offered through this gateway",
                    param="tools",
                )
    payload = dict(body)  # shallow: only top-level keys change
    payload["model"] = upstream_model
    payload.pop("speed", None)
    if max_tokens_required:
        payload["service_tier"] = PINNED_SERVICE_TIER
    else:
        payload.pop("service_tier", None)
    return payload


def server_tool_uses(usage: Any) -> dict[str, int]:
    """Per-use server tool counts Anthropic reports (`usage.server_tool_use`), for logs."""
    raw = usage.get("server_tool_use") if isinstance(usage, dict) else None
    if not isinstance(raw, dict):
        return {}
    return {
        str(k): v
        for k, v in raw.items()
        if isinstance(v, int) and not isinstance(v, bool) and v > 0
    }


def usage_from_message(body: Any) -> Usage | None:
    """Billable usage of a native JSON answer (cache reads and writes folded into prompt
    tokens, as every provider adapter reports them)."""
    return usage_from_anthropic(body.get("usage")) if isinstance(body, dict) else None


class NativeUsage:
    """Watches a native Anthropic event stream as it is forwarded, for billing.

    `message_start` has the input counts and `message_delta` the cumulative final ones (in
    later API versions, input counts again); the latest value of each field wins. Text and
    tool input seen so far size an estimate when the stream breaks before any usage."""

    def __init__(self) -> None:
        self._fields: dict[str, Any] = {}
        self._produced: list[str] = []
        self.stop_reason: str | None = None
        self.message_id: str | None = None
        self.finished = False

    def observe(self, event: Any) -> None:
        if not isinstance(event, dict):
            return
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message")
            if isinstance(message, dict):
                if isinstance(message.get("id"), str):
                    self.message_id = message["id"]
                self._merge(message.get("usage"))
        elif kind == "message_delta":
            self._merge(event.get("usage"))
            delta = event.get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("stop_reason"), str):
                self.stop_reason = delta["stop_reason"]
        elif kind == "content_block_delta":
            delta = event.get("delta")
            if isinstance(delta, dict):
                for key in ("text", "partial_json", "thinking"):
                    if isinstance(delta.get(key), str):
                        self._produced.append(delta[key])
        elif kind == "message_stop":
            self.finished = True

    def _merge(self, usage: Any) -> None:
        if isinstance(usage, dict):
            self._fields.update({k: v for k, v in usage.items() if v is not None})

    def usage(self, prompt_estimate: int) -> Usage:
        """What to bill: the reported usage once the stream finished; otherwise the
        reported input with the output estimated from what was forwarded, unless the
        report already says more."""
        reported = usage_from_anthropic(self._fields) if self._fields else None
        produced = estimate_text_tokens("".join(self._produced))
        if reported is not None and (self.finished or reported.completion_tokens >= produced):
            return reported
        if reported is not None:
            return Usage(reported.prompt_tokens, produced, reported.cached_tokens, estimated=True)
        return Usage(prompt_estimate, produced, estimated=True)
