"""Plans (DESIGN.md §4): an org's tier as a Stripe subscription, allocated by its invoices."""
