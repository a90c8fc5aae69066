"""What is LMDBJobStore's own, beyond the job store contract: its options, its files, its
ids, its quarantine, its map, its bulk and partial writes, its serializers, its check."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import resource
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, tzinfo
from datetime import timezone as fixed_timezone
from pathlib import Path
from typing import Any

import jobfuncs
import pytest
from apscheduler.job import Job
from apscheduler.jobstores.base import ConflictingIdError, JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from conftest import dummy_job, localize

from lmdbstore import (
    FORMAT_VERSION,
    JobSerializationError,
    LMDBJobStore,
    NewerFormatError,
    QuarantineLookupError,
    SerializerMismatchError,
    StorePathError,
)
from lmdbstore.keys import encode_job_id, encode_run_time, index_key, job_key
from lmdbstore.records import JobRecord

MakeJob = Callable[..., Job]
OpenStore = Callable[..., LMDBJobStore]

MIB = 1024 * 1024
MORNING = datetime(2024, 7, 1, 9)
NOON = datetime(2024, 7, 1, 12)
EVENING = datetime(2024, 7, 1, 18)
FAR_FUTURE = datetime(2999, 1, 1)
LONG_ID = "long-" + "x" * 100_000


@pytest.fixture
def open_store() -> Iterator[OpenStore]:
    """Open more stores (not started); every one is shut down after the test."""
    opened: list[LMDBJobStore] = []

    def open_(path: str | os.PathLike[str], **options: Any) -> LMDBJobStore:
        store = LMDBJobStore(path, **options)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.shutdown()


@pytest.fixture
def filled_store(lmdb_store: LMDBJobStore, make_job: MakeJob) -> LMDBJobStore:
    """The store holding three jobs: one in the morning, one at noon, one paused."""
    lmdb_store.add_jobs(
        [make_job("morning", MORNING), make_job("noon", NOON), make_job("paused", None)]
    )
    return lmdb_store


def contents(store: LMDBJobStore) -> list[tuple[str, str, str | None]]:
    """What a store holds, to compare before and after a call that must change nothing."""
    return [
        (job.id, job.name, job.next_run_time and job.next_run_time.isoformat())
        for job in store.get_all_jobs()
    ]


def ids(jobs: list[Job]) -> list[str]:
    return [job.id for job in jobs]


def with_id(job: Job, job_id: Any) -> Job:
    """``job`` with an id that ``Job`` itself would refuse or replace (not a str, empty)."""
    job.id = job_id
    return job


def files_in(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in directory.iterdir()}


@contextmanager
def raw_write(store: LMDBJobStore) -> Iterator[Any]:
    """A write transaction on the store's LMDB environment, past the store: to damage it."""
    with store.environment.env.begin(write=True) as txn:
        yield txn


def index_entry(run_time: datetime | None, job_id: str) -> bytes:
    return index_key(encode_run_time(run_time), encode_job_id(job_id))


# -- constructor -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "parameter"),
    [
        ({"path": ""}, "path"),
        ({"path": b"jobs.lmdb"}, "path"),
        ({"map_size": 0}, "map_size"),
        ({"map_size": MIB - 1}, "map_size"),
        ({"map_size": "64MB"}, "map_size"),
        ({"map_size": float(64 * MIB)}, "map_size"),
        ({"durability": "fast"}, "durability"),
        ({"durability": None}, "durability"),
        ({"serializer": "json"}, "serializer"),
        ({"serializer": None}, "serializer"),
        ({"readonly": "no"}, "readonly"),
        ({"readonly": 1}, "readonly"),
        ({"pickle_protocol": 99}, "pickle_protocol"),
        ({"pickle_protocol": "5"}, "pickle_protocol"),
        ({"pickle_protocol": True}, "pickle_protocol"),
        ({"cache_size": -1}, "cache_size"),
        ({"cache_size": "10"}, "cache_size"),
        ({"group_commit": "yes"}, "group_commit"),
        ({"lease": 0}, "lease"),
        ({"lease": "30"}, "lease"),
        ({"lease": True}, "lease"),
        ({"lease": float("nan")}, "lease"),
        ({"lease": float("inf")}, "lease"),
        ({"lease": 86_401}, "lease"),
        ({"watch_changes": "yes"}, "watch_changes"),
    ],
    ids=repr,
)
def test_a_bad_constructor_argument_is_refused_naming_the_parameter(
    filled_store: LMDBJobStore, tmp_path: Path, options: dict[str, Any], parameter: str
) -> None:
    before = contents(filled_store)
    files = sorted(tmp_path.iterdir())

    with pytest.raises(ValueError, match=f'The "{parameter}" parameter must be'):
        LMDBJobStore(**{"path": filled_store.path, **options})

    assert contents(filled_store) == before
    assert sorted(tmp_path.iterdir()) == files


