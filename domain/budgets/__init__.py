"""Budget policies: monthly credit limits per department, member, key or cost center."""
