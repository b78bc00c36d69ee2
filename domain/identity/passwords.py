"""Password hashing and policy. bcrypt runs in a thread: at cost 12 it takes ~200 ms of CPU,
which must not stall the event loop serving the relay.

Strength is judged by zxcvbn (dictionaries of common passwords, names and words, keyboard
patterns, l33t substitutions, dates and repeats) with the email as a hint, rather than a
list of a few common passwords: "Password123!" passes any length or character-class rule.
"""

from __future__ import annotations

import asyncio
import re

import bcrypt
from zxcvbn import zxcvbn

from domain.errors import InvalidField

MIN_LENGTH = 10
MAX_BYTES = 72  # bcrypt ignores anything past 72 bytes; refuse rather than silently truncate
MIN_SCORE = 3  # zxcvbn: 3 is "safely unguessable" (about 10^8 guesses and up)

# Real hashes of a fixed string, one per cost: verifying against one keeps unknown-email logins
# as slow as known ones, so response time does not reveal which emails have accounts.
_DUMMY_HASHES: dict[int, bytes] = {}


def _dummy_hash(rounds: int) -> bytes:
    if rounds not in _DUMMY_HASHES:
        _DUMMY_HASHES[rounds] = bcrypt.hashpw(b"oxinf-dummy-password", bcrypt.gensalt(rounds))
    return _DUMMY_HASHES[rounds]


def check_policy(password: str, email: str) -> None:
    if len(password) < MIN_LENGTH:
        raise InvalidField(f"password must be at least {MIN_LENGTH} characters", param="password")
    if len(password.encode()) > MAX_BYTES:
        raise InvalidField(f"password must be at most {MAX_BYTES} bytes", param="password")
    local = email.split("@", 1)[0].lower()
    if len(local) >= 4 and local in password.lower():
        raise InvalidField("password must not contain your email name", param="password")
    hints = [part for part in re.split(r"[@.+_-]", email.lower()) if len(part) >= 3]
    judged = zxcvbn(password, user_inputs=hints)
    if judged["score"] < MIN_SCORE:
        feedback = judged["feedback"]
        why = feedback.get("warning") or "it follows a pattern that is quick to guess"
        tips = " ".join(feedback.get("suggestions") or ["Add another word or two."])
        raise InvalidField(
            f"password is too easy to guess: {why.rstrip('.')}. {tips}", param="password"
        )


async def hash_password(password: str, rounds: int) -> str:
    salt = bcrypt.gensalt(rounds=rounds)
    hashed = await asyncio.to_thread(bcrypt.hashpw, password.encode(), salt)
    return hashed.decode()


async def verify_password(password: str, hashed: str | None, rounds: int) -> bool:
    target = hashed.encode() if hashed else _dummy_hash(rounds)
    ok = await asyncio.to_thread(bcrypt.checkpw, password.encode()[:MAX_BYTES], target)
    return ok and hashed is not None
