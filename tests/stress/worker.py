"""A process of the concurrency run: threads that add, update, pause, remove and read
jobs of one store at once, each keeping a model of its own jobs.

Every thread writes only jobs whose id starts with its own name, so after each of its
writes it knows exactly what the store must say about them: every read checks that (a
read sees every write acknowledged before it began), and so does the end of the run.
Every thread also tries to add jobs with the shared ids ``claim-<n>``: across all threads
and processes, each of those must be added exactly once.

``python -m stress.worker PATH --name P --threads 4 --seconds 3 --seed 1`` opens the
store, prints ``ready``, waits for a line on its standard input, runs, and prints its
:class:`Report` as one JSON line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from apscheduler.jobstores.base import ConflictingIdError
from apscheduler.schedulers.background import BackgroundScheduler

from lmdbstore import LMDBJobStore

from .workload import (
    Model,
    contents,
    fingerprint,
    make_job,
    make_scheduler,
    random_run_time,
    random_size,
)

CLAIMS = 200
MAP_SIZE = 1024 * 1024
_OWN_JOBS = 40  # a thread that has this many jobs removes rather than adds
_ERRORS_KEPT = 20


@dataclass
class Report:
    """What threads did and found."""

    ops: Counter[str] = field(default_factory=Counter)
    error_count: int = 0
    errors: list[str] = field(default_factory=list)
    """The first :data:`_ERRORS_KEPT` errors."""
    lost: list[str] = field(default_factory=list)
    claims: list[str] = field(default_factory=list)

    def merge(self, other: Report) -> None:
        self.ops.update(other.ops)
        self.error_count += other.error_count
        self.errors += other.errors[: _ERRORS_KEPT - len(self.errors)]
        self.lost += other.lost
        self.claims += other.claims

    def to_json(self) -> str:
        return json.dumps({**dataclasses.asdict(self), "ops": dict(self.ops)})

    @classmethod
    def from_json(cls, text: str) -> Report:
        data = json.loads(text)
        return cls(**{**data, "ops": Counter(data["ops"])})


class _Thread:
    """One thread's work: random operations until ``deadline``."""

    def __init__(self, store: LMDBJobStore, scheduler: BackgroundScheduler, name: str, seed: int):
        self.store = store
        self.scheduler = scheduler
        self.name = name
        self.rng = random.Random(f"{seed}/{name}")
        self.model: Model = {}
        self.report = Report()
        self.number = 0
        self.operations: list[tuple[Callable[[], None], int]] = [
            (self.add, 25),
            (self.update, 15),
            (self.pause, 5),
            (self.remove, 10),
            (self.claim, 5),
            (self.lookup, 15),
            (self.get_all_jobs, 3),
            (self.get_due_jobs, 10),
            (self.get_next_run_time, 12),
        ]

    def run(self, deadline: float) -> Report:
        operations, weights = zip(*self.operations, strict=True)
        while time.monotonic() < deadline:
            self.number += 1
            operation = self.rng.choices(operations, weights)[0]
            try:
                operation()
            except Exception as exc:
                self.report.error_count += 1
                if len(self.report.errors) < _ERRORS_KEPT:
                    message = f"{self.name} {operation.__name__}: {type(exc).__name__}: {exc}"
                    self.report.errors.append(message)
            self.report.ops[operation.__name__] += 1
        self._check_own(contents(self.store), "at the end")
        return self.report

    def _own_id(self) -> str | None:
        return self.rng.choice(sorted(self.model)) if self.model else None

    def add(self) -> None:
        if len(self.model) >= _OWN_JOBS:
            self.remove()
            return
        job_id = f"{self.name}.{self.number}"
        job = make_job(
            self.scheduler, job_id, random_run_time(self.rng), job_id, random_size(self.rng)
        )
        self.store.add_job(job)
        self.model[job_id] = fingerprint(job)

    def update(self) -> None:
        job_id = self._own_id()
        if job_id is None:
            return
        token = f"{self.name}.{self.number}"
        job = make_job(
            self.scheduler, job_id, random_run_time(self.rng), token, random_size(self.rng)
        )
        self.store.update_job(job)
        self.model[job_id] = fingerprint(job)

    def pause(self) -> None:
        job_id = self._own_id()
        if job_id is None:
            return
        job = self.store.lookup_job(job_id)
        assert job is not None, f"{job_id} is gone"
        job._modify(next_run_time=None)
        self.store.update_job(job)
        self.model[job_id] = fingerprint(job)

    def remove(self) -> None:
        job_id = self._own_id()
        if job_id is None:
            return
        self.store.remove_job(job_id)
        del self.model[job_id]

    def claim(self) -> None:
        job_id = f"claim-{self.rng.randrange(CLAIMS)}"
        try:
            self.store.add_job(make_job(self.scheduler, job_id, None, self.name, 0))
        except ConflictingIdError:
            return
        self.report.claims.append(job_id)

    def lookup(self) -> None:
        job_id = self._own_id()
        if job_id is None:
            return
        job = self.store.lookup_job(job_id)
        found = None if job is None else fingerprint(job)
        if found != self.model[job_id]:
            self.report.lost.append(f"{job_id}: read {found}, wrote {self.model[job_id]}")

    def get_all_jobs(self) -> None:
        self._check_own(contents(self.store), "in get_all_jobs")

    def get_due_jobs(self) -> None:
        now = random_run_time(self.rng)
        due = {job.id: fingerprint(job) for job in self.store.get_due_jobs(now)}
        late = [
            job_id
            for job_id, (run_time, _, _) in due.items()
            if run_time is None or run_time > now
        ]
        assert not late, f"get_due_jobs({now}) returned jobs not due: {late}"
        own_due = {k: v for k, v in self.model.items() if v[0] is not None and v[0] <= now}
        self._check_own(due, f"in get_due_jobs({now})", own_due)

    def get_next_run_time(self) -> None:
        next_run_time = self.store.get_next_run_time()
        own = [run_time for run_time, _, _ in self.model.values() if run_time is not None]
        if own:
            assert next_run_time is not None and next_run_time <= min(own)

    def _check_own(self, found: Model, where: str, expected: Model | None = None) -> None:
        """Check that the jobs of this thread in ``found`` are ``expected`` (by default:
        all of them)."""
        expected = self.model if expected is None else expected
        prefix = f"{self.name}."
        own = {job_id: state for job_id, state in found.items() if job_id.startswith(prefix)}
        for job_id in own.keys() | expected.keys():
            if own.get(job_id) != expected.get(job_id):
                self.report.lost.append(
                    f"{job_id} {where}: read {own.get(job_id)}, wrote {expected.get(job_id)}"
                )


