"""Exact integer cost: the worked examples of the spec, rounding once, credits as text."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import InvalidRequest
from domain.pricing.cost import (
    POWER_BPS,
    TIER_BPS,
    PriceSnapshot,
    chat_cost_micros,
    estimate_chat_hold,
    format_credits,
    media_cost_micros,
    parse_credits,
)

CREDIT = 1_000_000
EPOCH = datetime(2025, 1, 1, tzinfo=UTC)


def chat_price(inp: int, out: int, cached: int = 0) -> PriceSnapshot:
    return PriceSnapshot(
        model="m",
        model_type="chat",
        price_id="p",
        input_per_mtok=inp,
        output_per_mtok=out,
        cached_input_per_mtok=cached,
        effective_from=EPOCH,
    )


@pytest.mark.parametrize(
    ("price", "tokens", "tier", "power", "micros", "credits"),
    [
        (chat_price(10_000, 30_000), (1_000, 500), "professional", "balanced", 25_000_000, "25"),
        (chat_price(15_000, 75_000), (2_000, 1_000), "starter", "precision", 252_000_000, "252"),
        (chat_price(520, 750), (500, 300), "enterprise", "eco", 194_000, "0.194"),
    ],
    ids=["gpt-4-turbo", "claude-3-opus", "llama-3.1-70b"],
)
def test_worked_examples(
    price: PriceSnapshot,
    tokens: tuple[int, int],
    tier: str,
    power: str,
    micros: int,
    credits: str,
) -> None:
    cost = chat_cost_micros(
        price, input_tokens=tokens[0], output_tokens=tokens[1], tier=tier, power=power
    )
    assert cost == micros
    assert format_credits(cost) == credits
    assert parse_credits(credits) == micros


def test_rounds_up_once_at_the_end_not_per_part() -> None:
    # 1 input token at 1 micro and 1 output token at 1 micro, eco (x0.5), enterprise (x0.8):
    # exactly 2 x 0.4 = 0.8 micros -> 1. Rounding each part first would give 1 + 1 = 2.
    price = chat_price(1, 1)
    cost = chat_cost_micros(price, input_tokens=1, output_tokens=1, tier="enterprise", power="eco")
    assert cost == 1
    parts = sum(
        chat_cost_micros(price, input_tokens=i, output_tokens=o, tier="enterprise", power="eco")
        for i, o in ((1, 0), (0, 1))
    )
    assert parts == 2
    # exact results are never nudged upwards: 5 x 0.4 = 2
    assert (
        chat_cost_micros(price, input_tokens=5, output_tokens=0, tier="enterprise", power="eco")
        == 2
    )
    assert chat_cost_micros(price, input_tokens=0, output_tokens=0, tier="free", power="eco") == 0


def test_cached_input_is_priced_separately() -> None:
    price = chat_price(1_000, 2_000, cached=250)
    cost = chat_cost_micros(
        price,
        input_tokens=100,
        cached_input_tokens=900,
        output_tokens=10,
        tier="free",
        power="balanced",
    )
    assert cost == 100 * 1_000 + 900 * 250 + 10 * 2_000


def test_hold_estimate_is_the_cost_of_the_maximum() -> None:
    price = chat_price(10_000, 30_000)
    hold = estimate_chat_hold(1_000, 4_096, price, "starter", "precision")
    assert hold == chat_cost_micros(
        price, input_tokens=1_000, output_tokens=4_096, tier="starter", power="precision"
    )
    for used in range(0, 4_097, 512):
        assert hold >= chat_cost_micros(
            price, input_tokens=1_000, output_tokens=used, tier="starter", power="precision"
        )


def test_media_cost_rounds_once_and_accepts_exact_fractions() -> None:
    image = PriceSnapshot(
        model="img",
        model_type="image",
        price_id="p",
        unit="image",
        unit_price_micros=40_001,
        effective_from=EPOCH,
    )
    # 3 x 40,001 x 1.2 x 2.0 = 288,007.2 -> 288,008
    assert media_cost_micros(image, units=3, tier="starter", power="precision") == 288_008
    speech = image.model_copy(update={"unit": "1k_chars", "unit_price_micros": 15_000})
    # 1,500 characters = 1.5 units, eco x enterprise = 0.4: 1.5 x 15000 x 0.4 = 9000 exactly
    one_and_a_half = Fraction(1_500, 1_000)
    assert media_cost_micros(speech, units=one_and_a_half, tier="enterprise", power="eco") == 9_000
    # one character: 15,000 / 1,000 x 0.5 = 7.5 -> 8
    assert media_cost_micros(speech, units=Fraction(1, 1_000), tier="free", power="eco") == 8
    with pytest.raises(InvalidRequest):
        media_cost_micros(speech, units=-1, tier="free", power="eco")


def test_unknown_multipliers_and_negative_tokens_are_refused() -> None:
    price = chat_price(1, 1)
    with pytest.raises(InvalidRequest):
        chat_cost_micros(price, input_tokens=1, output_tokens=1, tier="platinum", power="eco")
    with pytest.raises(InvalidRequest):
        chat_cost_micros(price, input_tokens=1, output_tokens=1, tier="free", power="turbo")
    with pytest.raises(InvalidRequest):
        chat_cost_micros(price, input_tokens=-1, output_tokens=1, tier="free", power="eco")


@pytest.mark.parametrize(
    ("micros", "text"),
    [
        (0, "0"),
        (194_000, "0.194"),
        (25 * CREDIT, "25"),
        (-3_500_000, "-3.5"),
        (1, "0.000001"),
        (-1, "-0.000001"),
        (1_234_567_890_123, "1234567.890123"),
        (2**63 - 1, "9223372036854.775807"),
    ],
)
def test_format_credits_is_exact(micros: int, text: str) -> None:
    assert format_credits(micros) == text
    assert parse_credits(text) == micros


@pytest.mark.parametrize(
    ("text", "micros"),
    [("+2", 2 * CREDIT), (" 1.50 ", 1_500_000), ("0.000000", 0), ("-0.5", -500_000)],
)
def test_parse_credits_accepts_plain_decimals(text: str, micros: int) -> None:
    assert parse_credits(text) == micros


@pytest.mark.parametrize(
    "text",
    ["0.1234567", "1.0000000", "", "abc", "1e3", "1.", ".5", "1,5", "--1", "١٢", "NaN", "9" * 20],
)
def test_parse_credits_rejects_anything_inexact_or_odd(text: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_credits(text)


@given(st.integers(-(2**63) + 1, 2**63 - 1))
def test_format_and_parse_round_trip(micros: int) -> None:
    text = format_credits(micros)
    assert parse_credits(text) == micros
    assert Decimal(text) * CREDIT == micros


PRICES = st.integers(0, 200_000)
TOKENS = st.integers(0, 2_000_000)
TIERS = st.sampled_from(sorted(TIER_BPS))
POWERS = st.sampled_from(sorted(POWER_BPS))


@given(
    prices=st.tuples(PRICES, PRICES, PRICES),
    tokens=st.tuples(TOKENS, TOKENS, TOKENS),
    more=st.tuples(st.integers(0, 1_000), st.integers(0, 1_000), st.integers(0, 1_000)),
    tier=TIERS,
    power=POWERS,
)
def test_cost_is_exact_ceiling_and_monotone(
    prices: tuple[int, int, int],
    tokens: tuple[int, int, int],
    more: tuple[int, int, int],
    tier: str,
    power: str,
) -> None:
    price = chat_price(prices[0], prices[1], cached=prices[2])

    def cost(t: tuple[int, int, int]) -> int:
        return chat_cost_micros(
            price,
            input_tokens=t[0],
            output_tokens=t[1],
            cached_input_tokens=t[2],
            tier=tier,
            power=power,
        )

    exact = (
        Fraction(tokens[0] * prices[0] + tokens[1] * prices[1] + tokens[2] * prices[2])
        * Fraction(POWER_BPS[power], 10_000)
        * Fraction(TIER_BPS[tier], 10_000)
    )
    charged = cost(tokens)
    assert exact <= charged < exact + 1  # never below the exact value, at most one micro above
    bigger = (tokens[0] + more[0], tokens[1] + more[1], tokens[2] + more[2])
    assert cost(bigger) >= charged
