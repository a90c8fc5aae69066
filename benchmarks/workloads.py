"""The workloads measured in the benchmark's own process, on a store holding a plan's jobs.

Everything here is *warm*: each record timed was read or written by this process before,
and has not changed since (as in a long-running scheduler). The cold reads, the cold start
and the peak RSS are measured in fresh processes (:mod:`benchmarks.fresh_process`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from time import perf_counter_ns

from apscheduler.job import Job
from apscheduler.jobstores.base import BaseJobStore

from .jobs import INTERVAL, TIMEZONE, JobPlan, expect_jobs, make_due
from .stores import StoreSpec
from .timing import Budget, gc_paused, time_calls, time_each
from .wakeup import ManualScheduler

LOOKUP_IDS = 1000
"""How many distinct jobs the lookups read (cycling over them)."""
LOOKUP_CALLS = 200_000
"""At most this many lookups are timed."""
LOOKUP_WARMUP = (30, 0.25)
"""Before the timed lookups, the ids are looked up this many times over, or for this
many seconds if that ends first: the first tens of thousands of calls in a process that
just loaded N jobs are slower than a long-running process's (its allocator settles)."""
EXTRA_JOBS = 1000
"""How many jobs add_job adds (and remove_job removes) at most."""

Samples = dict[str, list[float]]


@dataclass
class Bench:
    """A started store holding a plan's jobs, and what its workloads need.

    :param budget: the seconds each workload may spend sampling (past its minimum samples)
    """

    spec: StoreSpec
    plan: JobPlan
    location: str
    store: BaseJobStore
    scheduler: ManualScheduler
    budget: float

    def calls_budget(self) -> Budget:
        return Budget(self.budget, minimum=5, maximum=1000)

    def wakeups_budget(self) -> Budget:
        return Budget(self.budget, minimum=3, maximum=50)

    def expect(self, found: int, wanted: int, what: str) -> int:
        """Return ``found``, if it is the number of jobs the workload needs."""
        return expect_jobs(f"{self.spec.label} at N={self.plan.size}: {what}", found, wanted)


def bulk_load(bench: Bench) -> Samples:
    """Add the plan's jobs the fastest way the store has (built beforehand, untimed)."""
    jobs = bench.plan.jobs(bench.scheduler, datetime.now(TIMEZONE))
    with gc_paused():
        start = perf_counter_ns()
        bench.spec.bulk_add(bench.store, jobs)
        elapsed = perf_counter_ns() - start
    return {"bulk_load": [elapsed / len(jobs)]}


def lookup_job(bench: Bench) -> Samples:
    """Look up jobs read once before, cycling over a random thousand of them."""
    ids = bench.plan.sample_ids(LOOKUP_IDS, seed=1)
    found = sum(bench.store.lookup_job(job_id) is not None for job_id in ids)
    bench.expect(found, len(ids), "looking up stored jobs")
    rounds, seconds = LOOKUP_WARMUP
    until = perf_counter_ns() + seconds * 1e9
    for _ in range(rounds - 1):
        for job_id in ids:
            bench.store.lookup_job(job_id)
        if perf_counter_ns() > until:
            break
    calls = ids * math.ceil(LOOKUP_CALLS / len(ids))
    samples, _ = time_calls(bench.store.lookup_job, calls, bench.calls_budget())
    return {"lookup_job.warm": samples}


def get_due_jobs(bench: Bench) -> Samples:
    """Ask for the due jobs (the plan's), already read once; cost per job returned."""
    make_due(bench.store, bench.plan)
    call = partial(bench.store.get_due_jobs, datetime.now(TIMEZONE))
    bench.expect(len(call()), bench.plan.due, "get_due_jobs")
    return {"get_due_jobs.warm": time_each(lambda: call, len, bench.calls_budget())}


def get_all_jobs(bench: Bench) -> Samples:
    """Ask for all jobs, already read once; cost per job returned."""
    call = bench.store.get_all_jobs
    bench.expect(len(call()), bench.plan.size, "get_all_jobs")
    return {"get_all_jobs.warm": time_each(lambda: call, len, bench.calls_budget())}


