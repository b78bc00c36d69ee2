"""`make bench`: relay overhead and throughput against DESIGN.md §11.

The relay does not exist yet, so there is nothing honest to measure; this says so rather
than printing invented figures.
"""

import sys

print("bench: not yet — the chat relay (issue 5) is not built, so there is nothing to measure")
sys.exit(0)
