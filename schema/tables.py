"""Imports every table module so the metadata is complete for migrations and tests."""

from schema.audit import AuditEvent
from schema.channels import Channel
from schema.identity import LoginThrottle, Membership, Org, PortalSession, User
from schema.keys import ApiKey, ByokKey
from schema.ledger import CreditAccount, Hold, LedgerEntry
from schema.org_structure import (
    BudgetAlert,
    BudgetPolicy,
    BudgetUsage,
    CostCenter,
    Department,
    OrgInvite,
)
from schema.payments import (
    OrgBilling,
    OrgSubscription,
    Payment,
    StripeEvent,
    UsageDaily,
    UsageMonthly,
)
from schema.pricing import Model, ModelPrice
from schema.requests import RateLimitWindow, RequestAttempt, RequestDetail, RequestLog
from schema.results import TaskResult
from schema.sso import SsoConfig, SsoDomain, SsoLogin
from schema.tasks import CallbackAttempt, Task, TaskOrphanJob, TaskSubmission, WebhookSecret

__all__ = [
    "ApiKey",
    "AuditEvent",
    "BudgetAlert",
    "BudgetPolicy",
    "BudgetUsage",
    "ByokKey",
    "CallbackAttempt",
    "Channel",
    "CostCenter",
    "CreditAccount",
    "Department",
    "Hold",
    "LedgerEntry",
    "LoginThrottle",
    "Membership",
    "Model",
    "ModelPrice",
    "Org",
    "OrgBilling",
    "OrgInvite",
    "OrgSubscription",
    "Payment",
    "PortalSession",
    "RateLimitWindow",
    "RequestAttempt",
    "RequestDetail",
    "RequestLog",
    "SsoConfig",
    "SsoDomain",
    "SsoLogin",
    "StripeEvent",
    "Task",
    "TaskOrphanJob",
    "TaskResult",
    "TaskSubmission",
    "UsageDaily",
    "UsageMonthly",
    "User",
    "WebhookSecret",
]
