"""Token estimates for when no upstream count exists, without a tokenizer.

tiktoken fetches its encodings at run time (impossible on offline machines) and covers only
OpenAI's vocabularies anyway, so we count UTF-8 bytes instead. Two uses, two biases:

- `estimate_prompt_tokens` sizes the credit hold before dispatch. Under-reserving lets an
  org overspend, so it leans high: BPE vocabularies average ~4 bytes per token in English
  prose and ~3 bytes per token (one CJK character) at worst in common text, so bytes/3 plus
  OpenAI's per-message framing overhead (4 per message, 3 to prime the reply) stays at or
  above the real count for most inputs. Images count a flat 85 tokens (OpenAI's low-detail
  price); high-detail images cost more and are reconciled when the real usage arrives.
- `estimate_text_tokens` bills output the upstream produced but never counted (the stream
  died). There the customer pays for our guess, so it uses the typical bytes/4 rather than
  the pessimistic ratio.
"""

from __future__ import annotations

import json
from typing import Any

PER_MESSAGE_TOKENS = 4
REPLY_PRIMING_TOKENS = 3
IMAGE_TOKENS = 85
_IMAGE_PART_TYPES = frozenset({"image_url", "input_image", "image"})


def _ceil_div(n: int, d: int) -> int:
    return -(-n // d)


def _utf8_len(value: str) -> int:
    return len(value.encode("utf-8", "surrogatepass"))


def _content_bytes_and_images(content: Any) -> tuple[int, int]:
    if isinstance(content, str):
        return _utf8_len(content), 0
    if not isinstance(content, list):
        return 0, 0
    size = images = 0
    for part in content:
        if isinstance(part, str):
            size += _utf8_len(part)
        elif isinstance(part, dict):
            if part.get("type") in _IMAGE_PART_TYPES:
                images += 1
            text = part.get("text")
            if isinstance(text, str):
                size += _utf8_len(text)
    return size, images


def _json_bytes(value: Any) -> int:
    try:
        return _utf8_len(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    except (TypeError, ValueError):
        return 0


def estimate_prompt_tokens(request: dict[str, Any]) -> int:
    messages = request.get("messages")
    if not isinstance(messages, list):
        messages = []
    size = images = 0
    for message in messages:
        if not isinstance(message, dict):
            continue
        content_size, content_images = _content_bytes_and_images(message.get("content"))
        size += content_size
        images += content_images
        name = message.get("name")
        if isinstance(name, str):
            size += _utf8_len(name)
        # Tool calls and tool definitions are billed as the JSON the model reads.
        for key in ("tool_calls", "function_call"):
            if message.get(key):
                size += _json_bytes(message[key])
    for key in ("tools", "functions"):
        if request.get(key):
            size += _json_bytes(request[key])
    return (
        _ceil_div(size, 3)
        + PER_MESSAGE_TOKENS * len(messages)
        + REPLY_PRIMING_TOKENS
        + IMAGE_TOKENS * images
    )


def estimate_text_tokens(text: str) -> int:
    if not text:
        return 0
    return max(1, _ceil_div(_utf8_len(text), 4))
