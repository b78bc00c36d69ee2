"""The pure parts of Responses native mode: what the upstream is sent, what is billed, which
fields only a native route can serve, and the stream translator's passthrough."""

from __future__ import annotations

from openai.types.responses import Response, ResponseErrorEvent, ResponseStreamEvent
from pydantic import TypeAdapter

from domain.providers.base import Usage
from domain.providers.responses_passthrough import speaks_responses
from domain.surfaces.responses_native import (
    ResponsesPassthrough,
    native_payload,
    stateful_param,
    usage_from_response,
    without_state,
)
from tests.fakes.responses import ResponseBuilder

BODY = {"model": "pub", "input": "hi", "include": ["reasoning.encrypted_content"], "x_new": 1}


def test_payload_changes_only_the_model_a_lower_cap_and_an_unset_store() -> None:
    assert native_payload(BODY, upstream_model="up") == {**BODY, "model": "up", "store": False}
    kept = native_payload({**BODY, "store": True}, upstream_model="up")
    assert kept["store"] is True  # asked for: passed through (on all-native routes only)
    assert BODY["model"] == "pub"  # the client's body is not touched
    capped = native_payload({**BODY, "max_output_tokens": 500}, upstream_model="up", max_output=100)
    assert capped["max_output_tokens"] == 100
    roomy = native_payload({**BODY, "max_output_tokens": 50}, upstream_model="up", max_output=100)
    assert roomy["max_output_tokens"] == 50
    assert native_payload(BODY, upstream_model="up", max_output=7)["max_output_tokens"] == 7


def test_usage_reads_input_cached_and_output_tokens() -> None:
    usage = {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 4}, "output_tokens": 3}
    assert usage_from_response({"usage": usage}) == Usage(10, 3, 4)
    assert usage_from_response({"usage": {"input_tokens": 2, "output_tokens": 1}}) == Usage(2, 1)
    assert usage_from_response({"usage": None}) is None
    assert usage_from_response({"usage": {"input_tokens": -1, "output_tokens": True}}) == Usage(
        0, 0
    )
    odd = {"input_tokens": 1, "input_tokens_details": {"cached_tokens": 9}, "output_tokens": 0}
    assert usage_from_response({"usage": odd}) == Usage(1, 0, 1)  # never more cached than input


def test_stateful_fields_are_named_and_removed_for_translation() -> None:
    assert stateful_param({"store": True}) == "store"
    assert stateful_param({"store": False, "previous_response_id": "resp_1"}) == (
        "previous_response_id"
    )
    assert stateful_param({"store": False}) is None and stateful_param([]) is None
    assert without_state({"model": "m", "store": True, "previous_response_id": "r"}) == {
        "model": "m"
    }


def test_which_providers_speak_responses() -> None:
    assert speaks_responses("openai", [])
    assert speaks_responses("openai_compatible", ["responses_api"])
    assert not speaks_responses("openai_compatible", [])
    assert not speaks_responses("anthropic", ["responses_api"])  # not its wire format


def test_passthrough_forwards_events_and_numbers_its_error_after_them() -> None:
    t = ResponsesPassthrough()
    assert t.start() == []
    event = {"type": "response.created", "sequence_number": 0}
    assert t.feed(event) == [event]
    assert t.feed({"type": "response.output_text.delta", "sequence_number": 5, "delta": "a"})
    assert t.feed({"choices": [], "usage": {}}) == []  # the relay's own closing chunk
    assert t.finish(Usage(1, 1)) == []
    (error,) = t.fail("the upstream connection dropped mid-stream")
    assert error["type"] == "error" and error["sequence_number"] == 6


def test_the_fakes_responses_and_our_error_event_parse_strictly_with_the_sdk() -> None:
    """The fake upstream's objects are what OpenAI sends (every required field), so native
    tests exercise real shapes; our own error event is the SDK's `ResponseErrorEvent`."""
    events = TypeAdapter(ResponseStreamEvent)
    for body, capped in (
        ({"model": "m", "input": "hi there"}, False),
        ({"model": "m", "input": "hi", "max_output_tokens": 1}, True),
        ({"model": "m", "input": "hi", "tools": [{"type": "function", "name": "f"}]}, False),
    ):
        built = ResponseBuilder(body, ["w0", " w1"], capped)
        Response.model_validate(built.answer())
        kinds = [events.validate_python(event).type for _, event in built.events()]
        assert kinds[0] == "response.created"
        assert kinds[-1] == ("response.incomplete" if capped else "response.completed")
    ResponseErrorEvent.model_validate(ResponsesPassthrough().fail("broken")[0])