def test_a_negative_pickle_protocol_picks_the_highest_as_pickle_does(
    tmp_path: Path, make_job: Callable[..., Job]
) -> None:
    store = LMDBJobStore(tmp_path / "jobs.lmdb", pickle_protocol=-1)
    store.add_job(make_job("job", args=(1, "a")))

    job = store.lookup_job("job")

    assert job is not None and job.args == (1, "a")


def test_repr_shows_the_class_and_the_path(lmdb_store: LMDBJobStore, tmp_path: Path) -> None:
    assert repr(lmdb_store) == f"<LMDBJobStore (path={str(tmp_path / 'jobs.lmdb')!r})>"


# -- plugin alias and start ------------------------------------------------------------------


def add_a_job_through(scheduler: BackgroundScheduler) -> None:
    """Start ``scheduler`` paused, add a job through it, and shut it down."""
    scheduler.start(paused=True)
    try:
        scheduler.add_job(dummy_job, "date", run_date=FAR_FUTURE, id="through-scheduler")
    finally:
        scheduler.shutdown(wait=False)


def test_the_plugin_alias_lmdb_works_through_add_jobstore(
    tmp_path: Path, timezone: tzinfo, open_store: OpenStore
) -> None:
    scheduler = BackgroundScheduler(timezone=timezone)
    scheduler.add_jobstore("lmdb", "default", path=str(tmp_path / "jobs.lmdb"))

    add_a_job_through(scheduler)

    job = open_store(tmp_path / "jobs.lmdb").lookup_job("through-scheduler")
    assert job.next_run_time == localize(timezone, FAR_FUTURE)


def test_the_plugin_alias_lmdb_works_through_the_configuration_dict(
    tmp_path: Path, timezone: tzinfo, open_store: OpenStore
) -> None:
    scheduler = BackgroundScheduler(
        {
            "apscheduler.jobstores.default": {"type": "lmdb", "path": str(tmp_path / "jobs")},
            "apscheduler.timezone": timezone,
        }
    )

    add_a_job_through(scheduler)

    job = open_store(tmp_path / "jobs").lookup_job("through-scheduler")
    assert job.next_run_time == localize(timezone, FAR_FUTURE)


def test_a_store_can_be_started_without_a_scheduler(
    tmp_path: Path, open_store: OpenStore, make_job: MakeJob
) -> None:
    store = open_store(tmp_path / "jobs.lmdb")

    store.start(None, "alias")
    store.add_job(make_job("job", NOON))

    job = store.lookup_job("job")
    assert (job._scheduler, job._jobstore_alias) == (None, "alias")


# -- persistence and sharing -----------------------------------------------------------------


def test_jobs_survive_shutdown_and_reopening_the_path(
    lmdb_store: LMDBJobStore, make_job: MakeJob, open_store: OpenStore, timezone: tzinfo
) -> None:
    lmdb_store.add_jobs(
        [
            make_job("evening", EVENING, name="Evening job", args=(1, "two")),
            make_job("paused", None),
            make_job("morning", MORNING),
        ]
    )
    environment = lmdb_store.environment
    lmdb_store.shutdown()

    reopened = open_store(lmdb_store.path)

    assert reopened.environment is not environment
    jobs = reopened.get_all_jobs()
    assert [(job.id, job.next_run_time) for job in jobs] == [
        ("morning", localize(timezone, MORNING)),
        ("evening", localize(timezone, EVENING)),
        ("paused", None),
    ]
    assert (jobs[1].name, jobs[1].args) == ("Evening job", (1, "two"))
    assert reopened.get_next_run_time() == localize(timezone, MORNING)


