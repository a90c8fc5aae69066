"""A wakeup that only reschedules jobs moves them: their records stay as they are, their
index entries go to their new run times, and move entries say where they went (see
lmdbstore/table.py). Every read sees a moved job at its new run time, exactly; every
other write folds the move into the job's record."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, tzinfo
from typing import Any

import jobfuncs
import lmdb
import pytest
from apscheduler.job import Job
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_RUNNING, STATE_STOPPED
from conftest import localize

from lmdbstore import FORMAT_VERSION, LMDBJobStore, table
from lmdbstore.inspection import read_job, read_jobs, read_quarantined
from lmdbstore.keys import encode_job_id, encode_run_time, index_key
from lmdbstore.records import encode_move, record_run_key, record_stamp

MakeJob = Callable[..., Job]
DUE_AT = datetime(2030, 1, 1, 9)
NOW = datetime(2030, 1, 1, 12)
LATER = datetime(2030, 1, 5, 9)
MOVED = [f"job-{number}" for number in range(5)]


def wakeup(
    store: LMDBJobStore, scheduler: BackgroundScheduler, now: datetime, shift: timedelta
) -> list[Job]:
    """Do what a scheduler wakeup does with the due jobs at ``now``: reschedule each
    ``shift`` later, then ask for the next run time; return the jobs it was handed."""
    scheduler.state = STATE_RUNNING
    try:
        with scheduler._jobstores_lock:
            jobs = store.get_due_jobs(now)
            for job in jobs:
                job._modify(next_run_time=job.next_run_time + shift)
                store.update_job(job)
            store.get_next_run_time()
    finally:
        scheduler.state = STATE_STOPPED
    return jobs


def contents(store: LMDBJobStore, db: str) -> dict[bytes, bytes]:
    env = store.environment
    with env.env.begin() as txn, txn.cursor(db=getattr(env, db)) as cursor:
        return dict(cursor)


@pytest.fixture
def at(timezone: tzinfo) -> Callable[[datetime], datetime]:
    return lambda naive: localize(timezone, naive)


@pytest.fixture
def moved_store(
    lmdb_store: LMDBJobStore,
    make_job: MakeJob,
    scheduler: BackgroundScheduler,
    at: Callable[[datetime], datetime],
) -> LMDBJobStore:
    """A store whose jobs MOVED were due at DUE_AT and were moved a day later by a
    wakeup; its job "later" runs at LATER."""
    lmdb_store.add_jobs([make_job(job_id, DUE_AT) for job_id in MOVED])
    lmdb_store.add_job(make_job("later", LATER))
    assert len(wakeup(lmdb_store, scheduler, at(NOW), timedelta(days=1))) == len(MOVED)
    return lmdb_store


def moved_time(at: Callable[[datetime], datetime]) -> datetime:
    return at(DUE_AT) + timedelta(days=1)


def test_a_wakeup_that_only_reschedules_jobs_leaves_their_records_as_they_are(
    lmdb_store: LMDBJobStore,
    make_job: MakeJob,
    scheduler: BackgroundScheduler,
    at: Callable[[datetime], datetime],
) -> None:
    lmdb_store.add_jobs([make_job(job_id, DUE_AT) for job_id in MOVED])
    lmdb_store.add_job(make_job("later", LATER))
    records = contents(lmdb_store, "jobs")

    wakeup(lmdb_store, scheduler, at(NOW), timedelta(days=1))

    assert contents(lmdb_store, "jobs") == records
    assert len(contents(lmdb_store, "moves")) == len(MOVED)
    moved_key = encode_run_time(moved_time(at))
    assert sorted(contents(lmdb_store, "index")) == sorted(
        [index_key(moved_key, encode_job_id(job_id)) for job_id in MOVED]
        + [index_key(encode_run_time(at(LATER)), b"later")]
    )
    assert lmdb_store.check().ok


@pytest.mark.parametrize("reader", ["same store", "fresh store"])
def test_every_read_sees_a_moved_job_at_its_new_run_time_exactly(
    moved_store: LMDBJobStore,
    scheduler: BackgroundScheduler,
    at: Callable[[datetime], datetime],
    reader: str,
) -> None:
    store = moved_store
    if reader == "fresh store":  # nothing decoded yet: every job read from its record
        store = LMDBJobStore(moved_store.path)
        store.start(scheduler, "fresh")
    expected = moved_time(at)

    looked_up = store.lookup_job("job-3")
    due = store.get_due_jobs(expected)
    everything = store.get_all_jobs()

    assert looked_up is not None
    for job in [looked_up, *due]:
        assert job.next_run_time == expected
        assert job.next_run_time.utcoffset() == expected.utcoffset()
        assert str(job.next_run_time.tzinfo) == str(expected.tzinfo)
    assert [job.id for job in due] == MOVED
    assert [(job.id, job.next_run_time) for job in everything] == [
        *((job_id, expected) for job_id in MOVED),
        ("later", at(LATER)),
    ]
    assert store.get_next_run_time() == expected
    if store is not moved_store:
        store.shutdown()


def test_moving_again_keeps_one_move_entry_per_job_and_the_records_unchanged(
    moved_store: LMDBJobStore,
    scheduler: BackgroundScheduler,
    at: Callable[[datetime], datetime],
) -> None:
    records = contents(moved_store, "jobs")

    wakeup(moved_store, scheduler, moved_time(at), timedelta(hours=2))

    assert contents(moved_store, "jobs") == records
    assert len(contents(moved_store, "moves")) == len(MOVED)
    job = moved_store.lookup_job("job-0")
    assert job is not None and job.next_run_time == moved_time(at) + timedelta(hours=2)
    assert moved_store.check().ok


def _rename(store: LMDBJobStore, at: Callable[[datetime], datetime]) -> None:
    job = store.lookup_job("job-0")
    assert job is not None
    job._modify(name="renamed")
    store.update_job(job)


def _reschedule_alone(store: LMDBJobStore, at: Callable[[datetime], datetime]) -> None:
    job = store.lookup_job("job-0")
    assert job is not None
    job._modify(next_run_time=at(LATER))
    store.update_job(job)


WRITES: dict[str, Callable[[LMDBJobStore, Callable[[datetime], datetime]], None]] = {
    "update_job with a change": _rename,
    "update_job of the run time alone, outside a wakeup": _reschedule_alone,
    "set_next_run_time": lambda store, at: store.set_next_run_time("job-0", at(LATER)),
    "pause (set_next_run_time None)": lambda store, at: store.set_next_run_time("job-0", None),
    "remove_job": lambda store, at: store.remove_job("job-0"),
    "remove_all_jobs": lambda store, at: store.remove_all_jobs(),
}


@pytest.mark.parametrize("write", list(WRITES))
def test_every_other_write_to_a_moved_job_folds_its_move_into_its_record(
    moved_store: LMDBJobStore, at: Callable[[datetime], datetime], write: str
) -> None:
    untouched = {job.id: job.next_run_time for job in moved_store.get_all_jobs()}
    untouched.pop("job-0")
    record_key = index_key(encode_run_time(at(DUE_AT)), b"job-0")

    WRITES[write](moved_store, at)

    assert record_key not in contents(moved_store, "moves")
    assert moved_store.check().ok
    if write == "remove_all_jobs":
        assert contents(moved_store, "moves") == {}
        return
    after = {job.id: job.next_run_time for job in moved_store.get_all_jobs()}
    assert {job_id: after[job_id] for job_id in untouched} == untouched
    job = moved_store.lookup_job("job-0")
    if write == "remove_job":
        assert job is None
    elif write == "update_job with a change":
        assert job is not None and (job.name, job.next_run_time) == ("renamed", moved_time(at))
    else:
        expected = None if write.startswith("pause") else at(LATER)
        assert job is not None and job.next_run_time == expected


def test_a_job_moved_back_to_its_records_run_time_is_rewritten_not_moved(
    moved_store: LMDBJobStore,
    scheduler: BackgroundScheduler,
    at: Callable[[datetime], datetime],
) -> None:
    record_before = contents(moved_store, "jobs")[b"job-0"]

    wakeup(moved_store, scheduler, moved_time(at), -timedelta(days=1))

    assert contents(moved_store, "moves") == {}
    record = contents(moved_store, "jobs")[b"job-0"]
    assert record != record_before  # a new stamp
    assert table.run_key_of(record, b"") == encode_run_time(at(DUE_AT))
    job = moved_store.lookup_job("job-0")
    assert job is not None and job.next_run_time == at(DUE_AT)
    assert moved_store.check().ok


def test_a_wakeup_leaves_alone_a_job_another_writer_moved_since_it_read_it(
    lmdb_store: LMDBJobStore,
    make_job: MakeJob,
    scheduler: BackgroundScheduler,
    at: Callable[[datetime], datetime],
) -> None:
    lmdb_store.add_jobs([make_job(job_id, DUE_AT) for job_id in MOVED])
    elsewhere = at(LATER)
    env = lmdb_store.environment
    scheduler.state = STATE_RUNNING
    try:
        with scheduler._jobstores_lock:
            jobs = lmdb_store.get_due_jobs(at(NOW))
            with env.env.begin(write=True) as txn:  # as another process's wakeup would
                record, move = table.current(txn, env, b"job-0")
                home, stamp = record_run_key(record), record_stamp(record)
                table.move(txn, env, b"job-0", stamp, home, move, encode_move(elsewhere))
            for job in jobs:
                job._modify(next_run_time=job.next_run_time + timedelta(days=1))
                lmdb_store.update_job(job)
            lmdb_store.get_next_run_time()
    finally:
        scheduler.state = STATE_STOPPED

    times = {job.id: job.next_run_time for job in lmdb_store.get_all_jobs()}
    assert times.pop("job-0") == elsewhere
    assert set(times.values()) == {moved_time(at)}
    assert lmdb_store.check().ok


def test_a_lookup_sees_a_move_another_writer_made_since_the_last_lookup(
    moved_store: LMDBJobStore, at: Callable[[datetime], datetime]
) -> None:
    """The job's record is the same: only its move changed."""
    before = moved_store.lookup_job("job-3")
    assert before is not None and before.next_run_time == moved_time(at)
    env = moved_store.environment
    elsewhere = at(LATER) + timedelta(days=1)
    with env.env.begin(write=True) as txn:  # as another process's wakeup would
        record, move = table.current(txn, env, b"job-3")
        home, stamp = record_run_key(record), record_stamp(record)
        table.move(txn, env, b"job-3", stamp, home, move, encode_move(elsewhere))

    after = moved_store.lookup_job("job-3")

    assert after is not None and after.next_run_time == elsewhere


