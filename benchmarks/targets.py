"""The targets of issue 3 for LMDBJobStore, checked against one run's medians.

A target holds at N = 100,000 unless it says otherwise; a run without that N checks it at
its largest N, and the N it was checked at is shown with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .results import METRIC, Results
from .stores import OURS, STORES

MAIN_SIZE = 100_000


@dataclass(frozen=True)
class Target:
    """A bound on one of LMDBJobStore's metrics.

    :param rule: ``"within"``: ours ≤ ``bound`` x the other store's; ``"faster"``: the
        other store's ≥ ``bound`` x ours; ``"below"``: ours < ``bound`` (in the metric's
        samples' unit); ``"growth"``: ours at the largest N ≤ ``bound`` x ours at the
        smallest N
    :param at: ``"main"`` (N = 100,000) or ``"largest"`` (the largest N run, meant to be
        1,000,000)
    """

    text: str
    metric: str
    rule: str
    bound: float
    other: str | None = None
    other_metric: str | None = None
    at: str = "main"


TARGETS = [
    Target("wakeup, warm: ≤ 2x MemoryJobStore per due job", "wakeup.warm", "within", 2, "memory"),
    Target("wakeup, warm: ≥ 40x faster than SQLite", "wakeup.warm", "faster", 40, "sqlite"),
    Target(
        "wakeup, cold: ≤ 3x MemoryJobStore",
        "wakeup.cold",
        "within",
        3,
        "memory",
        other_metric="wakeup.warm",
    ),
    Target(
        "lookup_job, warm: ≥ 40x faster than SQLite", "lookup_job.warm", "faster", 40, "sqlite"
    ),
    Target(
        "lookup_job, cold: ≥ 10x faster than SQLite", "lookup_job.cold", "faster", 10, "sqlite"
    ),
    Target(
        "get_due_jobs per returned job, warm: ≥ 5x faster than SQLite",
        "get_due_jobs.warm",
        "faster",
        5,
        "sqlite",
    ),
    Target(
        "get_due_jobs per returned job, cold: no slower than SQLite",
        "get_due_jobs.cold",
        "faster",
        1,
        "sqlite",
    ),
    Target(
        "get_all_jobs per returned job, warm: ≥ 5x faster than SQLite",
        "get_all_jobs.warm",
        "faster",
        5,
        "sqlite",
    ),
    Target(
        "get_all_jobs per returned job, cold: no slower than SQLite",
        "get_all_jobs.cold",
        "faster",
        1,
        "sqlite",
    ),
    Target("get_next_run_time < 3 µs", "get_next_run_time", "below", 3e3),
    Target("idle wakeup < 3 µs (the store's calls in it)", "idle_wakeup.store", "below", 3e3),
    Target(
        "add_job (durable on return): ≥ 3x faster than SQLite", "add_job", "faster", 3, "sqlite"
    ),
    Target(
        "bulk add_jobs: ≥ 50x faster than SQLite (a loop of add_job)",
        "bulk_load",
        "faster",
        50,
        "sqlite",
    ),
    Target("growth: wakeup per due job at 1M within 1.5x of 1k", "wakeup.warm", "growth", 1.5),
    Target("cold start at 1M < 50 ms", "cold_start", "below", 50e6, at="largest"),
    Target("cold start at 1M < 64 MiB RSS", "cold_start_rss", "below", 64 * 2**20, at="largest"),
    Target("disk: ≤ 1.5x SQLite's bytes per job", "disk", "within", 1.5, "sqlite"),
]


def check_targets(results: Results) -> list[dict[str, Any]]:
    """Check every target; each gives its text, the N it was checked at, the measured
    value or ratio, the bound, and ``"PASS"``, ``"FAIL"`` or ``"n/a"`` (not measured)."""
    return [_check(target, results) for target in TARGETS]


def _check(target: Target, results: Results) -> dict[str, Any]:
    sizes = results.sizes
    largest = max(sizes)
    size = MAIN_SIZE if target.at == "main" and MAIN_SIZE in sizes else largest
    checked = {"target": target.text, "size": f"{size:,}", "measured": "—", "required": "—"}
    ours = results.get(OURS, size, target.metric)
    if target.rule == "growth":
        smallest = results.get(OURS, min(sizes), target.metric)
        checked["size"] = f"{min(sizes):,} → {largest:,}"
        ours = results.get(OURS, largest, target.metric)
        if ours is None or smallest is None or len(sizes) < 2:
            return {**checked, "result": "n/a"}
        ratio = ours.median / smallest.median
        passed = ratio <= target.bound
        measured, required = f"{ratio:.2f}x", f"≤ {target.bound:g}x"
    elif target.rule == "below":
        if ours is None:
            return {**checked, "result": "n/a"}
        metric = METRIC[target.metric]
        passed = ours.median < target.bound
        measured = f"{ours.median / metric.scale:,.3g} {metric.shown_in}"
        required = f"< {target.bound / metric.scale:g} {metric.shown_in}"
    else:
        assert target.other is not None
        theirs = results.get(target.other, size, target.other_metric or target.metric)
        if ours is None or theirs is None or not ours.median:
            return {**checked, "result": "n/a"}
        label = STORES[target.other].label
        if target.rule == "within":
            ratio = ours.median / theirs.median
            passed = ratio <= target.bound
            measured, required = f"{ratio:.2f}x {label}", f"≤ {target.bound:g}x"
        else:
            ratio = theirs.median / ours.median
            passed = ratio >= target.bound
            measured, required = f"{ratio:.1f}x faster", f"≥ {target.bound:g}x"
    return {**checked, "measured": measured, "required": required, "result": _verdict(passed)}


def _verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"
