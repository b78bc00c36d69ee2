"""A serving process freezes what start-up built and widens the young generation, and every
collection's pause is measured (`config.gc_tuning`)."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path

from prometheus_client import CollectorRegistry

from config.gc_tuning import PauseMeter
from config.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def tuned(gen0_threshold: str) -> dict[str, object]:
    """`tune_for_serving` in a fresh interpreter: it freezes that process's heap (this
    one's is a test run's), and a full collection here would scan all of it."""
    script = (
        "import gc, json; gc.set_threshold(700, 11, 12)\n"
        "from config.gc_tuning import tune_for_serving\n"
        f"tune_for_serving({gen0_threshold})\n"
        "print(json.dumps({'frozen': gc.get_freeze_count(), 'threshold': gc.get_threshold()}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, check=True, timeout=60
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_start_up_is_frozen_and_the_young_generation_widened() -> None:
    got = tuned(str(Settings().api_gc_gen0_threshold))
    assert isinstance(got["frozen"], int) and got["frozen"] > 1_000  # the modules imported
    assert got["threshold"] == [10_000, 11, 12]  # the older generations keep theirs


def test_zero_keeps_the_interpreter_threshold() -> None:
    got = tuned("0")
    assert got["threshold"] == [700, 11, 12]
    assert isinstance(got["frozen"], int) and got["frozen"] > 0


def test_each_collection_is_timed_by_generation() -> None:
    registry = CollectorRegistry()
    meter = PauseMeter(registry)
    gc.disable()  # only the collections below, none the interpreter starts meanwhile
    meter.install()
    meter.install()  # once only
    try:
        assert gc.callbacks.count(meter) == 1
        gc.collect(0)
        gc.collect(1)  # (not a full one: late in a test run it scans a heap of seconds)
    finally:
        gc.callbacks.remove(meter)
        gc.enable()

    def count(generation: str) -> float | None:
        labels = {"generation": generation}
        return registry.get_sample_value("oxinf_gc_pause_seconds_count", labels)

    assert (count("0"), count("1"), count("2")) == (1, 1, 0)
    total = registry.get_sample_value("oxinf_gc_pause_seconds_sum", {"generation": "1"})
    assert total is not None and total > 0
