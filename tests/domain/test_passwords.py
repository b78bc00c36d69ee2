"""Password strength is judged by zxcvbn, and a refusal says why."""

from __future__ import annotations

import pytest

from domain.errors import InvalidField
from domain.identity.passwords import check_policy


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("Password123!", "similar to a commonly used password"),
        ("asdfghjkl;'", "Straight rows of keys"),
        ("hunter2hunter2", "Repeats"),
        ("aaaaaaaaaaaaaa", "Repeats"),
        ("carol-is-great-99", "email name"),
        ("example12345", "quick to guess"),  # the email's domain is a hint too
        ("short1", "at least 10 characters"),
        ("é" * 40, "at most 72 bytes"),
    ],
)
def test_weak_passwords_are_refused_with_a_reason(password: str, why: str) -> None:
    with pytest.raises(InvalidField) as info:
        check_policy(password, "carol@example.com")
    assert info.value.param == "password"
    assert why in info.value.message, info.value.message


@pytest.mark.parametrize(
    "password", ["a-long-passphrase-7", "correct-horse-battery-9", "Tr0ub4dor&3xyz-k"]
)
def test_strong_passwords_pass(password: str) -> None:
    check_policy(password, "carol@example.com")
