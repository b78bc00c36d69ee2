"""What an org's structure imposes on one platform key, resolved once per key and memoised
by the relay: its department's model allowlist and content-logging rule, and the budget
policies its spend counts against."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from domain.budgets import repository as budget_repo
from domain.budgets.models import BudgetRef
from domain.enterprise import structure_repository as repo
from schema.db import Executor


@dataclass(frozen=True)
class KeyGovernance:
    department_id: uuid.UUID | None = None
    model_allowlist: frozenset[str] | None = None  # the department's; None allows all
    content_logging: str = "key"  # key | disabled | enabled
    budgets: tuple[BudgetRef, ...] = ()

    def allows_model(self, model: str) -> bool:
        return self.model_allowlist is None or model in self.model_allowlist

    def logs_content(self, key_flag: bool) -> bool:
        if self.content_logging == "key":
            return key_flag
        return self.content_logging == "enabled"


UNGOVERNED = KeyGovernance()


async def for_key(session: Executor, org_id: uuid.UUID, key_id: uuid.UUID) -> KeyGovernance:
    owner = await repo.key_owner(session, org_id, key_id)
    user_id = owner["user_id"] if owner else None
    department_id = owner["department_id"] if owner else None
    cost_center_id = owner["cost_center_id"] if owner else None
    policies = await budget_repo.applicable(
        session,
        org_id,
        key_id=key_id,
        user_id=user_id,
        department_id=department_id,
        cost_center_id=cost_center_id,
    )
    budgets = tuple(BudgetRef(p.policy_id, p.mode == "hard") for p in policies)
    if department_id is None:
        return KeyGovernance(budgets=budgets) if budgets else UNGOVERNED
    allowlist = owner["model_allowlist"] if owner else None
    return KeyGovernance(
        department_id=department_id,
        model_allowlist=frozenset(allowlist) if allowlist is not None else None,
        content_logging=owner["content_logging"] if owner else "key",
        budgets=budgets,
    )
