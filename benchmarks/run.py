"""One benchmark run: every store at every N, each workload in turn, in one process (and
the fresh processes it starts)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .fresh_process import COLD_METRICS, run_fresh
from .jobs import JobPlan, make_due
from .results import METRIC, Measurement, Results, machine_info
from .stores import STORES, RedisServer, StoreSpec
from .timing import Budget
from .wakeup import started_scheduler
from .workloads import WARM_WORKLOADS, Bench, Samples, add_and_remove_job, bulk_load, disk


@dataclass(frozen=True)
class Options:
    """What to run.

    :param sizes: the numbers of jobs (N)
    :param stores: the stores' names (keys of :data:`~benchmarks.stores.STORES`)
    :param workloads: the workloads' names (:data:`~benchmarks.results.WORKLOADS`)
    :param due: how many jobs are due in a wakeup (k; at most N)
    :param budget: seconds of sampling per workload, store and N, past the minimum
    :param command: the command line, for the report
    """

    sizes: list[int]
    stores: list[str]
    workloads: list[str]
    due: int
    budget: float
    command: str


def run(options: Options) -> Results:
    machine = machine_info()
    measurements = []
    with ExitStack() as stack:
        workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="lmdbstore-bench-"))
        redis = stack.enter_context(RedisServer(workdir)) if "redis" in options.stores else None
        specs = [STORES[name] for name in options.stores]
        progress = stack.enter_context(
            tqdm(
                total=len(options.sizes) * sum(len(_steps(spec, options)) for spec in specs),
                desc="benchmark",
                unit="step",
                file=sys.stderr,
            )
        )
        for size in options.sizes:
            plan = JobPlan(size, min(options.due, size))
            for spec in specs:
                location = _location(spec, workdir, size, redis)
                track = _tracker(progress, f"N={size:,} {spec.name}")
                samples = _bench_store(spec, plan, location, options, track)
                measurements += [
                    Measurement.of(spec.name, size, metric, found)
                    for metric, found in samples.items()
                ]
                _discard(spec, location)
    settings = {
        "command": options.command,
        "sizes": options.sizes,
        "due": options.due,
        "budget": options.budget,
        "workloads": options.workloads,
        "seed": JobPlan(0, 0).seed,
    }
    return Results(machine, settings, {spec.name: spec.label for spec in specs}, measurements)


Track = Callable[[str, Callable[[], Samples]], Samples]


def _tracker(progress: tqdm[Any], label: str) -> Track:
    """Run a step, showing ``label`` and the step's name on the progress bar meanwhile."""

    def track(step: str, measure: Callable[[], Samples]) -> Samples:
        progress.set_postfix_str(f"{label} {step}")
        samples = measure()
        progress.update()
        return samples

    return track


def _steps(spec: StoreSpec, options: Options) -> list[str]:
    """The steps :func:`_bench_store` yields for ``spec``."""
    selected = set(options.workloads)
    steps = ["bulk_load", *(name for name in WARM_WORKLOADS if name in selected)]
    if selected & {"add_job", "remove_job"}:
        steps.append("add_job")
    if "disk" in selected and spec.disk_bytes is not None:
        steps.append("disk")
    if spec.persistent:
        if "cold_start" in selected:
            steps.append("cold_start")
        if _cold_metrics(options):
            steps.append("cold")
    if "peak_rss" in selected:
        steps.append("peak_rss")
    return steps


def _cold_metrics(options: Options) -> tuple[str, ...]:
    return tuple(key for key in COLD_METRICS if METRIC[key].workload in options.workloads)


def _bench_store(
    spec: StoreSpec,
    plan: JobPlan,
    location: str,
    options: Options,
    track: Track,
) -> Samples:
    """Load the plan's jobs into the store at ``location`` and run the workloads, each
    step through ``track(name, measure)``; return the samples of every metric."""
    steps = _steps(spec, options)
    selected = options.workloads
    store = spec.open(location)
    scheduler = started_scheduler(store)
    bench = Bench(spec, plan, location, store, scheduler, options.budget)
    found: Samples = {}
    try:
        found |= track("bulk_load", partial(bulk_load, bench))
        for name, workload in WARM_WORKLOADS.items():
            if name in steps:
                found |= track(name, partial(workload, bench))
        if "add_job" in steps:
            found |= track(
                "add_job",
                partial(
                    add_and_remove_job, bench, "add_job" in selected, "remove_job" in selected
                ),
            )
        if "disk" in steps:
            found |= track("disk", partial(disk, bench))
        if spec.persistent:
            make_due(store, plan)
    finally:
        scheduler.shutdown(wait=False)
    if "cold_start" in steps:
        found |= track("cold_start", partial(_cold_starts, spec, plan, location, options.budget))
    if "cold" in steps:
        cold = _cold_metrics(options)
        found |= track(
            "cold", partial(run_fresh, "cold", spec, plan, location, options.budget, cold)
        )
    if "peak_rss" in steps:
        found |= track(
            "peak_rss", partial(run_fresh, "peak_rss", spec, plan, location, options.budget)
        )
    return found


def _cold_starts(spec: StoreSpec, plan: JobPlan, location: str, budget: float) -> Samples:
    found: Samples = {}
    wants = Budget(budget, minimum=5, maximum=20).start()
    while wants(len(found.get("cold_start", []))):
        for metric, samples in run_fresh("start", spec, plan, location, budget).items():
            found.setdefault(metric, []).extend(samples)
    return found


def _location(spec: StoreSpec, workdir: str, size: int, redis: str | None) -> str:
    """Where the store of ``spec`` with ``size`` jobs lives (see :mod:`benchmarks.stores`)."""
    if spec.name == "redis":
        return f"{redis}:bench-{size}"
    if not spec.persistent:
        return ""
    path = Path(workdir, f"{spec.name}-{size}")
    path.mkdir()
    return str(path)


def _discard(spec: StoreSpec, location: str) -> None:
    """Delete the store at ``location`` and its jobs."""
    if os.path.isdir(location):
        shutil.rmtree(location)
    else:
        store = spec.open(location)
        store.remove_all_jobs()
        store.shutdown()
