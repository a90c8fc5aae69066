"""Crash survival: processes killed with SIGKILL while they write, read or hold the write
lock lose nothing that was acknowledged, corrupt nothing, and leave nothing that blocks
the next process."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from stress import started, wait_for
from stress.crash import run_trials
from stress.holder import GROWING_JOB_ID, GROWING_JOB_SIZE, UNCOMMITTED
from stress.workload import contents, make_job, make_scheduler, populate

from lmdbstore import LMDBJobStore

# More crashed readers than LMDB's reader table has slots (126 by default).
_READER_CRASHES = 130


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "jobs.lmdb"


@pytest.fixture
def store(store_path: Path) -> Iterator[LMDBJobStore]:
    store = LMDBJobStore(store_path)
    yield store
    store.shutdown()


def _reader_pids(store: LMDBJobStore) -> list[int]:
    """The process ids in the store's reader table (``env.readers()``)."""
    lines = store.environment.env.readers().splitlines()[1:]
    return [int(line.split()[0]) for line in lines]


def _read_until_killed(store: LMDBJobStore, fd: int) -> None:
    """Write ``r`` to ``fd`` from inside a read transaction of ``store``, then wait."""

    def read(txn: object) -> None:
        os.write(fd, b"r")
        time.sleep(60)

    store.environment.read(read)


def _kill(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL


@pytest.mark.parametrize(
    ("trials", "seed"),
    [(30, 1), pytest.param(500, 1, marks=[pytest.mark.slow, pytest.mark.timeout(1800)])],
)
def test_acknowledged_writes_survive_kill_9(tmp_path: Path, trials: int, seed: int) -> None:
    """Writers doing every kind of write (map growth included) are killed at random
    moments: every acknowledged write is there, nothing else but the write in flight,
    and the integrity check is clean."""
    figures = run_trials(tmp_path, trials, seed, trials_per_store=min(10, trials // 3))
    print(figures)
    assert figures.trials == trials
    assert figures.acknowledged > 0
    assert figures.losses == 0, str(figures)
    assert figures.unexpected == 0, str(figures)
    assert figures.ok, str(figures)


def test_kill_while_the_map_grows(store_path: Path) -> None:
    """A job much larger than the map makes it grow several times; killed at any moment
    of that, the store holds the whole job or nothing, and checks clean."""
    LMDBJobStore(store_path).shutdown()
    rng = random.Random(7)
    for _ in range(3):
        with started("holder", str(store_path), "grow") as holder:
            wait_for(holder, "ready")
            time.sleep(rng.uniform(0, 0.15))
            _kill(holder)
            assert holder.stdout is not None
            added = holder.stdout.read() == "added\n"
        store = LMDBJobStore(store_path)
        try:
            job = store.lookup_job(GROWING_JOB_ID)
            assert store.check().ok
            if job is not None:
                assert len(job.kwargs["payload"]) == GROWING_JOB_SIZE
                store.remove_job(GROWING_JOB_ID)
            else:
                assert not added
        finally:
            store.shutdown()


@pytest.mark.parametrize("mode", ["read", "get_all_jobs"])
def test_stale_reader_slot_is_cleared_on_next_open(
    store_path: Path, store: LMDBJobStore, mode: str
) -> None:
    """A process killed inside a read leaves its slot in LMDB's reader table; the next
    open of the store clears it."""
    expected = populate(store, 3000)
    for _ in range(20):
        with started("holder", str(store_path), mode) as holder:
            wait_for(holder, "ready")
            while holder.pid not in _reader_pids(store):
                assert holder.poll() is None
            _kill(holder)
        if holder.pid in _reader_pids(store):
            break  # killed inside the read, not just after it
    else:
        pytest.fail("the reader was never killed inside its read")
    store.shutdown()
    reopened = LMDBJobStore(store_path)
    try:
        assert holder.pid not in _reader_pids(reopened)
        assert contents(reopened) == expected
        assert reopened.check().ok
    finally:
        reopened.shutdown()


def test_reader_table_does_not_fill_up_after_many_crashes(store: LMDBJobStore) -> None:
    """More readers than the reader table has slots are killed inside a read, one after
    the other: each next one still gets a slot, and nothing is left behind."""
    expected = populate(store, 10)
    for _ in range(_READER_CRASHES):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: read until killed; never return into pytest
            try:
                os.close(read_end)
                _read_until_killed(store, write_end)
            finally:
                os._exit(1)
        os.close(write_end)
        try:
            said = os.read(read_end, 1)
        finally:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(read_end)
        assert said == b"r", "a forked reader could not start its read"
    assert contents(store) == expected
    store.shutdown()
    reopened = LMDBJobStore(store.path)
    try:
        assert _reader_pids(reopened) == []
        assert reopened.check().ok
    finally:
        reopened.shutdown()


def test_writer_killed_holding_the_write_lock(store_path: Path, store: LMDBJobStore) -> None:
    """A process killed inside a write transaction does not block the next writer, and
    nothing of its transaction is committed."""
    expected = populate(store, 10)
    with started("holder", str(store_path), "write") as holder:
        wait_for(holder, "ready")
        _kill(holder)
    scheduler = make_scheduler()
    job = make_job(scheduler, "after", None, "after", 0)
    errors: list[BaseException] = []

    def add() -> None:
        try:
            store.add_job(job)
        except BaseException as exc:
            errors.append(exc)

    writer = threading.Thread(target=add, daemon=True)
    writer.start()
    writer.join(timeout=60)
    assert not writer.is_alive(), "the next writer is blocked by the dead one's lock"
    assert errors == []
    environment = store.environment
    assert environment.read(lambda txn: txn.get(UNCOMMITTED, db=environment.meta)) is None
    assert contents(store) == {**expected, "after": (None, "after", 0)}
    assert store.check().ok
