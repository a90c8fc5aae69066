"""Fork and multiprocessing: a child started by ``os.fork()`` or ``multiprocessing``
(fork or spawn) uses the store, and the parent's data, its open reads and its threads
are untouched."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from stress import run
from stress.forking import child_job_ids, run_child, write_jobs
from stress.worker import MAP_SIZE, Report, run_threads
from stress.workload import Model, contents, make_job, make_scheduler, populate

from lmdbstore import LMDBJobStore
from lmdbstore.environment import _Gate
from lmdbstore.inspection import read_stats

FORKS = ["os.fork", "multiprocessing fork"]


@pytest.fixture
def scheduler() -> BackgroundScheduler:
    return make_scheduler()


@pytest.fixture
def store(tmp_path: Path, scheduler: BackgroundScheduler) -> Iterator[LMDBJobStore]:
    store = LMDBJobStore(tmp_path / "jobs.lmdb", map_size=MAP_SIZE)
    store.start(scheduler, "default")
    yield store
    store.shutdown()


def _assert_holds(store: LMDBJobStore, expected: Model, child_ids: list[str]) -> None:
    found = contents(store)
    assert {job_id: found.get(job_id) for job_id in expected} == expected
    assert set(child_ids) <= found.keys()
    assert store.check().ok


@pytest.mark.parametrize("method", FORKS)
def test_a_forked_child_reads_and_writes_the_inherited_store(
    store: LMDBJobStore, scheduler: BackgroundScheduler, method: str
) -> None:
    expected = populate(store, 30, "parent-")

    assert run_child(method, write_jobs, store, "child-", 200, expected) == 0

    _assert_holds(store, expected, child_job_ids("child-", 200))
    store.add_job(make_job(scheduler, "parent-after", None, "parent", 0))
    assert store.lookup_job("parent-after") is not None


@pytest.mark.parametrize("handed", ["path", "store object"])
def test_a_spawned_child_opens_the_store_it_is_handed(store: LMDBJobStore, handed: str) -> None:
    """A store object handed to a spawned process arrives as the same store, opened again
    by its path with its options."""
    expected = populate(store, 30, "parent-")
    argument = store.path if handed == "path" else store

    assert run_child("multiprocessing spawn", write_jobs, argument, "child-", 50, expected) == 0

    _assert_holds(store, expected, child_job_ids("child-", 50))


@pytest.mark.parametrize("method", [*FORKS, "multiprocessing spawn"])
def test_an_open_read_of_the_parent_survives_a_child_that_writes(
    tmp_path: Path, method: str
) -> None:
    """The parent holds a read transaction of ``store.environment.env`` open while a
    child it starts makes 300 commits: the parent's snapshot still reads as it did, its
    slot stays in the reader table, and its later reads see the child's jobs. (A child
    may refuse the store with a clear error, rather than release the parent's slot.)"""
    result = run("forking", str(tmp_path / "jobs.lmdb"), method)
    assert result.returncode == 0, result.stderr
    findings = json.loads(result.stdout)
    assert findings["child_exit_code"] >= 0, "the child was killed by a signal"
    assert findings["snapshot_intact"], "the child's commits changed the parent's snapshot"
    assert findings["slot_kept"], "the child released the parent's reader slot"
    if findings["child_exit_code"] == 0:
        assert findings["later_reads_see_the_child"]
    assert findings["check_ok"]


@pytest.mark.parametrize(
    "ask",
    [
        pytest.param(lambda store: store.environment.figures(), id="environment figures"),
        pytest.param(read_stats, id="stats"),
    ],
)
def test_fork_while_another_thread_asks_for_the_store_figures(
    store: LMDBJobStore, ask: Callable[[LMDBJobStore], object]
) -> None:
    """The change watcher asks LMDB for the last commit's id after each commit by
    another process, and ``stats`` asks for the map's figures; a child forked while
    another thread does can still close the inherited environment, and write."""
    stop = threading.Event()

    def keep_asking() -> None:
        while not stop.is_set():
            ask(store)

    asker = threading.Thread(target=keep_asking)
    asker.start()
    exit_codes: list[int] = []
    try:
        while len(exit_codes) < 10 and exit_codes.count(0) == len(exit_codes):
            exit_codes.append(
                run_child("os.fork", write_jobs, store, f"c{len(exit_codes)}-", 1, {})
            )
    finally:
        stop.set()
        asker.join()
    assert exit_codes == [0] * 10
    assert {f"c{index}-0" for index in range(10)} <= contents(store).keys()


def test_fork_while_other_threads_read_and_write(
    store: LMDBJobStore, scheduler: BackgroundScheduler
) -> None:
    """Children forked while 8 threads work on the store: every child can write, and
    no thread of the parent sees an error or loses a write."""
    reports: list[Report] = []
    names = [f"t{index}" for index in range(8)]
    workers = threading.Thread(
        target=lambda: reports.append(run_threads(store, scheduler, names, seed=2, seconds=2.0))
    )
    workers.start()
    exit_codes: list[int] = []
    try:
        while workers.is_alive() or not exit_codes:
            prefix = f"child{len(exit_codes)}-"
            exit_codes.append(run_child("os.fork", write_jobs, store, prefix, 5, {}))
    finally:
        workers.join()
    assert exit_codes == [0] * len(exit_codes)
    [report] = reports
    assert report.error_count == 0, report.errors
    assert report.lost == []
    found = contents(store)
    for index in range(len(exit_codes)):
        assert set(child_job_ids(f"child{index}-", 5)) <= found.keys()
    assert store.check().ok


@pytest.mark.timeout(30)
def test_the_gate_a_fork_closes_waits_for_the_calls_inside_and_keeps_new_ones_out() -> None:
    """Every LMDB call of the store goes through this gate; a fork (or a map resize)
    closes it: it must wait for the calls in flight, and let none start until it reopens."""
    gate = _Gate()
    gate.enter()
    gate.enter()  # calls go in together
    closed = threading.Event()
    closer = threading.Thread(target=lambda: (gate.close(), closed.set()), daemon=True)
    closer.start()
    assert not closed.wait(0.2)
    gate.leave()
    assert not closed.wait(0.1)
    gate.leave()
    assert closed.wait(5)
    entered = threading.Event()
    newcomer = threading.Thread(
        target=lambda: (gate.enter(), entered.set(), gate.leave()), daemon=True
    )
    newcomer.start()
    assert not entered.wait(0.2)
    gate.reopen()
    assert entered.wait(5)
    closer.join()
    newcomer.join()


@pytest.mark.timeout(30)  # a gate that lets threads in while closed may never close
def test_nobody_is_inside_the_gate_while_it_is_closed_however_threads_race() -> None:
    gate = _Gate()
    inside = []  # one item per thread inside (appends and pops are atomic)
    seen_inside_while_closed = []
    stop = threading.Event()

    def call() -> None:
        while not stop.is_set():
            gate.enter()
            inside.append(None)
            time.sleep(0.0001)  # as an LMDB call takes a while
            inside.pop()
            gate.leave()

    threads = [threading.Thread(target=call, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    for _ in range(300):
        with gate.alone():
            seen_inside_while_closed.append(len(inside))
    stop.set()
    for thread in threads:
        thread.join()

    assert seen_inside_while_closed == [0] * 300
