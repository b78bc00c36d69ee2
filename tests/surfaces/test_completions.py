"""Legacy `/v1/completions` ↔ chat, JSON and stream, as the openai SDK parses them."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest
from openai.types import Completion

from domain.errors import InvalidRequest
from domain.relay.plan import validate_chat_body
from domain.surfaces.completions import (
    CompletionsStream,
    completion_chunks,
    completion_from_chat,
    completions_to_chat,
)
from domain.surfaces.sse import DONE_FRAME, data_frame
from tests.surfaces.fixtures import (
    aiter,
    completion,
    finish_chunk,
    role_chunk,
    text_chunks,
    usage_chunk,
)
from tests.surfaces.sdk import no_extras, openai_client


def test_prompt_becomes_one_user_message_and_max_tokens_defaults_to_16() -> None:
    request = completions_to_chat(
        {"model": "gpt-3.5-turbo-instruct", "prompt": "Say this is a test"}
    )
    assert validate_chat_body(request.chat) is request.chat
    assert request.chat == {
        "model": "gpt-3.5-turbo-instruct",
        "messages": [{"role": "user", "content": "Say this is a test"}],
        "max_tokens": 16,
    }
    assert not request.stream and not request.include_usage


def test_sampling_fields_pass_and_streams_always_ask_for_usage() -> None:
    body = {
        "model": "m",
        "prompt": ["Once upon a time"],
        "max_tokens": 50,
        "temperature": 0.7,
        "top_p": 0.9,
        "n": 2,
        "stop": ["\n"],
        "presence_penalty": 0.1,
        "frequency_penalty": 0.2,
        "logit_bias": {"50256": -100},
        "seed": 7,
        "user": "u-1",
        "stream": True,
        "best_of": 1,
        "echo": False,
    }
    request = completions_to_chat(body)
    chat = request.chat
    assert chat["messages"] == [{"role": "user", "content": "Once upon a time"}]
    for name in (
        "temperature",
        "top_p",
        "n",
        "stop",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "seed",
        "user",
    ):
        assert chat[name] == body[name]
    assert chat["stream_options"] == {"include_usage": True}  # the relay bills from it
    assert request.stream and not request.include_usage  # ...the client did not ask


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"echo": True}, "echo"),
        ({"logprobs": 2}, "logprobs"),
        ({"suffix": "end"}, "suffix"),
        ({"best_of": 3}, "best_of"),
        ({"prompt": ["a", "b"]}, "prompt"),
        ({"prompt": [1, 2, 3]}, "prompt"),
        ({"prompt": [[1, 2]]}, "prompt"),
        ({"prompt": None}, "prompt"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": "16"}, "max_tokens"),
        ({"model": ""}, "model"),
        ({"stream": "true"}, "stream"),
    ],
)
def test_refusals_name_the_field(changes: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        completions_to_chat({"model": "m", "prompt": "x", **changes})
    assert caught.value.param == param
    with pytest.raises(InvalidRequest) as missing:
        completions_to_chat({"model": "m"})
    assert missing.value.param == "prompt"


def test_chat_answer_as_a_text_completion() -> None:
    body = completion("This is indeed a test", finish="length", prompt=5, output=7)
    body["choices"].append(
        {
            "index": 1,
            "message": {"role": "assistant", "content": "Another"},
            "finish_reason": "stop",
        }
    )
    out = completion_from_chat(body, model="gpt-3.5-turbo-instruct", completion_id="cmpl-fixed")
    parsed = Completion.model_validate(out)
    no_extras(parsed)
    assert parsed.id == "cmpl-fixed" and parsed.object == "text_completion"
    assert [(c.index, c.text, c.finish_reason) for c in parsed.choices] == [
        (0, "This is indeed a test", "length"),
        (1, "Another", "stop"),
    ]
    assert parsed.usage is not None and (
        parsed.usage.prompt_tokens,
        parsed.usage.completion_tokens,
    ) == (5, 7)


async def test_stream_chunks_and_usage_only_when_asked() -> None:
    chunks = [
        role_chunk(),
        *text_chunks("This is", " a test"),
        finish_chunk("stop"),
        usage_chunk(5, 4),
    ]
    quiet = [
        c
        async for c in completion_chunks(
            aiter(chunks), CompletionsStream(model="m", include_usage=False)
        )
    ]
    assert [c["choices"] for c in quiet] == [
        [{"text": "This is", "index": 0, "logprobs": None, "finish_reason": None}],
        [{"text": " a test", "index": 0, "logprobs": None, "finish_reason": None}],
        [{"text": "", "index": 0, "logprobs": None, "finish_reason": "stop"}],
    ]
    assert len({c["id"] for c in quiet}) == 1 and quiet[0]["id"].startswith("cmpl-")
    assert all(c["object"] == "text_completion" for c in quiet)
    told = [
        c
        async for c in completion_chunks(
            aiter(chunks), CompletionsStream(model="m", include_usage=True)
        )
    ]
    assert told[-1]["choices"] == [] and told[-1]["usage"]["completion_tokens"] == 4


async def test_the_openai_sdk_reads_both_forms() -> None:
    chunks = [
        role_chunk(),
        *text_chunks("Hello", " world"),
        finish_chunk("stop"),
        usage_chunk(3, 2),
    ]

    async def handler(request: httpx2.Request) -> httpx2.Response:
        translated = completions_to_chat(json.loads(request.content))
        if not translated.stream:
            return httpx2.Response(
                200, json=completion_from_chat(completion("Hello world"), model=translated.model)
            )

        async def frames() -> Any:
            stream = CompletionsStream(
                model=translated.model, include_usage=translated.include_usage
            )
            async for out in completion_chunks(aiter(chunks), stream):
                yield data_frame(out)
            yield DONE_FRAME

        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=frames())

    client = openai_client(handler)
    whole = await client.completions.create(model="m", prompt="Say hello")
    assert whole.choices[0].text == "Hello world"
    stream = await client.completions.create(
        model="m", prompt="Say hello", stream=True, stream_options={"include_usage": True}
    )
    parts = [c async for c in stream]
    assert "".join(c.choices[0].text for c in parts if c.choices) == "Hello world"
    assert parts[-1].usage is not None and parts[-1].usage.total_tokens == 5
