"""Reading the relay's chat answers once, for every surface that renders them anew.

The Anthropic and Responses surfaces need the same facts from a chat completion or its
chunk stream: text, reasoning text, refusal, tool calls with their exact ids, why it
stopped and what it cost. Reading them here keeps the habits of OpenAI-compatible upstreams
out of the renderers: usage only on the last (choice-less) chunk, the finish reason on a
chunk of its own, a tool call's id and name only on its first fragment, an index reused for
a second call by some servers, `reasoning_content` (DeepSeek, vLLM) or `reasoning`
(OpenRouter, Ollama) for the same thing.

Only the first choice is read: neither Anthropic Messages nor Responses has `n`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from domain.providers.base import Usage
from domain.providers.tokens import estimate_text_tokens

_REASONING_KEYS = ("reasoning_content", "reasoning")


def _count(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return 0


@dataclass(frozen=True)
class Tokens:
    """Usage in OpenAI's convention: `prompt` includes cache reads and cache writes,
    `completion` includes reasoning. Each surface splits it its own way."""

    prompt: int
    completion: int
    cached: int = 0
    cache_write: int = 0
    reasoning: int = 0
    estimated: bool = False

    @property
    def total(self) -> int:
        return self.prompt + self.completion

    @classmethod
    def from_usage(cls, usage: Usage) -> Tokens:
        """The relay's billed `Usage` (what the ledger charges), for the final usage event."""
        return cls(
            usage.prompt_tokens,
            usage.completion_tokens,
            cached=usage.cached_tokens,
            estimated=usage.estimated,
        )

    def to_openai(self) -> dict[str, Any]:
        """Chat / legacy completions usage, details only where there is something to say."""
        out: dict[str, Any] = {
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.total,
        }
        if self.cached or self.cache_write:
            details = {"cached_tokens": self.cached}
            if self.cache_write:
                details["cache_write_tokens"] = self.cache_write
            out["prompt_tokens_details"] = details
        if self.reasoning:
            out["completion_tokens_details"] = {"reasoning_tokens": self.reasoning}
        return out


def billed_tokens(usage: Usage | None, reported: Tokens | None) -> Tokens | None:
    """The relay's billed usage when given (what the ledger charged), with the details only
    the upstream's own report has (cache writes, reasoning)."""
    if usage is None:
        return reported
    billed = Tokens.from_usage(usage)
    if reported is None:
        return billed
    return replace(billed, cache_write=reported.cache_write, reasoning=reported.reasoning)


def tokens_from_openai(raw: Any) -> Tokens | None:
    if not isinstance(raw, dict):
        return None
    if "prompt_tokens" not in raw and "completion_tokens" not in raw:
        return None
    prompt_details = raw.get("prompt_tokens_details")
    if not isinstance(prompt_details, dict):
        prompt_details = {}
    completion_details = raw.get("completion_tokens_details")
    if not isinstance(completion_details, dict):
        completion_details = {}
    return Tokens(
        prompt=_count(raw.get("prompt_tokens")),
        completion=_count(raw.get("completion_tokens")),
        cached=_count(prompt_details.get("cached_tokens")),
        cache_write=_count(prompt_details.get("cache_write_tokens")),
        reasoning=_count(completion_details.get("reasoning_tokens")),
    )


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str


def new_call_id() -> str:
    """For a tool call an upstream sent without an id (the client must answer by id)."""
    return f"call_{uuid.uuid4().hex[:24]}"


def _reasoning_text(message: dict[str, Any]) -> str:
    for key in _REASONING_KEYS:
        value = message.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def _first_choice(body: dict[str, Any]) -> dict[str, Any]:
    choices = body.get("choices")
    if isinstance(choices, list):
        for choice in choices:
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                return choice
    return {}


def _matched_stop(choice: dict[str, Any]) -> str | None:
    # vLLM names the stop string that ended the answer; OpenAI itself does not say.
    value = choice.get("stop_reason")
    return value if isinstance(value, str) and value else None


@dataclass
class ChatAnswer:
    """One chat completion (the relay's JSON answer), read."""

    id: str | None
    created: int | None
    text: str
    reasoning: str
    refusal: str
    tool_calls: list[ToolCall]
    finish_reason: str | None
    matched_stop: str | None
    tokens: Tokens


def read_completion(body: dict[str, Any]) -> ChatAnswer:
    choice = _first_choice(body)
    message = choice.get("message")
    if not isinstance(message, dict):
        message = {}
    text = message.get("content")
    if isinstance(text, list):  # a few servers answer with content parts
        text = "".join(
            str(p.get("text", "")) for p in text if isinstance(p, dict) and p.get("type") == "text"
        )
    text = text if isinstance(text, str) else ""
    calls: list[ToolCall] = []
    for raw in message.get("tool_calls") or ():
        if not isinstance(raw, dict):
            continue
        fn = raw.get("function")
        fn = fn if isinstance(fn, dict) else {}
        ident = raw.get("id")
        arguments = fn.get("arguments")
        calls.append(
            ToolCall(
                id=ident if isinstance(ident, str) and ident else new_call_id(),
                name=str(fn.get("name") or ""),
                arguments=arguments if isinstance(arguments, str) else "",
            )
        )
    refusal = message.get("refusal")
    reasoning = _reasoning_text(message)
    tokens = tokens_from_openai(body.get("usage")) or Tokens(
        prompt=0,
        completion=estimate_text_tokens(text + reasoning + "".join(c.arguments for c in calls)),
        estimated=True,
    )
    finish = choice.get("finish_reason")
    created = body.get("created")
    return ChatAnswer(
        id=body["id"] if isinstance(body.get("id"), str) else None,
        created=created if isinstance(created, int) and not isinstance(created, bool) else None,
        text=text,
        reasoning=reasoning,
        refusal=refusal if isinstance(refusal, str) else "",
        tool_calls=calls,
        finish_reason=finish if isinstance(finish, str) else None,
        matched_stop=_matched_stop(choice),
        tokens=tokens,
    )


