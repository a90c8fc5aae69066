"""LMDBJobStore against APScheduler's MemoryJobStore, the model: after any sequence of calls,
with the LMDB store reopened from its files between some of them, both hold the same jobs
in the same order with the same run times, and answer every call alike, errors included."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, tzinfo
from datetime import timezone as fixed_timezone
from pathlib import Path
from typing import Any

from apscheduler.job import Job
from apscheduler.jobstores.base import BaseJobStore, ConflictingIdError, JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_RUNNING, STATE_STOPPED
from conftest import localize
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from lmdbstore import LMDBJobStore

MakeJob = Callable[..., Job]
RunTimeChoice = tuple[int, int, bool]
JobSummary = tuple[str, str, datetime | None]

# The night Berlin's clocks go back: wall times repeat, and the two time zone libraries
# read a repeated wall time differently.
START = datetime(2024, 10, 27, 2, 59, 58)

job_ids = st.sampled_from(["a", "b", "c", "é", "🗓", ""])
names = st.sampled_from(["first", "second"])
# Seconds and microseconds after START, and whether to give the instant in UTC: few
# choices, so that equal instants (in different zones too) and 1 µs gaps come up often.
instants = st.tuples(st.integers(0, 3), st.integers(0, 2), st.booleans())
run_times = st.none() | instants


def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    """What a call returned, or the type of the contract error it raised."""
    try:
        return ("returned", call())
    except (ConflictingIdError, JobLookupError) as exc:
        return ("raised", type(exc))


def in_utc(run_time: datetime | None) -> datetime | None:
    """A run time comparable across zones: Python's ``==`` between zones is always False
    for a wall time that repeats or is skipped."""
    return None if run_time is None else run_time.astimezone(fixed_timezone.utc)


def summary(job: Job | None) -> JobSummary | None:
    return None if job is None else (job.id, job.name, in_utc(job.next_run_time))


def summaries(jobs: list[Job]) -> list[JobSummary | None]:
    return [summary(job) for job in jobs]


@contextmanager
def running(scheduler: BackgroundScheduler) -> Iterator[None]:
    """Mark ``scheduler`` running, as it is during a wakeup, without starting its thread."""
    scheduler.state = STATE_RUNNING
    try:
        yield
    finally:
        scheduler.state = STATE_STOPPED


class LMDBAgainstMemory(RuleBasedStateMachine):
    def __init__(
        self, path: Path, make_job: MakeJob, scheduler: BackgroundScheduler, zone: tzinfo
    ) -> None:
        super().__init__()
        self.path = path
        self.make_job = make_job
        self.scheduler = scheduler
        self.zone = zone
        self.lmdb = self.open_lmdb()
        self.memory = MemoryJobStore()
        self.memory.start(scheduler, "store")

    def open_lmdb(self) -> LMDBJobStore:
        store = LMDBJobStore(self.path)
        store.start(self.scheduler, "store")
        return store

    def run_time(self, choice: RunTimeChoice | None) -> datetime | None:
        if choice is None:
            return None
        seconds, microseconds, utc = choice
        local = localize(self.zone, START + timedelta(seconds=seconds, microseconds=microseconds))
        return local.astimezone(fixed_timezone.utc) if utc else local

    def job(self, job_id: str, run_time: RunTimeChoice | None, name: str) -> Job:
        job = self.make_job("placeholder", self.run_time(run_time), name=name)
        job.id = job_id  # Job itself would replace an empty id
        return job

    def same(self, call: Callable[[BaseJobStore], Any]) -> None:
        assert outcome(lambda: call(self.lmdb)) == outcome(lambda: call(self.memory))

    @rule(job_id=job_ids, run_time=run_times, name=names)
    def add_job(self, job_id: str, run_time: RunTimeChoice | None, name: str) -> None:
        job = self.job(job_id, run_time, name)
        self.same(lambda store: store.add_job(job))

    @rule(job_id=job_ids, run_time=run_times, name=names)
    def update_job(self, job_id: str, run_time: RunTimeChoice | None, name: str) -> None:
        job = self.job(job_id, run_time, name)
        self.same(lambda store: store.update_job(job))

    @rule(job_id=job_ids)
    def remove_job(self, job_id: str) -> None:
        self.same(lambda store: store.remove_job(job_id))

    @rule()
    def remove_all_jobs(self) -> None:
        self.same(lambda store: store.remove_all_jobs())

    @rule(job_id=job_ids)
    def lookup_job(self, job_id: str) -> None:
        self.same(lambda store: summary(store.lookup_job(job_id)))

    @rule(now=instants)
    def get_due_jobs(self, now: RunTimeChoice) -> None:
        self.same(lambda store: summaries(store.get_due_jobs(self.run_time(now))))

    @rule()
    def get_next_run_time(self) -> None:
        self.same(lambda store: in_utc(store.get_next_run_time()))

    @rule(now=instants, data=st.data())
    def wakeup(self, now: RunTimeChoice, data: st.DataObject) -> None:
        """What a running scheduler does at each wakeup, holding its job store lock: it
        changes the run time of each due job on the very object returned (or removes the
        job), gives it back, then asks for the next run time."""
        with self.scheduler._jobstores_lock, running(self.scheduler):
            due = [store.get_due_jobs(self.run_time(now)) for store in (self.lmdb, self.memory)]
            assert summaries(due[0]) == summaries(due[1])
            for lmdb_job, memory_job in zip(*due, strict=True):
                change = data.draw(st.just("remove") | run_times, label=lmdb_job.id)
                for store, job in ((self.lmdb, lmdb_job), (self.memory, memory_job)):
                    if change == "remove":
                        store.remove_job(job.id)
                    else:
                        job._modify(next_run_time=self.run_time(change))
                        store.update_job(job)
            self.same(lambda store: in_utc(store.get_next_run_time()))

    @rule()
    def reopen_lmdb_store(self) -> None:
        self.lmdb.shutdown()
        self.lmdb = self.open_lmdb()

    @invariant()
    def same_jobs_in_the_same_order(self) -> None:
        assert summaries(self.lmdb.get_all_jobs()) == summaries(self.memory.get_all_jobs())

    @invariant()
    def lmdb_store_is_consistent(self) -> None:
        assert self.lmdb.check().ok

    def teardown(self) -> None:
        self.lmdb.shutdown()


def test_lmdb_store_answers_every_call_like_the_memory_store(
    tmp_path: Path, make_job: MakeJob, scheduler: BackgroundScheduler, timezone: tzinfo
) -> None:
    paths: Iterator[Path] = (tmp_path / f"example-{number}" for number in itertools.count())
    run_state_machine_as_test(
        lambda: LMDBAgainstMemory(next(paths), make_job, scheduler, timezone),
        settings=settings(max_examples=40, stateful_step_count=30, deadline=None),
    )
