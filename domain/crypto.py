"""The two ways 0xinf keeps secrets: one-way peppered HMAC and reversible MultiFernet.

Platform keys and session tokens are 256-bit random strings, so an HMAC under a server
pepper is as strong as a slow hash and costs microseconds on every request; a database dump
without the pepper reveals nothing usable. Provider secrets must be sent upstream, so they
are encrypted instead; MultiFernet lets a new key be added first and old ones retired.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


def token_digest(pepper: str, token: str) -> bytes:
    return hmac.new(pepper.encode(), token.encode(), hashlib.sha256).digest()


def digests_equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def random_hex(nbytes: int) -> str:
    return secrets.token_hex(nbytes)


class SecretBoxError(Exception):
    """A ciphertext no configured key can open (wrong or retired key, or tampering)."""


class SecretBox:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("at least one encryption key is required")
        self._primary = Fernet(keys[0].encode())
        self._all = MultiFernet([Fernet(k.encode()) for k in keys])

    def encrypt(self, plaintext: str) -> str:
        return self._all.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._all.decrypt(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise SecretBoxError("secret cannot be decrypted with the configured keys") from exc

    def is_current(self, ciphertext: str) -> bool:
        """True when the primary key already opens it (nothing to rotate)."""
        try:
            self._primary.decrypt(ciphertext.encode())
        except InvalidToken:
            return False
        return True

    def rotate(self, ciphertext: str) -> str:
        try:
            return self._all.rotate(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise SecretBoxError("secret cannot be decrypted with the configured keys") from exc


class MemoSecretBox(SecretBox):
    """A SecretBox that remembers what it opened: the relay's routing reads every call.

    Opening is a pure function of the ciphertext under the configured keys, so the memo can
    never answer with a stale secret (a replaced or rotated secret is a new ciphertext). It
    holds only what this process decrypts anyway, bounded, and saves ~50 us per call.
    """

    MAX_ENTRIES = 1024

    def __init__(self, keys: list[str]) -> None:
        super().__init__(keys)
        self._opened: dict[str, str] = {}

    def decrypt(self, ciphertext: str) -> str:
        found = self._opened.get(ciphertext)
        if found is None:
            found = super().decrypt(ciphertext)
            if len(self._opened) >= self.MAX_ENTRIES:
                self._opened.clear()
            self._opened[ciphertext] = found
        return found


def mask_secret(secret: str, *, head: int = 6, tail: int = 4) -> str:
    """`sk-or-v1-abc…a1b2` style hint: enough to recognise a key, never enough to use it."""
    if len(secret) <= head + tail + 4:
        return "…" + secret[-2:] if len(secret) > 6 else "…"
    return f"{secret[:head]}…{secret[-tail:]}"
