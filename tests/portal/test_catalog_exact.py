"""The catalog's "your price" figures are exact decimals, never floats."""

from fractions import Fraction

import pytest

from edge.portal.catalog import exact, multiplier_of


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Fraction(0), "0"),
        (Fraction(180), "180"),
        (Fraction(3, 10), "0.3"),
        (Fraction(1, 3 * 10**0 * 1) * 3, "1"),
        (Fraction(123456789, 10**8), "1.23456789"),
        (Fraction(-5, 4), "-1.25"),
        (Fraction(150) * multiplier_of("starter", "precision"), "360"),
        (Fraction(7) * multiplier_of("enterprise", "eco"), "2.8"),
    ],
)
def test_exact_decimal(value: Fraction, text: str) -> None:
    assert exact(value) == text


def test_a_non_terminating_fraction_is_refused() -> None:
    with pytest.raises(ValueError, match="exact decimal"):
        exact(Fraction(1, 3))
