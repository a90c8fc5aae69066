"""Timing: ``perf_counter_ns``, the garbage collector off while the clock runs, calls
batched until a batch dwarfs the clock's own cost, and the timing loop's cost subtracted.

Every sample is a cost per unit in nanoseconds: per call, or per job a call returned or
processed. A fast call is timed in batches of calls lasting about :data:`BATCH_NS`, so its
median and p99 are those of the batches' means.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from itertools import repeat
from time import perf_counter_ns
from typing import Any, TypeVar

R = TypeVar("R")

BATCH_NS = 20_000
"""How long a timed batch of fast calls lasts at least."""
_OVERHEAD_RUNS = 51
SIZING_CALLS = 5
"""How many calls of a fast call size its batches."""


@dataclass(frozen=True)
class Budget:
    """How many samples to take: at least ``minimum``, more while ``seconds`` last, at
    most ``maximum``."""

    seconds: float
    minimum: int = 5
    maximum: int = 1000

    def start(self) -> Callable[[int], bool]:
        """Start spending: return whether to take another sample, given how many were."""
        deadline = time.monotonic() + self.seconds

        def wants(taken: int) -> bool:
            if taken < self.minimum:
                return True
            return taken < self.maximum and time.monotonic() < deadline

        return wants


@contextmanager
def gc_paused() -> Iterator[None]:
    """Keep the garbage collector from running (and being timed) inside the block."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def percentile(samples: list[float], fraction: float) -> float:
    """The nearest-rank percentile: the smallest sample at or above ``fraction`` of them."""
    ordered = sorted(samples)
    return ordered[max(math.ceil(fraction * len(ordered)) - 1, 0)]


@cache
def _loop_cost(calls: int, with_arguments: bool) -> float:
    """The median cost in ns of a timed loop of ``calls`` iterations that calls nothing."""
    arguments = [None] * calls
    runs = []
    with gc_paused():
        for _ in range(_OVERHEAD_RUNS):
            if with_arguments:
                start = perf_counter_ns()
                for _argument in arguments:
                    pass
                runs.append(perf_counter_ns() - start)
            else:
                start = perf_counter_ns()
                for _ in repeat(None, calls):
                    pass
                runs.append(perf_counter_ns() - start)
    return statistics.median(runs)


def time_calls(
    call: Callable[..., Any], arguments: Sequence[Any] | None, budget: Budget
) -> tuple[list[float], int]:
    """Time calls of ``call`` with each of ``arguments`` in turn, or with no argument if
    ``arguments`` is None; return the cost per call of each batch, and how many of
    ``arguments`` were used (the first ones).

    The first calls (up to :data:`SIZING_CALLS`) are timed one by one to size the
    batches from their median, and are not samples (unless they are all the calls
    ``arguments`` allow): a first call alone is often slower than the rest, and would
    size batches of a fast call too small.
    """
    sizing = SIZING_CALLS
    if arguments is not None:  # leave arguments enough for the minimum of batches
        sizing = max(1, min(sizing, len(arguments) - budget.minimum))
    firsts = []
    for used in range(sizing):
        start = perf_counter_ns()
        if arguments is None:
            call()
        else:
            call(arguments[used])
        firsts.append(perf_counter_ns() - start)
    used = sizing
    calls = max(1, math.ceil(BATCH_NS / max(statistics.median(firsts), 1)))
    if arguments is not None:
        calls = min(calls, max(1, (len(arguments) - used) // budget.minimum))
    loop_cost = _loop_cost(calls, arguments is not None)
    samples: list[float] = []
    wants = budget.start()
    with gc_paused():
        while wants(len(samples)):
            if arguments is None:
                start = perf_counter_ns()
                for _ in repeat(None, calls):
                    call()
                elapsed = perf_counter_ns() - start
            else:
                batch = arguments[used : used + calls]
                if len(batch) < calls:
                    break
                used += calls
                start = perf_counter_ns()
                for argument in batch:
                    call(argument)
                elapsed = perf_counter_ns() - start
            samples.append(max(elapsed - loop_cost, 0) / calls)
    return samples or [float(statistics.median(firsts))], used


def time_each(
    prepare: Callable[[], Callable[[], R]], units: Callable[[R], int], budget: Budget
) -> list[float]:
    """Time single calls, each of the call ``prepare()`` returns (prepared untimed);
    return the cost per unit of each call, the units counted by ``units(result)``.

    A call's result is freed before the next call starts its timing: freeing the jobs a
    call returned is not part of the next call's cost."""
    loop_cost = _loop_cost(1, False)
    samples: list[float] = []
    wants = budget.start()
    while wants(len(samples)):
        call = prepare()
        with gc_paused():
            start = perf_counter_ns()
            result = call()
            elapsed = perf_counter_ns() - start
        samples.append(max(elapsed - loop_cost, 0) / max(units(result), 1))
        del result
    return samples
