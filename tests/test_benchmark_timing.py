"""The benchmark's timing charges each call with its own cost only (never checks timings)."""

from __future__ import annotations

import weakref

import pytest

from benchmarks import timing
from benchmarks.timing import Budget, time_each


class Result:
    """What a timed call returns."""


def test_a_result_is_freed_before_the_next_call_is_timed() -> None:
    results: list[weakref.ref[Result]] = []
    alive_at_start: list[int] = []

    def call() -> Result:
        alive_at_start.append(sum(result() is not None for result in results))
        result = Result()
        results.append(weakref.ref(result))
        return result

    samples = time_each(lambda: call, lambda result: 1, Budget(0, minimum=4, maximum=4))

    assert len(samples) == 4
    assert alive_at_start == [0, 0, 0, 0]


def test_a_sample_is_a_calls_time_per_unit_it_returned(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0]
    monkeypatch.setattr(timing, "perf_counter_ns", lambda: clock[0])
    timing._loop_cost.cache_clear()  # an empty loop costs nothing on this clock

    def call() -> list[None]:
        clock[0] += 5000
        return [None] * 10

    try:
        samples = time_each(lambda: call, len, Budget(0, minimum=3, maximum=3))
    finally:
        timing._loop_cost.cache_clear()

    assert samples == [500.0, 500.0, 500.0]