def test_two_stores_on_one_path_share_one_environment_and_see_each_others_writes(
    lmdb_store: LMDBJobStore, make_job: MakeJob, open_store: OpenStore
) -> None:
    other = open_store(lmdb_store.path)

    lmdb_store.add_job(make_job("from-first", NOON))
    other.add_job(make_job("from-other", MORNING))
    other.update_job(make_job("from-first", EVENING, name="changed by the other"))

    assert other.environment is lmdb_store.environment
    assert ids(lmdb_store.get_all_jobs()) == ids(other.get_all_jobs())
    assert ids(other.get_all_jobs()) == ["from-other", "from-first"]
    assert lmdb_store.lookup_job("from-first").name == "changed by the other"


def test_a_store_stays_usable_when_another_on_its_path_shuts_down(
    lmdb_store: LMDBJobStore, make_job: MakeJob, open_store: OpenStore
) -> None:
    open_store(lmdb_store.path).shutdown()

    lmdb_store.add_job(make_job("after", NOON))

    assert ids(lmdb_store.get_all_jobs()) == ["after"]


def test_opening_an_open_path_with_another_durability_is_refused(
    filled_store: LMDBJobStore, make_job: MakeJob
) -> None:
    before = contents(filled_store)

    with pytest.raises(ValueError, match="durability='full', not 'relaxed'"):
        LMDBJobStore(filled_store.path, durability="relaxed")

    assert contents(filled_store) == before
    filled_store.add_job(make_job("still-writable", EVENING))


# -- ids -------------------------------------------------------------------------------------


def test_a_100_kb_id_can_be_added_looked_up_updated_and_removed(
    lmdb_store: LMDBJobStore, make_job: MakeJob
) -> None:
    lmdb_store.add_job(make_job(LONG_ID, NOON))
    assert lmdb_store.lookup_job(LONG_ID).id == LONG_ID

    lmdb_store.update_job(make_job(LONG_ID, None, name="paused"))
    assert lmdb_store.lookup_job(LONG_ID).name == "paused"
    assert lmdb_store.get_next_run_time() is None

    lmdb_store.remove_job(LONG_ID)
    assert lmdb_store.lookup_job(LONG_ID) is None
    assert lmdb_store.check().ok


def test_long_ids_that_differ_only_at_their_end_are_distinct_jobs(
    lmdb_store: LMDBJobStore, make_job: MakeJob
) -> None:
    lmdb_store.add_jobs([make_job(LONG_ID + "-b", NOON), make_job(LONG_ID + "-a", NOON)])

    lmdb_store.remove_job(LONG_ID + "-b")

    assert ids(lmdb_store.get_all_jobs()) == [LONG_ID + "-a"]
    assert lmdb_store.lookup_job(LONG_ID + "-b") is None


UNICODE_IDS = ["", "\ud800", "\udfff-lone-low", "⏰ 🗓 weekly", "é", "\x00", "z"]


@pytest.mark.parametrize("job_id", UNICODE_IDS, ids=ascii)
def test_any_unicode_id_can_be_added_looked_up_updated_and_removed(
    lmdb_store: LMDBJobStore, make_job: MakeJob, job_id: str
) -> None:
    lmdb_store.add_job(with_id(make_job("placeholder", NOON), job_id))
    assert lmdb_store.lookup_job(job_id).id == job_id

    lmdb_store.update_job(with_id(make_job("placeholder", None, name="paused"), job_id))
    assert lmdb_store.lookup_job(job_id).name == "paused"

    lmdb_store.remove_job(job_id)
    assert lmdb_store.lookup_job(job_id) is None
    assert lmdb_store.check().ok


def test_jobs_with_equal_run_times_are_ordered_by_unicode_id(
    lmdb_store: LMDBJobStore, make_job: MakeJob
) -> None:
    lmdb_store.add_jobs([with_id(make_job("placeholder", NOON), i) for i in UNICODE_IDS])

    assert ids(lmdb_store.get_all_jobs()) == sorted(UNICODE_IDS)


@pytest.mark.parametrize(
    "call",
    [
        lambda store, job: store.lookup_job(42),
        lambda store, job: store.remove_job(42),
        lambda store, job: store.set_next_run_time(42, None),
        lambda store, job: store.add_job(with_id(job, 42)),
        lambda store, job: store.update_job(with_id(job, 42)),
    ],
    ids=["lookup_job", "remove_job", "set_next_run_time", "add_job", "update_job"],
)
def test_an_id_that_is_not_a_str_is_refused_naming_it(
    filled_store: LMDBJobStore,
    make_job: MakeJob,
    call: Callable[[LMDBJobStore, Job], object],
) -> None:
    before = contents(filled_store)

    with pytest.raises(TypeError, match="job id must be a str, not int: 42"):
        call(filled_store, make_job("placeholder", MORNING))

    assert contents(filled_store) == before


