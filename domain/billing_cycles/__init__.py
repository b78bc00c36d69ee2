"""Periodic billing work: monthly allocations and data retention (DESIGN.md §7)."""
