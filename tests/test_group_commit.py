"""The writes of one scheduler wakeup are committed together: in one transaction, before
the wakeup ends, however it ends."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

import pytest
from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job
from apscheduler.schedulers.background import BackgroundScheduler

from lmdbstore import LMDBJobStore

DUE = 20
ROOT = Path(__file__).parent.parent


def noop() -> None:
    """What the test jobs would run, were they run."""


class RecordingExecutor(BaseExecutor):  # type: ignore[misc]
    """Runs nothing; remembers which jobs it was handed."""

    def __init__(self) -> None:
        super().__init__()
        self.submitted: list[str] = []
        self.on_submit: Callable[[Job], None] = lambda job: None

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        self.submitted.append(job.id)
        self.on_submit(job)


@pytest.fixture
def executor() -> RecordingExecutor:
    return RecordingExecutor()


@pytest.fixture(params=[30.0, None], ids=["leased", "unleased"])
def wakeup_scheduler(
    request: pytest.FixtureRequest, tmp_path: Path, timezone: tzinfo, executor: RecordingExecutor
) -> Iterator[BackgroundScheduler]:
    """A started, paused scheduler on an LMDB store (with and without wakeup leases) with
    DUE due interval jobs and one date job due once; wakeups are run by the test through
    ``_process_jobs``."""
    store = LMDBJobStore(tmp_path / "jobs.lmdb", lease=request.param)
    scheduler = BackgroundScheduler(
        jobstores={"default": store}, executors={"default": executor}, timezone=timezone
    )
    scheduler.start(paused=True)
    past = datetime.now(timezone) - timedelta(seconds=5)
    for number in range(DUE):
        scheduler.add_job(noop, "interval", hours=1, id=f"due-{number:02}", next_run_time=past)
    scheduler.add_job(noop, "date", run_date=past, id="once", next_run_time=past)
    scheduler.add_job(noop, "interval", hours=2, id="later")
    yield scheduler
    # With due jobs left, APScheduler's loop would run one last wakeup after shutdown.
    scheduler.remove_all_jobs()
    scheduler.shutdown()


def last_txnid(store: LMDBJobStore) -> int:
    return int(store.environment.env.info()["last_txnid"])


def run_wakeup(scheduler: BackgroundScheduler) -> None:
    scheduler.state = 1  # running, so that _process_jobs works; no thread wakes it
    try:
        scheduler._process_jobs()
    finally:
        scheduler.state = 2


def run_python(program: str, *args: str) -> str:
    """Run ``program`` in another Python process (which can import the tests' modules) and
    return what it printed."""
    return subprocess.run(
        [sys.executable, "-c", program, *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}"},
    ).stdout


def stored_next_run_times(path: str) -> dict[str, str | None]:
    """The next run times as another process reads them from the file."""
    output = run_python(
        "import sys; from lmdbstore import LMDBJobStore\n"
        "for job in LMDBJobStore(sys.argv[1]).get_all_jobs():\n"
        "    print(job.id, job.next_run_time and job.next_run_time.isoformat())\n",
        path,
    )
    return {
        job_id: None if when == "None" else when
        for job_id, when in (line.split(" ") for line in output.splitlines())
    }


def test_a_wakeup_commits_all_its_writes_in_one_transaction(
    wakeup_scheduler: BackgroundScheduler, executor: RecordingExecutor
) -> None:
    store = wakeup_scheduler._lookup_jobstore("default")
    before = last_txnid(store)

    run_wakeup(wakeup_scheduler)

    assert len(executor.submitted) == DUE + 1
    lease_commits = 0 if store.lease is None else 1  # the lease is taken before any job runs
    assert last_txnid(store) == before + lease_commits + 1
    assert store.lookup_job("once") is None
    now = datetime.now(wakeup_scheduler.timezone)
    assert all(job.next_run_time > now for job in store.get_all_jobs())


def test_a_wakeup_is_on_disk_when_it_returns(wakeup_scheduler: BackgroundScheduler) -> None:
    store = wakeup_scheduler._lookup_jobstore("default")
    run_wakeup(wakeup_scheduler)

    seen_elsewhere = stored_next_run_times(store.path)

    assert "once" not in seen_elsewhere
    now = datetime.now(wakeup_scheduler.timezone)
    for job in store.get_all_jobs():
        assert seen_elsewhere[job.id] == job.next_run_time.isoformat()
        assert job.next_run_time > now


def test_a_wakeup_that_raises_is_committed_when_it_ends(
    wakeup_scheduler: BackgroundScheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = wakeup_scheduler._lookup_jobstore("default")
    real_get_next_run_time = store.get_next_run_time
    failed = threading.Event()

    def broken_get_next_run_time() -> Any:
        failed.set()
        raise RuntimeError("the wakeup breaks before asking for the next run time")

    monkeypatch.setattr(store, "get_next_run_time", broken_get_next_run_time)
    with pytest.raises(RuntimeError):
        run_wakeup(wakeup_scheduler)
    monkeypatch.setattr(store, "get_next_run_time", real_get_next_run_time)

    assert failed.is_set()
    seen_elsewhere = wait_for(lambda: stored_next_run_times(store.path), lambda s: "once" not in s)
    assert len(seen_elsewhere) == DUE + 1


def wait_for(read: Callable[[], Any], done: Callable[[Any], bool]) -> Any:
    """Read until ``done`` says so, for a few seconds at most."""
    for _ in range(50):
        value = read()
        if done(value):
            return value
        threading.Event().wait(0.1)
    return value


def test_a_change_made_elsewhere_during_a_wakeup_wins(
    wakeup_scheduler: BackgroundScheduler, executor: RecordingExecutor
) -> None:
    store = wakeup_scheduler._lookup_jobstore("default")
    pause_elsewhere = (
        "import sys; from lmdbstore import LMDBJobStore\n"
        "LMDBJobStore(sys.argv[1]).set_next_run_time('due-00', None)\n"
    )

    def pause_from_another_process(job: Job) -> None:
        if job.id == "due-00":
            run_python(pause_elsewhere, store.path)

    executor.on_submit = pause_from_another_process
    run_wakeup(wakeup_scheduler)

    assert "due-00" in executor.submitted
    assert store.lookup_job("due-00").next_run_time is None
    now = datetime.now(wakeup_scheduler.timezone)
    assert store.lookup_job("due-01").next_run_time > now
    assert store.check().ok


def test_calls_from_another_thread_see_the_wakeup_committed(
    wakeup_scheduler: BackgroundScheduler, timezone: tzinfo
) -> None:
    store = wakeup_scheduler._lookup_jobstore("default")
    now = datetime.now(timezone)
    with wakeup_scheduler._jobstores_lock:
        due = store.get_due_jobs(now)
        job = due[0]
        job._modify(next_run_time=now + timedelta(days=1))
        store.update_job(job)
        seen: list[Any] = []
        reader = threading.Thread(target=lambda: seen.append(store.lookup_job(job.id)))
        reader.start()
        reader.join()
    assert seen[0].next_run_time == now + timedelta(days=1)


def test_outside_a_wakeup_every_write_is_committed_on_return(
    lmdb_store: LMDBJobStore, make_job: Callable[..., Job], timezone: tzinfo
) -> None:
    job = make_job("plain", datetime(2000, 1, 1))
    lmdb_store.add_job(job)
    before = last_txnid(lmdb_store)

    due = lmdb_store.get_due_jobs(datetime.now(timezone))
    due[0]._modify(next_run_time=None)
    lmdb_store.update_job(due[0])

    assert last_txnid(lmdb_store) == before + 1
