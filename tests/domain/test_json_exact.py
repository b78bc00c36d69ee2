"""Client numbers survive the relay's JSON handling exactly, and strictness holds on both
parsing paths."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain import json_exact

BIG = 2**70 + 1  # beyond 64 bits: orjson alone would make it a float


def test_integers_beyond_64_bits_stay_exact() -> None:
    raw = json.dumps({"seed": BIG, "nested": [{"n": -BIG}], "small": 7, "x": 0.5})
    parsed = json_exact.loads(raw.encode())
    assert parsed == {"seed": BIG, "nested": [{"n": -BIG}], "small": 7, "x": 0.5}
    assert type(parsed["seed"]) is int and type(parsed["nested"][0]["n"]) is int
    assert json_exact.loads(raw) == parsed  # str as well as bytes


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("padding", ["", '"id": "1234567890123456789012", '])
def test_nan_and_infinity_are_refused_on_either_path(constant: str, padding: str) -> None:
    # The padding's long digit run sends the body down the standard library's path.
    with pytest.raises(json_exact.JSONDecodeError):
        json_exact.loads(f'{{{padding}"t": {constant}}}'.encode())


def test_bad_json_is_a_decode_error_on_either_path() -> None:
    for raw in (b"{oops", b'{"n": 12345678901234567890123,'):
        with pytest.raises(json_exact.JSONDecodeError):
            json_exact.loads(raw)


def test_dumps_writes_big_integers_and_matches_the_standard_encoder() -> None:
    obj = {"seed": BIG, "text": "héllo", "list": [1, 2.5, None, True]}
    assert json.loads(json_exact.dumps(obj)) == obj
    assert json_exact.dumps({"a": 1, "b": "ü"}) == '{"a":1,"b":"ü"}'.encode()


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
        max_leaves=20,
    )
)
def test_round_trip_is_exact_for_any_json_without_floats(value: object) -> None:
    assert json_exact.loads(json.dumps(value).encode()) == value
    assert json_exact.loads(json_exact.dumps(value)) == value