def run_threads(
    store: LMDBJobStore,
    scheduler: BackgroundScheduler,
    names: list[str],
    seed: int,
    seconds: float,
) -> Report:
    """Run one thread of random operations on ``store`` (started by ``scheduler``) for
    each of ``names``, all at once, for ``seconds``; return what they did and found."""
    deadline = time.monotonic() + seconds
    workers = [_Thread(store, scheduler, name, seed) for name in names]
    reports: list[Report] = []

    def work(worker: _Thread) -> None:
        reports.append(worker.run(deadline))

    threads = [
        threading.Thread(target=work, args=(worker,), name=worker.name) for worker in workers
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report = Report()
    for part in reports:
        report.merge(part)
    if len(reports) != len(threads):
        report.error_count += 1
        report.errors.append(f"{len(threads) - len(reports)} threads died")
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path")
    parser.add_argument("--name", required=True)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    scheduler = make_scheduler()
    store = LMDBJobStore(args.path, map_size=MAP_SIZE)
    store.start(scheduler, "default")
    print("ready", flush=True)
    sys.stdin.readline()
    names = [f"{args.name}t{index}" for index in range(args.threads)]
    report = run_threads(store, scheduler, names, args.seed, args.seconds)
    store.shutdown()
    print(report.to_json(), flush=True)


if __name__ == "__main__":
    main()
