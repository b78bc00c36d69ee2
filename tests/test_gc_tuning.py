"""A serving process freezes what start-up built and widens the young generation, and every
collection's pause is measured (`config.gc_tuning`)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from config.gc_tuning import PauseMeter, tune_for_serving
from config.settings import Settings


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def test_start_up_is_frozen_and_the_young_generation_widened(restored_gc: None) -> None:
    gc.unfreeze()
    gc.set_threshold(700, 11, 12)
    assert gc.get_freeze_count() == 0
    tune_for_serving(Settings().api_gc_gen0_threshold)
    assert gc.get_freeze_count() > 1_000  # the modules, app and pools of this process
    assert gc.get_threshold() == (10_000, 11, 12)  # the older generations keep theirs


def test_zero_keeps_the_interpreter_threshold(restored_gc: None) -> None:
    gc.set_threshold(700, 10, 10)
    tune_for_serving(0)
    assert gc.get_threshold() == (700, 10, 10) and gc.get_freeze_count() > 0


def test_each_collection_is_timed_by_generation() -> None:
    registry = CollectorRegistry()
    meter = PauseMeter(registry)
    gc.disable()  # only the collections below, none the interpreter starts meanwhile
    meter.install()
    meter.install()  # once only
    try:
        assert gc.callbacks.count(meter) == 1
        gc.collect(1)
        gc.collect()
    finally:
        gc.callbacks.remove(meter)
        gc.enable()

    def count(generation: str) -> float | None:
        labels = {"generation": generation}
        return registry.get_sample_value("oxinf_gc_pause_seconds_count", labels)

    assert count("1") == 1 and count("2") == 1 and count("0") == 0
    total = registry.get_sample_value("oxinf_gc_pause_seconds_sum", {"generation": "2"})
    assert total is not None and 0 < total < 5