def naive(job: Job) -> Job:
    job.next_run_time = datetime(2024, 7, 1, 6)
    return job


@pytest.mark.parametrize(
    "call",
    [
        lambda store, job: store.add_job(job),
        lambda store, job: store.add_jobs([job]),
        lambda store, job: store.update_job(job),
    ],
    ids=["add_job", "add_jobs", "update_job"],
)
def test_a_naive_next_run_time_is_refused_naming_the_job(
    filled_store: LMDBJobStore,
    make_job: MakeJob,
    call: Callable[[LMDBJobStore, Job], object],
) -> None:
    before = contents(filled_store)

    with pytest.raises(ValueError, match="job 'noon' has a naive next_run_time"):
        call(filled_store, naive(make_job("noon", NOON, name="naive")))

    assert contents(filled_store) == before


def test_set_next_run_time_refuses_a_naive_run_time(filled_store: LMDBJobStore) -> None:
    before = contents(filled_store)

    with pytest.raises(ValueError, match="naive"):
        filled_store.set_next_run_time("noon", datetime(2024, 7, 1, 6))

    assert contents(filled_store) == before


# -- jobs that fail to load ------------------------------------------------------------------


@pytest.fixture
def lost_function_store(
    lmdb_store: LMDBJobStore,
    make_job: MakeJob,
    open_store: OpenStore,
    monkeypatch: pytest.MonkeyPatch,
    scheduler: BackgroundScheduler,
) -> LMDBJobStore:
    """The store opened anew (as after a deploy) holding three jobs, the earliest of which,
    "lost", runs a function since deleted from its module."""
    lmdb_store.add_jobs(
        [
            make_job("lost", MORNING, func=jobfuncs.vanishing_job),
            make_job("kept-1", NOON),
            make_job("kept-2", EVENING),
        ]
    )
    lmdb_store.shutdown()
    monkeypatch.delattr(jobfuncs, "vanishing_job")
    store = open_store(lmdb_store.path)
    store.start(scheduler, "store")
    return store


def read_all(store: LMDBJobStore, timezone: tzinfo) -> list[Job]:
    return store.get_all_jobs()


def read_due(store: LMDBJobStore, timezone: tzinfo) -> list[Job]:
    return store.get_due_jobs(localize(timezone, EVENING))


def read_lost(store: LMDBJobStore, timezone: tzinfo) -> list[Job]:
    job = store.lookup_job("lost")
    return [] if job is None else [job]


@pytest.mark.parametrize(
    ("read", "returned"),
    [
        (read_all, ["kept-1", "kept-2"]),
        (read_due, ["kept-1", "kept-2"]),
        (read_lost, []),
    ],
    ids=["get_all_jobs", "get_due_jobs", "lookup_job"],
)
def test_a_job_that_fails_to_load_is_skipped_logged_and_quarantined(
    lost_function_store: LMDBJobStore,
    caplog: pytest.LogCaptureFixture,
    timezone: tzinfo,
    read: Callable[[LMDBJobStore, tzinfo], list[Job]],
    returned: list[str],
) -> None:
    before = datetime.now(fixed_timezone.utc)

    with caplog.at_level(logging.WARNING):
        assert ids(read(lost_function_store, timezone)) == returned

    after = datetime.now(fixed_timezone.utc)
    assert 'Unable to restore job "lost"' in caplog.text
    [entry] = lost_function_store.get_quarantined_jobs()
    assert entry.job_id == "lost"
    assert "jobfuncs:vanishing_job" in entry.error
    assert before <= entry.quarantined_at <= after
    assert lost_function_store.get_next_run_time() == localize(timezone, NOON)
    report = lost_function_store.check()
    assert report.ok
    assert (report.jobs, report.quarantined) == (2, 1)


