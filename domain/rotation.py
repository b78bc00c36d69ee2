"""`oxinf secrets rotate`: re-encrypt every stored secret under the first configured key.

Each batch commits on its own and every row is compare-and-set, so an interrupted run loses
nothing (a row is under the old key or the new one, and both still decrypt while the old key
is configured) and a rerun simply continues: rows already under the first key are skipped.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from domain.byok import repository as byok_repo
from domain.callbacks import repository as callbacks_repo
from domain.crypto import SecretBox
from domain.routing import repository as channel_repo
from schema.db import SessionFactory
from schema.unit_of_work import unit_of_work

BatchFn = Callable[[AsyncSession, uuid.UUID | None, int], Awaitable[list[tuple[uuid.UUID, str]]]]
ReplaceFn = Callable[[AsyncSession, uuid.UUID, str, str], Awaitable[bool]]

# Every table holding Fernet ciphertexts registers here.
STORES: dict[str, tuple[BatchFn, ReplaceFn]] = {
    "byok_keys": (byok_repo.ciphertext_batch, byok_repo.replace_ciphertext),
    "channels": (channel_repo.ciphertext_batch, channel_repo.replace_ciphertext),
    "webhook_secrets": (callbacks_repo.ciphertext_batch, callbacks_repo.replace_ciphertext),
}


@dataclass
class RotationReport:
    rotated: dict[str, int] = field(default_factory=dict)
    already_current: dict[str, int] = field(default_factory=dict)
    changed_meanwhile: dict[str, int] = field(default_factory=dict)


async def rotate_all(
    sessions: SessionFactory, box: SecretBox, *, batch_size: int = 200
) -> RotationReport:
    report = RotationReport()
    for name, (batch_fn, replace_fn) in STORES.items():
        rotated = current = raced = 0
        after: uuid.UUID | None = None
        while True:
            async with unit_of_work(sessions) as session:
                batch = await batch_fn(session, after, batch_size)
                for row_id, ciphertext in batch:
                    if box.is_current(ciphertext):
                        current += 1
                    elif await replace_fn(session, row_id, ciphertext, box.rotate(ciphertext)):
                        rotated += 1
                    else:
                        raced += 1  # rewritten since we read it, so already under the new key
            if len(batch) < batch_size:
                break
            after = batch[-1][0]
        report.rotated[name] = rotated
        report.already_current[name] = current
        report.changed_meanwhile[name] = raced
    return report
