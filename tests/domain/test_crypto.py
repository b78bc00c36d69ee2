"""The relay's memoizing SecretBox opens exactly what a plain one opens, and no more."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from domain.crypto import MemoSecretBox, SecretBox, SecretBoxError


def test_memo_box_opens_what_the_plain_box_opens() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    plain = SecretBox([new, old])
    memo = MemoSecretBox([new, old])
    sealed = [SecretBox([old]).encrypt("sk-old"), plain.encrypt("sk-new")]
    for ciphertext in sealed * 2:  # the second round comes from the memo
        assert memo.decrypt(ciphertext) == plain.decrypt(ciphertext)


def test_memo_box_still_refuses_and_remembers_no_failure() -> None:
    memo = MemoSecretBox([Fernet.generate_key().decode()])
    foreign = SecretBox([Fernet.generate_key().decode()]).encrypt("sk-x")
    for _ in range(2):
        with pytest.raises(SecretBoxError):
            memo.decrypt(foreign)


def test_memo_box_stays_bounded() -> None:
    memo = MemoSecretBox([Fernet.generate_key().decode()])
    secrets = [f"sk-{i}" for i in range(MemoSecretBox.MAX_ENTRIES + 5)]
    sealed = [memo.encrypt(s) for s in secrets]
    assert [memo.decrypt(c) for c in sealed] == secrets
    assert len(memo._opened) <= MemoSecretBox.MAX_ENTRIES
