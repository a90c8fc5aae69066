"""Concurrency: processes and threads adding, updating, removing and reading the jobs of
one store at once lose no acknowledged write, and reads never wait for writers."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from stress import started, wait_for
from stress.concurrency import run
from stress.holder import UNCOMMITTED
from stress.worker import MAP_SIZE, run_threads
from stress.workload import contents, make_job, make_scheduler, random_run_time

from lmdbstore import LMDBJobStore


@pytest.fixture
def scheduler() -> BackgroundScheduler:
    return make_scheduler()


@pytest.fixture
def store(tmp_path: Path, scheduler: BackgroundScheduler) -> Iterator[LMDBJobStore]:
    store = LMDBJobStore(tmp_path / "jobs.lmdb", map_size=MAP_SIZE)
    store.start(scheduler, "default")
    yield store
    store.shutdown()


@pytest.mark.parametrize(
    "seconds", [3.0, pytest.param(60.0, marks=pytest.mark.slow)], ids=["short", "long"]
)
def test_processes_of_threads_share_one_store(tmp_path: Path, seconds: float) -> None:
    """4 processes x 4 threads: no error, every acknowledged write read back, each
    shared id claimed once, the integrity check clean (the map grows meanwhile)."""
    figures = run(tmp_path, processes=4, threads=4, seconds=seconds, seed=1)
    print(figures)
    assert sum(figures.report.ops.values()) > 0
    assert figures.report.error_count == 0, figures.report.errors
    assert figures.report.lost == []
    assert figures.duplicate_claims == []
    assert figures.unaccounted_claims == []
    assert figures.problems == []


def test_many_threads_on_one_store_object(
    store: LMDBJobStore, scheduler: BackgroundScheduler
) -> None:
    """16 threads share one store object, whose map starts at 1 MiB and grows."""
    names = [f"t{index}" for index in range(16)]
    report = run_threads(store, scheduler, names, seed=1, seconds=2.0)
    assert sum(report.ops.values()) > 0
    assert report.error_count == 0, report.errors
    assert report.lost == []
    assert [job_id for job_id, count in Counter(report.claims).items() if count > 1] == []
    assert store.check().ok
    assert store.environment.env.info()["map_size"] > MAP_SIZE


def _completes(call: Callable[[], Any]) -> Any:
    """Call ``call`` in another thread and return its result, failing if it blocks."""
    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.append(call()), daemon=True)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive(), "the read is blocked"
    return results[0]


def test_reads_complete_while_another_process_holds_the_write_lock(
    store: LMDBJobStore, scheduler: BackgroundScheduler
) -> None:
    """Every kind of read answers, from the last commit, while another process sits
    inside a write transaction."""
    rng = random.Random(3)
    jobs = [make_job(scheduler, f"job-{n}", random_run_time(rng), "t", 10) for n in range(50)]
    store.add_jobs(jobs)
    expected = contents(store)
    first = min(job.next_run_time for job in jobs)
    with started("holder", store.path, "write") as holder:
        wait_for(holder, "ready")
        assert _completes(lambda: contents(store)) == expected
        assert _completes(lambda: store.lookup_job("job-7")) is not None
        assert _completes(lambda: len(store.get_due_jobs(first))) == 1
        assert _completes(store.get_next_run_time) == first
        environment = store.environment
        meta = environment.meta
        assert (
            _completes(lambda: environment.read(lambda txn: txn.get(UNCOMMITTED, db=meta))) is None
        )
        assert holder.poll() is None, "the writer left its transaction"