# -- streams ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True)
class RefusalDelta:
    text: str


@dataclass(frozen=True)
class ToolStart:
    slot: int  # position among this answer's tool calls, from 0
    id: str
    name: str


@dataclass(frozen=True)
class ToolArgs:
    slot: int
    fragment: str


Delta = TextDelta | ReasoningDelta | RefusalDelta | ToolStart | ToolArgs


@dataclass
class _Slot:
    call: ToolCall
    id_given: bool  # False while the id is one we made up
    started: bool = False
    pending: list[str] = field(default_factory=list)


class ChunkReader:
    """Chat chunks in, neutral deltas out, in arrival order; remembers what the end needs.

    A tool call is announced (`ToolStart`) once its name is known, with any argument
    fragments that came before it right behind, so renderers never open a block without a
    name. A fragment carrying an id different from the call already at its index is a new
    call (servers that reuse index 0 for every call); one without an id continues the call
    at its index.
    """

    def __init__(self) -> None:
        self.id: str | None = None
        self.created: int | None = None
        self.finish_reason: str | None = None
        self.matched_stop: str | None = None
        self.tokens: Tokens | None = None
        self.calls: list[ToolCall] = []
        self._slots: list[_Slot] = []
        self._by_index: dict[int, int] = {}
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._refusal: list[str] = []

    @property
    def text(self) -> str:
        return "".join(self._text)

    @property
    def reasoning(self) -> str:
        return "".join(self._reasoning)

    @property
    def refusal(self) -> str:
        return "".join(self._refusal)

    def output_estimate(self) -> int:
        """Output tokens for a stream that never reported usage (bytes/4, as the relay)."""
        produced = self.text + self.reasoning + self.refusal
        return estimate_text_tokens(produced + "".join(c.arguments for c in self.calls))

    def feed(self, chunk: dict[str, Any]) -> list[Delta]:
        if self.id is None and isinstance(chunk.get("id"), str):
            self.id = chunk["id"]
        created = chunk.get("created")
        if self.created is None and isinstance(created, int) and not isinstance(created, bool):
            self.created = created
        reported = tokens_from_openai(chunk.get("usage"))
        if reported is not None:
            self.tokens = reported
        choice = _first_choice(chunk)
        if not choice:
            return []
        out: list[Delta] = []
        delta = choice.get("delta")
        if isinstance(delta, dict):
            out.extend(self._read_delta(delta))
        finish = choice.get("finish_reason")
        if isinstance(finish, str) and finish:
            self.finish_reason = finish
            self.matched_stop = _matched_stop(choice) or self.matched_stop
        return out

    def flush(self) -> list[Delta]:
        """At the end: calls whose name never came are announced nameless, not lost."""
        out: list[Delta] = []
        for slot_no, slot in enumerate(self._slots):
            if not slot.started:
                out.extend(self._start(slot_no, slot))
        return out

    def _read_delta(self, delta: dict[str, Any]) -> list[Delta]:
        out: list[Delta] = []
        for key in _REASONING_KEYS:
            value = delta.get(key)
            if isinstance(value, str) and value:
                self._reasoning.append(value)
                out.append(ReasoningDelta(value))
                break
        content = delta.get("content")
        if isinstance(content, str) and content:
            self._text.append(content)
            out.append(TextDelta(content))
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            self._refusal.append(refusal)
            out.append(RefusalDelta(refusal))
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            for position, fragment in enumerate(calls):
                if isinstance(fragment, dict):
                    out.extend(self._read_call(position, fragment))
        return out

    def _read_call(self, position: int, fragment: dict[str, Any]) -> list[Delta]:
        index = fragment.get("index")
        if not isinstance(index, int) or isinstance(index, bool):
            index = position
        ident = fragment.get("id")
        ident = ident if isinstance(ident, str) and ident else None
        fn = fragment.get("function")
        fn = fn if isinstance(fn, dict) else {}
        name = fn.get("name") if isinstance(fn.get("name"), str) else None
        args = fn.get("arguments") if isinstance(fn.get("arguments"), str) else ""
        slot_no = self._by_index.get(index)
        known = self._slots[slot_no] if slot_no is not None else None
        if known is not None and ident is not None and not known.id_given:
            known.id_given = True  # the id came after the first fragment
            if not known.started:
                known.call.id = ident
        elif known is None or (ident is not None and ident != known.call.id):
            slot_no = len(self._slots)
            call = ToolCall(id=ident or new_call_id(), name="", arguments="")
            self._slots.append(_Slot(call, id_given=ident is not None))
            self.calls.append(call)
            self._by_index[index] = slot_no
        assert slot_no is not None
        slot = self._slots[slot_no]
        out: list[Delta] = []
        if name and not slot.call.name:
            slot.call.name = name
        if args:
            slot.call.arguments += args
            slot.pending.append(args)
        if not slot.started and slot.call.name:
            out.extend(self._start(slot_no, slot))
        elif slot.started and slot.pending:
            out.extend(ToolArgs(slot_no, piece) for piece in slot.pending)
            slot.pending.clear()
        return out

    @staticmethod
    def _start(slot_no: int, slot: _Slot) -> list[Delta]:
        slot.started = True
        out: list[Delta] = [ToolStart(slot_no, slot.call.id, slot.call.name)]
        out.extend(ToolArgs(slot_no, piece) for piece in slot.pending)
        slot.pending.clear()
        return out
