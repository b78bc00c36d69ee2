"""Model catalog, versioned prices and exact cost arithmetic (DESIGN.md §3)."""