def test_a_job_whose_function_was_deleted_is_skipped_by_the_store_that_added_it(
    lmdb_store: LMDBJobStore, make_job: MakeJob, monkeypatch: pytest.MonkeyPatch
) -> None:
    """APScheduler's own ``test_one_job_fails_to_load``, in one store and one process."""
    lmdb_store.add_job(make_job("kept-1", NOON))
    lmdb_store.add_job(make_job("lost", MORNING, func=jobfuncs.vanishing_job))
    lmdb_store.add_job(make_job("kept-2", EVENING))
    monkeypatch.delattr(jobfuncs, "vanishing_job")

    assert ids(lmdb_store.get_all_jobs()) == ["kept-1", "kept-2"]
    assert [entry.job_id for entry in lmdb_store.get_quarantined_jobs()] == ["lost"]


def test_a_quarantined_job_is_restored_once_its_function_exists_again(
    lost_function_store: LMDBJobStore, monkeypatch: pytest.MonkeyPatch, timezone: tzinfo
) -> None:
    lost_function_store.get_all_jobs()
    monkeypatch.undo()

    restored = lost_function_store.restore_quarantined_job("lost")

    assert (restored.id, restored.func) == ("lost", jobfuncs.vanishing_job)
    assert restored.next_run_time == localize(timezone, MORNING)
    assert ids(lost_function_store.get_all_jobs()) == ["lost", "kept-1", "kept-2"]
    assert lost_function_store.get_quarantined_jobs() == []
    assert lost_function_store.check().ok


def test_restoring_a_job_whose_function_is_still_missing_fails_and_keeps_it_quarantined(
    lost_function_store: LMDBJobStore,
) -> None:
    lost_function_store.get_all_jobs()

    with pytest.raises(LookupError, match="jobfuncs:vanishing_job"):
        lost_function_store.restore_quarantined_job("lost")

    assert [entry.job_id for entry in lost_function_store.get_quarantined_jobs()] == ["lost"]
    assert ids(lost_function_store.get_all_jobs()) == ["kept-1", "kept-2"]
    assert lost_function_store.check().ok