def raw_write(store: LMDBJobStore, change: Callable[[Any, Any], object]) -> None:
    """Change the store's LMDB environment past the store (to damage it)."""
    env = store.environment
    with env.env.begin(write=True) as txn:
        change(txn, env)


def record_key(job_id: str, at: Callable[[datetime], datetime]) -> bytes:
    """The key of the move entry of a job of ``moved_store``."""
    return index_key(encode_run_time(at(DUE_AT)), job_id.encode())


DAMAGES: dict[str, tuple[Callable[[Any, Any, Callable[[datetime], datetime]], object], str]] = {
    "a move entry lost": (
        lambda txn, env, at: txn.delete(record_key("job-0", at), db=env.moves),
        "disagrees with its job's run time",
    ),
    "a move entry of no job": (
        lambda txn, env, at: txn.put(
            record_key("ghost", at), encode_move(at(LATER)), db=env.moves
        ),
        "names no job's record",
    ),
    "an index entry naming another version of its record": (
        lambda txn, env, at: txn.put(
            index_key(encode_run_time(at(LATER)), b"later"), b"\x00" * 8, db=env.index
        ),
        "disagrees with its job's record",
    ),
    "a move entry damaged": (
        lambda txn, env, at: txn.put(record_key("job-0", at), b"\x01\x02", db=env.moves),
        "is damaged",
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_check_finds_a_damaged_move_or_index_value_and_repair_mends_it(
    moved_store: LMDBJobStore, at: Callable[[datetime], datetime], damage: str
) -> None:
    change, problem = DAMAGES[damage]
    raw_write(moved_store, lambda txn, env: change(txn, env, at))

    report = moved_store.check()
    repaired = moved_store.check(repair=True)

    assert any(problem in found for found in report.problems), report.problems
    assert repaired.repaired
    assert moved_store.check().ok
    assert contents(moved_store, "moves") == {}
    times = {job.id: job.next_run_time for job in moved_store.get_all_jobs()}
    assert times.pop("later") == at(LATER)
    job_0_kept_its_move = damage.startswith(("a move entry of no job", "an index entry"))
    assert times.pop("job-0") == (moved_time(at) if job_0_kept_its_move else at(DUE_AT))
    assert set(times.values()) == {moved_time(at)}


def test_a_format_2_store_is_read_as_it_is_and_upgraded_when_opened_for_writing(
    lmdb_store: LMDBJobStore,
    make_job: MakeJob,
    scheduler: BackgroundScheduler,
    at: Callable[[datetime], datetime],
) -> None:
    lmdb_store.add_jobs([make_job(job_id, DUE_AT) for job_id in MOVED])
    path = lmdb_store.path
    lmdb_store.shutdown()
    env = lmdb.open(path, max_dbs=8)
    with env.begin(write=True) as txn:  # as lmdbstore 0.1.0 wrote it: no moves, no values
        txn.drop(env.open_db(b"moves", txn=txn), delete=True)
        index = env.open_db(b"index", txn=txn)
        for key in list(txn.cursor(db=index).iternext(values=False)):
            txn.put(key, b"", db=index)
        txn.put(b"format", b"2", db=env.open_db(b"meta", txn=txn))
    env.close()

    reader = LMDBJobStore(path, readonly=True)
    reader.start(scheduler, "reader")
    assert reader.environment.format_version == 2
    assert [job.id for job in reader.get_due_jobs(at(NOW))] == MOVED
    reader.shutdown()
    writer = LMDBJobStore(path)
    writer.start(scheduler, "writer")
    assert writer.environment.format_version == FORMAT_VERSION
    assert all(contents(writer, "index").values())
    wakeup(writer, scheduler, at(NOW), timedelta(days=1))
    assert {job.next_run_time for job in writer.get_all_jobs()} == {moved_time(at)}
    assert writer.check().ok
    writer.shutdown()


def test_a_moved_job_that_cannot_be_restored_is_quarantined_with_its_new_run_time(
    lmdb_store: LMDBJobStore,
    make_job: MakeJob,
    scheduler: BackgroundScheduler,
    at: Callable[[datetime], datetime],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lmdb_store.add_job(make_job("lost", DUE_AT, func=jobfuncs.vanishing_job))
    wakeup(lmdb_store, scheduler, at(NOW), timedelta(days=1))
    lmdb_store.shutdown()
    monkeypatch.delattr(jobfuncs, "vanishing_job")
    store = LMDBJobStore(lmdb_store.path)
    store.start(scheduler, "store")

    assert store.get_all_jobs() == []

    [quarantined] = read_quarantined(store)
    assert quarantined.next_run_time == moved_time(at)
    assert contents(store, "moves") == {}
    monkeypatch.setattr(jobfuncs, "vanishing_job", lambda: None, raising=False)
    restored = store.restore_quarantined_job("lost")
    assert restored.next_run_time == moved_time(at)
    store.shutdown()


def test_the_tools_show_a_moved_job_at_its_new_run_time(
    moved_store: LMDBJobStore, at: Callable[[datetime], datetime]
) -> None:
    shown = read_job(moved_store, "job-2")
    listed = {job.job_id: job for job in read_jobs(moved_store)}

    for job in (shown, listed["job-2"]):
        assert job is not None and job.state is not None
        assert job.next_run_time == moved_time(at)
        assert job.state["next_run_time"] == moved_time(at)
