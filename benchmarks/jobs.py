"""The jobs every store is benchmarked with: the same realistic jobs for every store.

A plan of N jobs is made from a seed, so that the benchmark, its fresh processes and every
store see the same ids, schedules and arguments. Each job runs a report daily (an interval
trigger in a real time zone) with two positional and two keyword arguments; ``due`` of them
are due (their next run time ten seconds ago), the others spread over the day after next.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.job import Job
from apscheduler.jobstores.base import BaseJobStore
from apscheduler.triggers.interval import IntervalTrigger

TIMEZONE = ZoneInfo("Europe/Berlin")
INTERVAL = timedelta(days=1)
DUE_AGO = timedelta(seconds=10)
FIRST_FUTURE_RUN = timedelta(days=1)
SEED = 3


def send_report(account: int, report: str, *, recipients: list[str], attach_csv: bool) -> None:
    """The callable of every benchmark job; the benchmark's executor never runs it."""


@dataclass(frozen=True)
class JobPlan:
    """``size`` jobs of which the first ``due`` are due.

    :param size: the number of jobs (N)
    :param due: how many of them are due (k)
    :param seed: what the job ids are made from
    """

    size: int
    due: int
    seed: int = SEED

    def job_id(self, number: int) -> str:
        """The id of job ``number``: a random UUID, as APScheduler makes them, made from
        the seed and the number (so that a process needs no more ids than it uses)."""
        digest = hashlib.blake2b(f"{self.seed}:{number}".encode(), digest_size=16).digest()
        return uuid.UUID(bytes=digest, version=4).hex

    @property
    def due_ids(self) -> list[str]:
        return [self.job_id(number) for number in range(self.due)]

    def sample_ids(self, count: int, seed: int) -> list[str]:
        """The ids of ``count`` (at most N) jobs of the plan picked at random."""
        numbers = random.Random(seed).sample(range(self.size), min(count, self.size))
        return [self.job_id(number) for number in numbers]

    def jobs(self, scheduler: Any, now: datetime) -> list[Job]:
        """Build the plan's jobs, those due having been due since shortly before ``now``."""
        later = self.size - self.due
        step = INTERVAL / max(later, 1)
        first = now + FIRST_FUTURE_RUN
        return [
            make_job(scheduler, self.job_id(number), number, due_time(now, number))
            if number < self.due
            else make_job(
                scheduler, self.job_id(number), number, first + (number - self.due) * step
            )
            for number in range(self.size)
        ]

    def extra_jobs(self, scheduler: Any, now: datetime, count: int) -> list[Job]:
        """Build ``count`` jobs that are not in the plan, run times among the plan's."""
        rng = random.Random(self.seed)
        first = now + FIRST_FUTURE_RUN
        return [
            make_job(scheduler, self.job_id(number), number, first + rng.random() * INTERVAL)
            for number in range(self.size, self.size + count)
        ]


def due_time(now: datetime, number: int) -> datetime:
    """When the due job ``number`` is due: a few seconds before ``now``, one job a ms."""
    return now - DUE_AGO - timedelta(milliseconds=number)


def make_job(scheduler: Any, job_id: str, number: int, run_time: datetime) -> Job:
    """Build a daily job as ``scheduler.add_job`` would, first running at ``run_time``."""
    return Job(
        scheduler,
        id=job_id,
        func=send_report,
        trigger=IntervalTrigger(days=1, start_date=run_time, timezone=TIMEZONE),
        executor="default",
        args=(number, "daily-usage"),
        kwargs={"recipients": [f"ops+{number}@example.com"], "attach_csv": number % 2 == 0},
        name=f"daily usage report #{number}",
        misfire_grace_time=300,
        coalesce=True,
        max_instances=1,
        next_run_time=run_time,
    )


def expect_jobs(what: str, found: int, wanted: int) -> int:
    """Return ``found``, the number of jobs ``what`` gave, if it is the number ``wanted``
    (else the measurement would not be what it says)."""
    if found != wanted:
        raise RuntimeError(f"{what} gave {found} jobs, not {wanted}")
    return found


def make_due(store: BaseJobStore, plan: JobPlan) -> None:
    """Make the plan's due jobs due again, the way a user would: look each job up, change
    its next run time, update it."""
    now = datetime.now(TIMEZONE)
    for number, job_id in enumerate(plan.due_ids):
        job = store.lookup_job(job_id)
        job._modify(next_run_time=due_time(now, number))
        store.update_job(job)