def test_purging_a_quarantined_job_deletes_it(
    lost_function_store: LMDBJobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    lost_function_store.get_all_jobs()

    lost_function_store.purge_quarantined_job("lost")

    monkeypatch.undo()
    assert lost_function_store.get_quarantined_jobs() == []
    assert ids(lost_function_store.get_all_jobs()) == ["kept-1", "kept-2"]
    with pytest.raises(QuarantineLookupError, match="no quarantined job has the id 'lost'"):
        lost_function_store.restore_quarantined_job("lost")


@pytest.mark.parametrize(
    "call",
    [
        lambda store: store.restore_quarantined_job("missing"),
        lambda store: store.purge_quarantined_job("missing"),
    ],
    ids=["restore", "purge"],
)
def test_a_missing_quarantined_id_raises_quarantine_lookup_error(
    lost_function_store: LMDBJobStore, call: Callable[[LMDBJobStore], object]
) -> None:
    lost_function_store.get_all_jobs()

    with pytest.raises(QuarantineLookupError, match="no quarantined job has the id 'missing'"):
        call(lost_function_store)

    assert [entry.job_id for entry in lost_function_store.get_quarantined_jobs()] == ["lost"]
    assert ids(lost_function_store.get_all_jobs()) == ["kept-1", "kept-2"]


def test_restoring_onto_an_id_added_again_is_refused_and_keeps_both(
    lost_function_store: LMDBJobStore,
    make_job: MakeJob,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lost_function_store.get_all_jobs()
    lost_function_store.add_job(make_job("lost", EVENING, name="added again"))
    monkeypatch.undo()

    with pytest.raises(ConflictingIdError, match=r"Job identifier \(lost\) conflicts"):
        lost_function_store.restore_quarantined_job("lost")

    assert lost_function_store.lookup_job("lost").name == "added again"
    assert [entry.job_id for entry in lost_function_store.get_quarantined_jobs()] == ["lost"]
    assert lost_function_store.check().ok


def garbage(record: bytes) -> bytes:
    return b"not a job record"


def truncated(record: bytes) -> bytes:
    return record[:20]


def flipped_last_byte(record: bytes) -> bytes:
    return record[:-1] + bytes([record[-1] ^ 0xFF])


def unpicklable_body(record: bytes) -> bytes:
    return JobRecord.decode(record)._replace(body=b"not a pickle").encode()


@pytest.mark.parametrize("damage", [garbage, truncated, flipped_last_byte, unpicklable_body])
def test_a_record_with_damaged_bytes_is_quarantined_not_a_crash(
    filled_store: LMDBJobStore,
    open_store: OpenStore,
    scheduler: BackgroundScheduler,
    timezone: tzinfo,
    damage: Callable[[bytes], bytes],
) -> None:
    key, jobs = job_key(encode_job_id("morning")), filled_store.environment.jobs
    with raw_write(filled_store) as txn:
        txn.put(key, damage(txn.get(key, db=jobs)), db=jobs)
    reader = open_store(filled_store.path)  # a cache of its own: it reads the record
    reader.start(scheduler, "store")

    assert ids(reader.get_all_jobs()) == ["noon", "paused"]

    [entry] = reader.get_quarantined_jobs()
    assert entry.job_id == "morning"
    assert reader.get_next_run_time() == localize(timezone, NOON)
    assert reader.check().ok


def test_garbage_written_under_a_store_is_quarantined_by_that_store(
    filled_store: LMDBJobStore,
) -> None:
    key, jobs = job_key(encode_job_id("morning")), filled_store.environment.jobs
    with raw_write(filled_store) as txn:
        txn.put(key, b"not a job record", db=jobs)

    assert filled_store.lookup_job("morning") is None

    [entry] = filled_store.get_quarantined_jobs()
    assert (entry.job_id, entry.record) == ("morning", b"not a job record")
    assert "CorruptRecordError" in entry.error
    assert ids(filled_store.get_all_jobs()) == ["noon", "paused"]
    assert filled_store.check().ok


# -- map growth ------------------------------------------------------------------------------


@pytest.fixture
def small_store(tmp_path: Path, open_store: OpenStore) -> LMDBJobStore:
    """A store opened with the smallest map allowed: 1 MiB."""
    return open_store(tmp_path / "small.lmdb", map_size=MIB)


@pytest.mark.parametrize("timezone", ["zoneinfo"], indirect=True)
def test_a_1_mib_map_grows_to_take_5000_jobs(small_store: LMDBJobStore, make_job: MakeJob) -> None:
    job_ids = [f"job-{number:04}" for number in range(5000)]

    for number, job_id in enumerate(job_ids):
        small_store.add_job(make_job(job_id, NOON + timedelta(seconds=number)))

    assert ids(small_store.get_all_jobs()) == job_ids
    assert small_store.check().ok


@pytest.mark.parametrize("timezone", ["zoneinfo"], indirect=True)
def test_a_1_mib_map_grows_to_take_a_50_mb_job(
    small_store: LMDBJobStore, make_job: MakeJob
) -> None:
    small_store.add_job(make_job("small", NOON))

    small_store.add_job(make_job("big", MORNING, args=(bytes(50_000_000),)))

    assert len(small_store.lookup_job("big").args[0]) == 50_000_000
    assert ids(small_store.get_all_jobs()) == ["big", "small"]
    assert small_store.check().ok


def test_the_data_file_keeps_written_room_so_that_most_commits_do_not_lengthen_it(
    lmdb_store: LMDBJobStore, make_job: MakeJob
) -> None:
    """A durable commit that makes data.mdb longer costs the file system a journal commit
    more: the store keeps zeros written past the pages in use, and grows that room in
    steps, not at each commit."""
    data = Path(lmdb_store.path) / "data.mdb"
    lengths = []
    for number in range(300):
        lmdb_store.add_job(make_job(f"job-{number:03}", NOON, args=(bytes(2000),)))
        lengths.append(data.stat().st_size)

    assert lmdb_store.environment.figures().used < lengths[-1]
    assert len(set(lengths)) <= 300 // 20
    assert ids(lmdb_store.get_all_jobs()) == [f"job-{number:03}" for number in range(300)]
    assert lmdb_store.check().ok


def evict_from_page_cache(path: Path) -> None:
    """Have the operating system drop the clean pages of ``path`` that no process maps
    from its page cache, as it does under memory pressure or after a boot."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def major_page_faults() -> int:
    """Page faults of this process that had to wait for the disk."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_majflt


@pytest.mark.parametrize("timezone", ["zoneinfo"], indirect=True)
def test_a_read_of_every_job_takes_the_data_file_in_at_once_not_a_page_at_a_time(
    tmp_path: Path, open_store: OpenStore, make_job: MakeJob
) -> None:
    """The map reads a page it lacks when it is first touched, one disk read each (the
    store turns LMDB's readahead off, for a scheduler's random reads): a read of most of
    the store's jobs reads its file in first, with large sequential reads."""
    store = open_store(tmp_path / "jobs.lmdb", cache_size=0)  # every read decodes records
    job_ids = [f"job-{number:04}" for number in range(3000)]
    store.add_jobs(make_job(job_id, NOON, args=(bytes(500),)) for job_id in job_ids)
    data = Path(store.path) / "data.mdb"

    store.shutdown()
    evict_from_page_cache(data)
    before = major_page_faults()
    assert all(store.lookup_job(job_id) for job_id in job_ids)  # each a read of its own
    page_by_page = major_page_faults() - before
    if page_by_page < 100:
        pytest.skip(f"this file system keeps {data} in memory whatever the page cache drops")

    store.shutdown()
    evict_from_page_cache(data)
    before = major_page_faults()
    assert ids(store.get_all_jobs()) == job_ids
    assert major_page_faults() - before < page_by_page / 10


# -- add_jobs --------------------------------------------------------------------------------


def test_add_jobs_adds_every_job(lmdb_store: LMDBJobStore, make_job: MakeJob) -> None:
    lmdb_store.add_jobs([make_job("b", NOON), make_job("c", None), make_job("a", MORNING)])

    assert ids(lmdb_store.get_all_jobs()) == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("batch", "error", "message"),
    [
        (["new-1", "noon", "new-2"], ConflictingIdError, r"Job identifier \(noon\) conflicts"),
        (["new-1", "new-2", "new-1"], ConflictingIdError, r"Job identifier \(new-1\) conflicts"),
    ],
    ids=["id-already-stored", "id-twice-in-the-batch"],
)
def test_add_jobs_with_a_conflicting_id_writes_nothing(
    filled_store: LMDBJobStore,
    make_job: MakeJob,
    batch: list[str],
    error: type[Exception],
    message: str,
) -> None:
    before = contents(filled_store)

    with pytest.raises(error, match=message):
        filled_store.add_jobs([make_job(job_id, EVENING) for job_id in batch])

    assert contents(filled_store) == before


def test_add_jobs_with_a_job_that_cannot_be_serialized_writes_nothing(
    filled_store: LMDBJobStore, make_job: MakeJob
) -> None:
    before = contents(filled_store)
    batch = [make_job("new-1", EVENING), make_job("locked", EVENING, args=(threading.Lock(),))]

    with pytest.raises(JobSerializationError, match="job 'locked' cannot be serialized"):
        filled_store.add_jobs(batch)

    assert contents(filled_store) == before


# -- set_next_run_time -----------------------------------------------------------------------


def test_set_next_run_time_pauses_and_reschedules_a_job_it_cannot_restore(
    lost_function_store: LMDBJobStore, monkeypatch: pytest.MonkeyPatch, timezone: tzinfo
) -> None:
    lost_function_store.set_next_run_time("lost", None)
    assert lost_function_store.get_next_run_time() == localize(timezone, NOON)

    lost_function_store.set_next_run_time("lost", localize(timezone, EVENING + timedelta(1)))

    assert lost_function_store.get_quarantined_jobs() == []
    assert lost_function_store.check().ok
    monkeypatch.undo()
    assert ids(lost_function_store.get_all_jobs()) == ["kept-1", "kept-2", "lost"]
    rescheduled = lost_function_store.lookup_job("lost")
    assert rescheduled.next_run_time == localize(timezone, EVENING + timedelta(1))
    assert rescheduled.func is jobfuncs.vanishing_job


def test_set_next_run_time_of_a_missing_id_raises_job_lookup_error(
    filled_store: LMDBJobStore, timezone: tzinfo
) -> None:
    before = contents(filled_store)

    with pytest.raises(JobLookupError, match="No job by the id of missing was found"):
        filled_store.set_next_run_time("missing", localize(timezone, NOON))

    assert contents(filled_store) == before


# -- serializers -----------------------------------------------------------------------------


def test_cloudpickle_stores_a_lambda_job_and_restores_it(
    tmp_path: Path, open_store: OpenStore, make_job: MakeJob
) -> None:
    factor = 2
    store = open_store(tmp_path / "cloud.lmdb", serializer="cloudpickle")
    store.add_job(make_job("lambda", NOON, func=lambda: 21 * factor))
    store.shutdown()

    restored = open_store(tmp_path / "cloud.lmdb", serializer="cloudpickle").lookup_job("lambda")

    assert restored.func() == 42


def test_a_cloudpickle_store_opened_with_pickle_is_refused(
    tmp_path: Path, open_store: OpenStore, make_job: MakeJob
) -> None:
    path = tmp_path / "cloud.lmdb"
    store = open_store(path, serializer="cloudpickle")
    store.add_job(make_job("lambda", NOON, func=lambda: 42))
    store.shutdown()

    with pytest.raises(
        SerializerMismatchError,
        match="written with serializer 'cloudpickle', but is opened with serializer 'pickle'",
    ):
        LMDBJobStore(path)

    assert open_store(path, serializer="cloudpickle").lookup_job("lambda").func() == 42


# -- paths -----------------------------------------------------------------------------------


def test_a_regular_file_is_refused_as_a_store_path_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "jobs.lmdb"
    path.write_bytes(b"someone else's file")

    with pytest.raises(StorePathError, match=re.escape(f"{str(path)!r} is a file")):
        LMDBJobStore(path)

    assert files_in(tmp_path) == {"jobs.lmdb": b"someone else's file"}


def test_a_directory_of_other_files_is_refused_as_a_store_path_and_left_untouched(
    tmp_path: Path,
) -> None:
    (tmp_path / "notes.txt").write_text("someone else's notes")

    with pytest.raises(StorePathError, match=r"holds no data\.mdb"):
        LMDBJobStore(tmp_path)

    assert files_in(tmp_path) == {"notes.txt": b"someone else's notes"}


def test_a_store_of_a_newer_format_is_refused_naming_path_and_versions_and_left_unchanged(
    filled_store: LMDBJobStore,
) -> None:
    environment = filled_store.environment
    with raw_write(filled_store) as txn:
        txn.put(b"format", b"99", db=environment.meta)
    filled_store.shutdown()
    data = Path(filled_store.path, "data.mdb")
    digest = hashlib.sha256(data.read_bytes()).digest()

    with pytest.raises(NewerFormatError) as refused:
        LMDBJobStore(filled_store.path)

    message = str(refused.value)
    assert os.path.realpath(filled_store.path) in message
    assert "format version 99" in message
    assert f"reads format {FORMAT_VERSION} at most" in message
    assert hashlib.sha256(data.read_bytes()).digest() == digest


# -- check -----------------------------------------------------------------------------------


def test_check_of_a_healthy_store_is_ok(filled_store: LMDBJobStore) -> None:
    report = filled_store.check()

    assert report.ok
    assert (report.jobs, report.paused, report.index_entries) == (3, 1, 3)


def test_check_reports_a_missing_index_entry_and_repair_puts_it_back(
    filled_store: LMDBJobStore, timezone: tzinfo
) -> None:
    with raw_write(filled_store) as txn:
        txn.delete(
            index_entry(localize(timezone, NOON), "noon"), db=filled_store.environment.index
        )

    report = filled_store.check()
    assert not report.ok
    assert report.problems == ["job b'noon' has 0 index entries, not one"]

    assert filled_store.check(repair=True).repaired
    assert filled_store.check().ok
    assert ids(filled_store.get_all_jobs()) == ["morning", "noon", "paused"]


def test_check_reports_a_stray_index_entry_and_repair_removes_it(
    filled_store: LMDBJobStore, timezone: tzinfo
) -> None:
    stray = index_entry(localize(timezone, MORNING - timedelta(hours=1)), "ghost")
    with raw_write(filled_store) as txn:
        txn.put(stray, b"", db=filled_store.environment.index)

    report = filled_store.check()
    assert not report.ok
    assert report.problems == [f"index entry {stray!r} names no job"]

    assert filled_store.check(repair=True).repaired
    assert filled_store.check().ok
    assert filled_store.get_next_run_time() == localize(timezone, MORNING)
    assert ids(filled_store.get_all_jobs()) == ["morning", "noon", "paused"]
