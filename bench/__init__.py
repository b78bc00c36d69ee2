"""`make bench`: relay overhead and throughput against DESIGN.md §11 (see `bench.__main__`)."""
