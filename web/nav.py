"""The console's pages and who may see each: one list feeds both the sidebar and the access
check, so a link is shown exactly when following it would be allowed.

A new page adds one `Page` here (its `group` is the sidebar heading it sits under) and uses
`page_viewer("<key>")` as its dependency.
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
    group: str | None = None  # the sidebar heading it is listed under (None: the top)
    in_nav: bool = True  # listed in the sidebar (else reached from another page)

    def allows(self, ctx: OrgContext) -> bool:
        if self.operator:
            return ctx.user.is_operator
        return ctx.at_least(self.role)

    def holds(self, path: str) -> bool:
        """This page or one below it (`/console/invoices/2026-01` is the invoices page's);
        the console home holds only itself."""
        if self.href == "/console":
            return path == self.href
        return path == self.href or path.startswith(self.href + "/")

    def refusal(self) -> str:
        if self.operator:
            return f"The {self.label} page is for platform operators."
        ranked = sorted(ROLE_RANK, key=ROLE_RANK.__getitem__, reverse=True)
        names = [ROLE_NAMES[r] for r in ranked if ROLE_RANK[r] >= ROLE_RANK[self.role]]
        who = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        return f"The {self.label} page is for this organization's {who}."


BUILD, USAGE, ORG, PLATFORM = "Build", "Usage and billing", "Organization", "Platform"

PAGES: tuple[Page, ...] = (
    Page("home", "Overview", "/console"),
    Page("quickstart", "Quickstart", "/console/quickstart"),
    Page("keys", "API keys", "/console/keys", group=BUILD),
    Page("models", "Models", "/console/models", group=BUILD),
    Page("credits", "Credits", "/console/credits", group=USAGE),
    Page("plan", "Plan", "/console/plan", group=USAGE),
    Page("usage", "Usage", "/console/usage", group=USAGE),
    Page("requests", "Requests", "/console/requests", group=USAGE),
    Page("tasks", "Tasks", "/console/tasks", group=USAGE),
    Page("org", "Organization", "/console/org", role="admin", group=ORG),
    Page("members", "Members", "/console/members", role="admin", group=ORG),
    Page("departments", "Departments", "/console/departments", role="admin", group=ORG),
    Page("cost_centers", "Cost centers", "/console/cost-centers", role="admin", group=ORG),
    Page("budgets", "Budgets", "/console/budgets", role="admin", group=ORG),
    Page("policies", "Policies", "/console/policies", role="admin", group=ORG),
    Page("invoices", "Invoices", "/console/invoices", role="finance", group=ORG),
    Page("audit", "Audit log", "/console/audit", role="admin", group=ORG),
    Page("sso", "Single sign-on", "/console/sso", role="admin", group=ORG),
    Page("help-keys", "Help: API keys", "/help/api-keys", in_nav=False),
    # The ops console: one link; its pages have their own tabs (pages/ops/base.html).
    Page("ops", "Ops console", "/console/ops", operator=True, group=PLATFORM),
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


@dataclass(frozen=True)
class NavGroup:
    label: str | None
    pages: tuple[Page, ...]


def nav_for(ctx: OrgContext) -> list[NavGroup]:
    """The sidebar: the pages the viewer may open, under their headings, in `PAGES` order."""
    groups: dict[str | None, list[Page]] = {}
    for p in PAGES:
        if p.in_nav and p.allows(ctx):
            groups.setdefault(p.group, []).append(p)
    return [NavGroup(label, tuple(pages)) for label, pages in groups.items()]
