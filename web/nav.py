"""The console's pages and who may see each: one list feeds both the navigation bar and the
access check, so a link is shown exactly when following it would be allowed.

A new page adds one `Page` here and uses `page_viewer("<key>")` as its dependency. Pages of
a section (the org administration pages) share one top-bar link, to the first of them the
viewer may open, and list each other in a row of tabs under the page heading.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.identity.service import ROLE_RANK, OrgContext

ROLE_NAMES = {"owner": "owners", "admin": "admins", "finance": "finance", "member": "members"}
SECTIONS = {"org": "Organization"}


@dataclass(frozen=True)
class Page:
    key: str
    label: str
    href: str
    role: str = "member"  # the least org role that may open it
    operator: bool = False  # platform operators only (the ops console)
    in_nav: bool = True  # its own link in the top bar (else only through its section)
    section: str | None = None

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


@dataclass(frozen=True)
class NavItem:
    label: str
    href: str
    pages: tuple[Page, ...]

    def is_current(self, path: str) -> bool:
        return any(p.holds(path) for p in self.pages)


PAGES: tuple[Page, ...] = (
    Page("home", "Overview", "/console"),
    Page("org", "Organization", "/console/org", role="admin", in_nav=False, section="org"),
    Page("members", "Members", "/console/members", role="admin", section="org"),
    Page("departments", "Departments", "/console/departments", role="admin", in_nav=False,
         section="org"),
    Page("cost_centers", "Cost centers", "/console/cost-centers", role="admin", in_nav=False,
         section="org"),
    Page("budgets", "Budgets", "/console/budgets", role="admin", in_nav=False, section="org"),
    Page("policies", "Policies", "/console/policies", role="admin", in_nav=False, section="org"),
    Page("invoices", "Invoices", "/console/invoices", role="finance", in_nav=False,
         section="org"),
    Page("audit", "Audit log", "/console/audit", role="admin", in_nav=False, section="org"),
)  # fmt: skip
_BY_KEY = {p.key: p for p in PAGES}


def page(key: str) -> Page:
    return _BY_KEY[key]


def href_of(key: str) -> str | None:
    """Where a page lives, or None while it is not built yet (links then render as text)."""
    found = _BY_KEY.get(key)
    return found.href if found else None


def nav_for(ctx: OrgContext) -> list[NavItem]:
    items = [NavItem(p.label, p.href, (p,)) for p in PAGES if p.in_nav and p.allows(ctx)]
    for key, label in SECTIONS.items():
        hidden = tuple(p for p in PAGES if p.section == key and not p.in_nav and p.allows(ctx))
        if hidden:
            items.append(NavItem(label, hidden[0].href, hidden))
    return items


def section_tabs(ctx: OrgContext, path: str) -> list[Page]:
    """The tabs under a section page's heading: its section's pages the viewer may open."""
    here = next((p for p in PAGES if p.section and p.holds(path)), None)
    if here is None:
        return []
    return [p for p in PAGES if p.section == here.section and p.allows(ctx)]
