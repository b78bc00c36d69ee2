"""The fake's Gemini flavour: generateContent and streamGenerateContent (SSE or a JSON array)."""

from __future__ import annotations

from tests.fakes.provider_wire import BaseHandler, Body, data_event, message_words, reply, words


class GeminiRoutes(BaseHandler):
    def _gemini(self, model: str, stream: bool, body: Body) -> None:
        config = body.get("generationConfig")
        cap = config.get("maxOutputTokens") if isinstance(config, dict) else None
        pieces, capped = reply(model, cap)
        system = body.get("systemInstruction")
        prompt = message_words(body.get("contents"), "parts")
        if isinstance(system, dict):
            prompt += words(system.get("parts"))
        prompt = max(1, prompt)
        usage = {
            "promptTokenCount": prompt,
            "candidatesTokenCount": len(pieces),
            "totalTokenCount": prompt + len(pieces),
        }
        finish = "MAX_TOKENS" if capped else "STOP"

        def response(text: str, last: bool) -> Body:
            candidate: Body = {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}
            out: Body = {"candidates": [candidate], "modelVersion": model}
            if last:
                candidate["finishReason"] = finish
                out["usageMetadata"] = usage
            return out

        if not stream:
            self._send_json(200, response("".join(pieces), True))
            return
        chunks = [response(p, i == len(pieces) - 1) for i, p in enumerate(pieces)]
        if self._query.get("alt") == "sse":
            self._send_sse([data_event(c) for c in chunks])
        else:  # without alt=sse Gemini streams one JSON array
            self._send_json(200, chunks)
