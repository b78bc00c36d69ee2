"""The garbage collector of a serving process: what start-up built is frozen, the young
generation is large, and every pause is measured.

CPython's cyclic collector stops the event loop while it runs, and with its defaults a busy
API process paid for it in the tail. Measured by `make bench` (its "GC pauses" line, the
relay phases and the hot account; 2-core dev machine, 2026-12-04, three runs each,
interleaved):
- CPython's defaults: 689-918 collections, 968-1,163 ms stopped in all, and full
  collections (3-4 a run) that scan everything start-up made (imports, the app, its routes,
  the pools) and stop every call in flight for 150-500 ms; 1-connection p99 overhead
  5.2-5.6 ms;
- frozen start-up alone: the longest pause under 100 ms, but as many collections
  (674-927) and 558-672 ms stopped;
- frozen start-up and a young generation of 10,000 (kept): 20-26 collections, no full one,
  94-175 ms stopped, the longest pause under 50-100 ms; p99 3.9-4.3 ms in the two runs
  the machine stayed quiet. A call's objects are freed by reference counting long before
  10,000 more allocations come along, so a young collection rarely has much to scan.

`oxinf_gc_pause_seconds` keeps the pauses visible in `/metrics` (the bench reports them).
"""

from __future__ import annotations

import gc
import time
from typing import Any

from prometheus_client import CollectorRegistry, Histogram

PAUSE_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


def tune_for_serving(gen0_threshold: int) -> None:
    """Once start-up is done: collect, freeze what survived (it lives as long as the process
    and is never scanned again), and widen the young generation (0 keeps CPython's)."""
    gc.collect()
    gc.freeze()
    if gen0_threshold > 0:
        _, gen1, gen2 = gc.get_threshold()
        gc.set_threshold(gen0_threshold, gen1, gen2)


class PauseMeter:
    """Times each collection through `gc.callbacks` (two clock reads a collection)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        histogram = Histogram(
            "oxinf_gc_pause_seconds",
            "Time this process spent stopped in a garbage collection, by generation.",
            ["generation"],
            buckets=PAUSE_BUCKETS,
            registry=registry,
        )
        self._by_generation = [histogram.labels(str(g)) for g in range(3)]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self._by_generation[info["generation"]].observe(time.perf_counter() - self._started)

    def install(self) -> None:
        if self not in gc.callbacks:
            gc.callbacks.append(self)
