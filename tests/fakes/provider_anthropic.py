"""The fake's Anthropic flavour: `/v1/messages`, JSON and named SSE events."""

from __future__ import annotations

import uuid

from tests.fakes.provider_wire import BaseHandler, Body, message_words, named_event, reply, words


class AnthropicRoutes(BaseHandler):
    def _anthropic_messages(self, body: Body) -> None:
        model = str(body.get("model", ""))
        pieces, capped = reply(model, body.get("max_tokens"))
        prompt = max(1, words(body.get("system")) + message_words(body.get("messages"), "content"))
        stop = "max_tokens" if capped else "end_turn"
        ident = f"msg_{uuid.uuid4().hex[:24]}"
        message: Body = {
            "id": ident,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": "".join(pieces)}],
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": prompt, "output_tokens": len(pieces)},
        }
        if not body.get("stream"):
            self._send_json(200, message)
            return
        start = {
            **message,
            "content": [],
            "stop_reason": None,
            "usage": {"input_tokens": prompt, "output_tokens": 1},
        }
        block = {"type": "text", "text": ""}
        events = [
            named_event("message_start", {"type": "message_start", "message": start}),
            named_event(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": block},
            ),
        ]
        for piece in pieces:
            delta = {"type": "text_delta", "text": piece}
            events.append(
                named_event(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": 0, "delta": delta},
                )
            )
        events += [
            named_event("content_block_stop", {"type": "content_block_stop", "index": 0}),
            named_event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": {"output_tokens": len(pieces)},
                },
            ),
            named_event("message_stop", {"type": "message_stop"}),
        ]
        self._send_sse(events)
