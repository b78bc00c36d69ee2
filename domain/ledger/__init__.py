"""The credit ledger: accounts, append-only entries and two-phase holds (DESIGN.md §3)."""