def get_next_run_time(bench: Bench) -> Samples:
    samples, _ = time_calls(bench.store.get_next_run_time, None, bench.calls_budget())
    return {"get_next_run_time": samples}


def update_job(bench: Bench) -> Samples:
    """Write due jobs back with their next run time a day later, as a wakeup does, but
    each call alone, outside a wakeup (as ``modify_job`` calls it)."""
    make_due(bench.store, bench.plan)
    jobs = bench.store.get_due_jobs(datetime.now(TIMEZONE))
    bench.expect(len(jobs), bench.plan.due, "get_due_jobs")
    for job in jobs:
        job._modify(next_run_time=job.next_run_time + INTERVAL)
    samples, _ = time_calls(bench.store.update_job, jobs, bench.calls_budget())
    return {"update_job": samples}


def wakeup(bench: Bench) -> Samples:
    """Run the scheduler's wakeup with the plan's due jobs due, the same jobs every time:
    after one wakeup to warm them, they are made due again before each timed one."""
    scheduler = bench.scheduler

    def prepare() -> Callable[[], None]:
        make_due(bench.store, bench.plan)
        scheduler.before_wakeup()
        return scheduler.run_wakeup

    prepare()
    scheduler.run_wakeup()
    bench.expect(scheduler.processed(), bench.plan.due, "the first wakeup")
    units = partial(_processed_due, bench)
    return {"wakeup.warm": time_each(prepare, units, bench.wakeups_budget())}


def _processed_due(bench: Bench, result: object) -> int:
    return bench.expect(bench.scheduler.processed(), bench.plan.due, "a wakeup")


def idle_wakeup(bench: Bench) -> Samples:
    """Run the scheduler's wakeup with nothing due (after one that ran whatever was), and
    apart from it the store's calls in it."""
    scheduler = bench.scheduler
    scheduler.before_wakeup()
    scheduler.run_wakeup()
    scheduler.before_wakeup()
    wakeups, _ = time_calls(scheduler.run_wakeup, None, bench.calls_budget())
    bench.expect(scheduler.processed(), 0, "an idle wakeup")
    store = bench.store
    now = datetime.now(TIMEZONE)
    bench.expect(len(store.get_due_jobs(now)), 0, "get_due_jobs in an idle wakeup")

    def store_calls() -> None:
        # As in _process_jobs: under the scheduler's lock (a store may answer both from one
        # transaction then), which costs every store the same.
        with scheduler._jobstores_lock:
            store.get_due_jobs(now)
            store.get_next_run_time()

    calls, _ = time_calls(store_calls, None, bench.calls_budget())
    return {"idle_wakeup": wakeups, "idle_wakeup.store": calls}


def add_and_remove_job(bench: Bench, add: bool, remove: bool) -> Samples:
    """Add jobs one call each (their run times among the plan's), then remove them; either
    may be timed. The store holds the plan's jobs again afterwards."""
    jobs: list[Job] = bench.plan.extra_jobs(bench.scheduler, datetime.now(TIMEZONE), EXTRA_JOBS)
    found: Samples = {}
    if add:
        found["add_job"], added = time_calls(bench.store.add_job, jobs, bench.calls_budget())
        jobs = jobs[:added]
    else:
        bench.spec.bulk_add(bench.store, jobs)
    ids = [job.id for job in jobs]
    removed = 0
    if remove:
        found["remove_job"], removed = time_calls(
            bench.store.remove_job, ids, bench.calls_budget()
        )
    for job_id in ids[removed:]:
        bench.store.remove_job(job_id)
    return found


def disk(bench: Bench) -> Samples:
    """The bytes the store takes on disk, per job (after the workloads above)."""
    assert bench.spec.disk_bytes is not None
    return {"disk": [bench.spec.disk_bytes(bench.store, bench.location) / bench.plan.size]}


WARM_WORKLOADS: dict[str, Callable[[Bench], Samples]] = {
    "lookup_job": lookup_job,
    "get_due_jobs": get_due_jobs,
    "get_all_jobs": get_all_jobs,
    "get_next_run_time": get_next_run_time,
    "update_job": update_job,
    "wakeup": wakeup,
    "idle_wakeup": idle_wakeup,
}
"""The workloads run one after the other on a loaded store, in this order."""
