"""The measurements that need a fresh process: cold reads, the cold start, the peak RSS.

The benchmark runs this module as a script (``python -m benchmarks.fresh_process MODE``),
on a store it has loaded and closed; the script prints its samples as JSON. It imports only
the store it measures.

- ``cold``: reads of records this process never read, each sample on a store object opened
  for it (and the one before it shut down, so that nothing a store keeps in memory is left
  over): lookup_job of distinct jobs, get_due_jobs, get_all_jobs, and the wakeup (its due
  jobs made due again beforehand through another store object, then shut down).
- ``start``: open the store and answer ``get_next_run_time``, timed from the store's
  constructor on (its module imported before), with the peak RSS of the process.
- ``peak_rss``: the peak RSS of a process that opens the store (the memory store: fills it
  with the plan's jobs) and runs one wakeup, and the private part of its RSS (Linux's
  ``RssAnon``: not pages of mapped files) after the wakeup.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path
from time import perf_counter_ns

from apscheduler.jobstores.base import BaseJobStore

from .jobs import TIMEZONE, JobPlan, expect_jobs, make_due
from .stores import STORES, StoreSpec
from .timing import Budget, time_calls, time_each
from .wakeup import ALIAS, ManualScheduler, started_scheduler

Samples = dict[str, list[float]]
COLD_LOOKUPS = 1000
"""How many distinct jobs the cold lookups read, at most."""
COLD_METRICS = ("lookup_job.cold", "get_due_jobs.cold", "get_all_jobs.cold", "wakeup.cold")
_ROOT = Path(__file__).resolve().parent.parent


def run_fresh(
    mode: str,
    spec: StoreSpec,
    plan: JobPlan,
    location: str,
    budget: float,
    metrics: tuple[str, ...] = (),
) -> Samples:
    """Run this module in a fresh process; return the samples it measured."""
    # fmt: off
    command = [
        sys.executable, "-m", __name__, mode, "--store", spec.name, "--location", location,
        "--size", str(plan.size), "--due", str(plan.due), "--seed", str(plan.seed),
        "--budget", str(budget), "--metrics", ",".join(metrics),
    ]
    # fmt: on
    path = os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")]))
    done = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": path}
    )
    if done.returncode:
        raise RuntimeError(
            f"the fresh process measuring {mode} of {spec.label} at N={plan.size} failed "
            f"(exit status {done.returncode}):\n{done.stderr.strip()}"
        )
    samples: Samples = json.loads(done.stdout)
    return samples


def _status_bytes(field: str) -> int | None:
    """A size in Linux's ``/proc/self/status``, in bytes (None elsewhere)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def peak_rss() -> int:
    """The peak resident set size of this process, in bytes.

    Linux's ``VmHWM``, as ``ru_maxrss`` keeps the peak of the process that started this
    one (across ``exec``).
    """
    found = _status_bytes("VmHWM")
    if found is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return found


class Fresh:
    """Opens the store at a location, a new store object each time, the last one shut
    down first."""

    def __init__(self, spec: StoreSpec, location: str) -> None:
        self.spec = spec
        self.location = location
        self.scheduler = ManualScheduler()
        self.store: BaseJobStore | None = None
        self.wakeup_scheduler: ManualScheduler | None = None

    def open(self) -> BaseJobStore:
        self.close()
        self.store = self.spec.open(self.location)
        self.store.start(self.scheduler, ALIAS)
        return self.store

    def open_scheduler(self) -> ManualScheduler:
        """A store opened under a started scheduler of its own."""
        self.close()
        self.store = self.spec.open(self.location)
        self.wakeup_scheduler = started_scheduler(self.store)
        return self.wakeup_scheduler

    def close(self) -> None:
        if self.wakeup_scheduler is not None:
            self.wakeup_scheduler.shutdown(wait=False)
        elif self.store is not None:
            self.store.shutdown()
        self.store = self.wakeup_scheduler = None


def cold(
    spec: StoreSpec, plan: JobPlan, location: str, budget: float, metrics: set[str]
) -> Samples:
    fresh = Fresh(spec, location)
    make_due(fresh.open(), plan)
    fresh.close()
    found: Samples = {}
    reads = Budget(budget, minimum=3, maximum=20)
    if "lookup_job.cold" in metrics:
        ids = plan.sample_ids(COLD_LOOKUPS, seed=2)
        found["lookup_job.cold"], _ = time_calls(
            fresh.open().lookup_job, ids, Budget(budget, minimum=5, maximum=len(ids))
        )
    if "get_due_jobs.cold" in metrics:
        now = datetime.now(TIMEZONE)
        found["get_due_jobs.cold"] = time_each(
            lambda: partial(fresh.open().get_due_jobs, now),
            lambda jobs: expect_jobs("a cold get_due_jobs", len(jobs), plan.due),
            reads,
        )
    if "get_all_jobs.cold" in metrics:
        found["get_all_jobs.cold"] = time_each(
            lambda: fresh.open().get_all_jobs,
            lambda jobs: expect_jobs("a cold get_all_jobs", len(jobs), plan.size),
            reads,
        )
    if "wakeup.cold" in metrics:

        def prepare() -> Callable[[], None]:
            make_due(fresh.open(), plan)
            scheduler = fresh.open_scheduler()
            scheduler.before_wakeup()
            return scheduler.run_wakeup

        def processed(result: object) -> int:
            assert fresh.wakeup_scheduler is not None
            return expect_jobs("a cold wakeup", fresh.wakeup_scheduler.processed(), plan.due)

        found["wakeup.cold"] = time_each(prepare, processed, reads)
    fresh.close()
    return found


def cold_start(spec: StoreSpec, location: str) -> Samples:
    importlib.import_module(spec.module)
    scheduler = ManualScheduler()
    start = perf_counter_ns()
    store = spec.open(location)
    store.start(scheduler, ALIAS)
    next_run_time = store.get_next_run_time()
    elapsed = perf_counter_ns() - start
    if next_run_time is None:
        raise RuntimeError(f"the store at {location!r} holds no scheduled job")
    samples = {"cold_start": [float(elapsed)], "cold_start_rss": [float(peak_rss())]}
    store.shutdown()
    return samples


def wakeup_rss(spec: StoreSpec, plan: JobPlan, location: str) -> Samples:
    store = spec.open(location)
    scheduler = started_scheduler(store)
    if spec.persistent:
        make_due(store, plan)
    else:
        spec.bulk_add(store, plan.jobs(scheduler, datetime.now(TIMEZONE)))
    scheduler.before_wakeup()
    scheduler.run_wakeup()
    expect_jobs("the wakeup", scheduler.processed(), plan.due)
    samples = {"peak_rss": [float(peak_rss())]}
    private = _status_bytes("RssAnon")
    if private is not None:
        samples["peak_rss.private"] = [float(private)]
    scheduler.shutdown(wait=False)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description="Measure a store in a fresh process.")
    parser.add_argument("mode", choices=["cold", "start", "peak_rss"])
    parser.add_argument("--store", required=True, choices=list(STORES))
    parser.add_argument("--location", required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--due", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--budget", type=float, required=True)
    parser.add_argument("--metrics", default="")
    options = parser.parse_args()
    spec = STORES[options.store]
    plan = JobPlan(options.size, options.due, options.seed)
    if options.mode == "cold":
        metrics = set(filter(None, options.metrics.split(",")))
        samples = cold(spec, plan, options.location, options.budget, metrics)
    elif options.mode == "start":
        samples = cold_start(spec, options.location)
    else:
        samples = wakeup_rss(spec, plan, options.location)
    json.dump(samples, sys.stdout)


if __name__ == "__main__":
    main()
