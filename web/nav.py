"""The console's pages and who may see each: one list feeds both the navigation bar and the
access check, so a link is shown exactly when following it would be allowed.

A new page adds one `Page` here and uses `page_viewer("<key>")` as its dependency.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.identity.service import ROLE_RANK, OrgContext

ROLE_NAMES = {"owner": "owners", "admin": "admins", "finance": "finance", "member": "members"}


@dataclass(frozen=True)
class Page:
    key: str
    label: str
    href: str
    role: str = "member"  # the least org role that may open it
    operator: bool = False  # platform operators only (the ops console)
    in_nav: bool = True

    def allows(self, ctx: OrgContext) -> bool:
        if self.operator:
            return ctx.user.is_operator
        return ctx.at_least(self.role)

    def refusal(self) -> str:
        if self.operator:
            return f"The {self.label} page is for platform operators."
        ranked = sorted(ROLE_RANK, key=ROLE_RANK.__getitem__, reverse=True)
        names = [ROLE_NAMES[r] for r in ranked if ROLE_RANK[r] >= ROLE_RANK[self.role]]
        who = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        return f"The {self.label} page is for this organization's {who}."


PAGES: tuple[Page, ...] = (
    Page("home", "Overview", "/console"),
    Page("keys", "API keys", "/console/keys"),
    Page("credits", "Credits", "/console/credits"),
    Page("usage", "Usage", "/console/usage"),
    Page("requests", "Requests", "/console/requests"),
    Page("tasks", "Tasks", "/console/tasks"),
    Page("models", "Models", "/console/models"),
    Page("quickstart", "Quickstart", "/console/quickstart"),
    Page("members", "Members", "/console/members", role="admin"),
    Page("sso", "Single sign-on", "/console/sso", role="admin"),
    Page("help-keys", "Help: API keys", "/help/api-keys", in_nav=False),
    # The ops console: one "Ops" link; its pages have their own tabs (pages/ops/base.html).
    Page("ops", "Ops", "/console/ops", operator=True),
    Page("ops_models", "Models and prices", "/console/ops/models", operator=True, in_nav=False),
    Page("ops_channels", "Channels", "/console/ops/channels", operator=True, in_nav=False),
    Page("ops_requests", "Request timeline", "/console/ops/requests", operator=True, in_nav=False),
    Page("ops_tasks", "Tasks and schedules", "/console/ops/tasks", operator=True, in_nav=False),
)
_BY_KEY = {p.key: p for p in PAGES}


def page(key: str) -> Page:
    return _BY_KEY[key]


def href_of(key: str) -> str | None:
    """Where a page lives, or None while it is not built yet (links then render as text)."""
    found = _BY_KEY.get(key)
    return found.href if found else None


def nav_for(ctx: OrgContext) -> list[Page]:
    return [p for p in PAGES if p.in_nav and p.allows(ctx)]
