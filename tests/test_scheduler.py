"""End to end with a real BackgroundScheduler: jobs fire, survive a restart of the
scheduler on the same store, and go on firing."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from apscheduler.events import EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler

from lmdbstore import LMDBJobStore


def record_run(name: str) -> None:
    """What the test jobs run: nothing; executions are counted through events."""


class Runs:
    """Counts the executions of each job by a scheduler, and lets a test wait for them."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._changed = threading.Condition()

    def listen(self, event: JobExecutionEvent) -> None:
        with self._changed:
            self.counts[event.job_id] += 1
            self._changed.notify_all()

    def wait_for(self, job_id: str, count: int, seconds: float = 10) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.counts[job_id] >= count, seconds)


@pytest.fixture
def store_path(tmp_path: Path) -> str:
    return str(tmp_path / "jobs.lmdb")


def start_scheduler(store_path: str, runs: Runs) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(
        jobstores={"default": LMDBJobStore(store_path)}, timezone=timezone.utc
    )
    scheduler.add_listener(runs.listen, EVENT_JOB_EXECUTED)
    scheduler.start()
    return scheduler


@pytest.fixture
def first_life(store_path: str) -> Iterator[tuple[BackgroundScheduler, Runs]]:
    runs = Runs()
    scheduler = start_scheduler(store_path, runs)
    yield scheduler, runs
    if scheduler.running:
        scheduler.shutdown()


def test_interval_cron_and_date_jobs_fire(
    first_life: tuple[BackgroundScheduler, Runs],
) -> None:
    scheduler, runs = first_life
    soon = datetime.now(timezone.utc) + timedelta(seconds=0.3)
    scheduler.add_job(record_run, "interval", seconds=0.2, args=["interval"], id="interval")
    scheduler.add_job(record_run, "cron", second="*", args=["cron"], id="cron")
    scheduler.add_job(record_run, "date", run_date=soon, args=["date"], id="date")

    assert runs.wait_for("interval", 3)
    assert runs.wait_for("cron", 1)
    assert runs.wait_for("date", 1)
    assert scheduler.get_job("date") is None  # a date job is removed once it has run


def test_jobs_survive_a_restart_and_go_on_firing(
    first_life: tuple[BackgroundScheduler, Runs], store_path: str
) -> None:
    scheduler, runs = first_life
    scheduler.add_job(record_run, "interval", seconds=0.2, args=["a"], id="interval")
    scheduler.add_job(record_run, "cron", hour=3, args=["b"], id="nightly")
    scheduler.add_job(record_run, "interval", seconds=0.2, args=["c"], id="paused")
    scheduler.pause_job("paused")
    assert runs.wait_for("interval", 2)
    before = {job.id: job.next_run_time for job in scheduler.get_jobs()}
    scheduler.shutdown()

    second_runs = Runs()
    second = start_scheduler(store_path, second_runs)
    try:
        jobs = {job.id: job for job in second.get_jobs()}
        assert set(jobs) == {"interval", "nightly", "paused"}
        assert jobs["nightly"].next_run_time == before["nightly"]
        assert jobs["paused"].next_run_time is None
        assert jobs["interval"].args == ("a",)
        assert second_runs.wait_for("interval", 2)
        assert second_runs.counts["paused"] == 0

        second.resume_job("paused")
        assert second_runs.wait_for("paused", 1)
    finally:
        second.shutdown()
