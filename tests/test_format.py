"""Store formats 4 and 5: a job's state is serialized as the tuple of its parts (format 4),
the datetimes of its compact trigger as their pickled state (format 5); a store of format
3, whose states are dicts, or 4 is read as it is and upgraded when first opened for
writing."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lmdb
import pytest
from apscheduler.job import Job
from apscheduler.schedulers.background import BackgroundScheduler
from older_formats import in_wall_clock_form

from lmdbstore import FORMAT_VERSION, LMDBJobStore
from lmdbstore.inspection import read_job
from lmdbstore.keys import encode_job_id, job_key
from lmdbstore.records import JobRecord
from lmdbstore.serializers import JOB_PARTS, state_of_body
from lmdbstore.triggers import restored_trigger

MakeJob = Callable[..., Job]
ARGUMENTS: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {
    "plain": ((1, "two", (3.5, None)), {"to": ["a", "b"], "flag": True}),
    "nested": (([1, [2]], {"k": (1,)}), {"deep": {"list": [1, 2]}}),
    "objects": ((datetime(2030, 1, 1, tzinfo=timezone.utc),), {"at": Path("/tmp")}),
}


def body_of(store: LMDBJobStore, job_id: str) -> Any:
    """What the serialized body of job ``job_id``'s record unpickles to."""
    env = store.environment
    data = env.read(lambda txn: txn.get(job_key(encode_job_id(job_id)), db=env.jobs))
    return pickle.loads(JobRecord.decode(data).body)


def comparable(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` with its trigger as its class and state (triggers do not compare)."""
    trigger = state["trigger"]
    return {**state, "trigger": (type(trigger), trigger.__getstate__())}


def state(job: Job | None) -> dict[str, Any]:
    assert job is not None
    return comparable(job.__getstate__())


def shown_state(store: LMDBJobStore, job_id: str) -> dict[str, Any]:
    """The state the store's tools show of job ``job_id``."""
    stored = read_job(store, job_id)
    assert stored is not None and stored.state is not None, stored
    return comparable(stored.state)


def as_format(path: str, version: int) -> None:
    """Rewrite the store at ``path`` as lmdbstore wrote format ``version`` (3 or 4): every
    job state a dict (3) or a tuple (4), the datetimes of compact triggers as wall clock
    fields; the format record ``version`` (records keep their stamps: nothing else depends
    on the body)."""
    env = lmdb.open(path, max_dbs=8)
    with env.begin(write=True) as txn:
        jobs = env.open_db(b"jobs", txn=txn)
        for key, data in list(txn.cursor(db=jobs)):
            record = JobRecord.decode(data)
            parts = list(pickle.loads(record.body))
            if type(parts[2]) is tuple:
                parts[2] = in_wall_clock_form(parts[2])
            old: Any = tuple(parts) if version == 4 else state_of_body(tuple(parts))
            body = pickle.dumps(old, pickle.HIGHEST_PROTOCOL)
            txn.put(key, record._replace(body=body).encode(), db=jobs)
        txn.put(b"format", str(version).encode(), db=env.open_db(b"meta", txn=txn))
    env.close()


@pytest.fixture
def jobs(make_job: MakeJob) -> list[Job]:
    return [
        make_job(job_id, args=args, kwargs=kwargs) for job_id, (args, kwargs) in ARGUMENTS.items()
    ]


def test_a_job_state_is_stored_as_the_tuple_of_its_parts(
    lmdb_store: LMDBJobStore, jobs: list[Job]
) -> None:
    lmdb_store.add_jobs(jobs)
    for job in jobs:
        body = body_of(lmdb_store, job.id)
        assert type(body) is tuple
        assert len(body) == len(JOB_PARTS)
        expected = job.__getstate__()
        del expected["next_run_time"]
        assert list(state_of_body(body)) == list(expected)  # Job.__getstate__'s order
        assert {**state_of_body(body), "trigger": job.trigger} == expected
        assert restored_trigger(body[2]).__getstate__() == job.trigger.__getstate__()


def test_a_state_of_another_shape_is_stored_as_it_is(
    tmp_path: Path, make_job: MakeJob, scheduler: BackgroundScheduler
) -> None:
    store = LMDBJobStore(tmp_path / "jobs.lmdb", serializer="cloudpickle")
    store.start(scheduler, "store")
    store.add_job(make_job("by-value", func=lambda: None))
    assert type(body_of(store, "by-value")) is dict
    assert store.lookup_job("by-value") is not None
    store.shutdown()


def in_older_form(body: Any, version: int) -> bool:
    """Whether ``body`` is a state as format ``version`` (3 or 4) wrote it."""
    if version == 3:
        return type(body) is dict
    return type(body) is tuple and (not compact(body) or len(body[2][1]) == 9)


def in_present_form(body: Any) -> bool:
    return type(body) is tuple and (not compact(body) or type(body[2][1][0]) is bytes)


def compact(body: tuple[Any, ...]) -> bool:
    """Whether the date trigger of job state ``body`` is in compact form (its time zone a
    zoneinfo zone, not a pytz one); then its datetime is in the form of the format."""
    return type(body[2]) is tuple


@pytest.mark.parametrize("version", [3, 4])
def test_a_store_of_an_older_format_is_read_as_it_is_and_upgraded_when_opened_for_writing(
    tmp_path: Path, jobs: list[Job], scheduler: BackgroundScheduler, version: int
) -> None:
    path = str(tmp_path / "jobs.lmdb")
    store = LMDBJobStore(path)
    store.add_jobs(jobs)
    shown = {job.id: shown_state(store, job.id) for job in jobs}
    assert all(in_present_form(body_of(store, job.id)) for job in jobs)
    store.shutdown()
    as_format(path, version)
    expected = {job.id: state(job) for job in jobs}

    reader = LMDBJobStore(path, readonly=True)
    reader.start(scheduler, "reader")
    assert reader.environment.format_version == version
    assert all(in_older_form(body_of(reader, job.id), version) for job in jobs)
    assert {job.id: state(job) for job in reader.get_all_jobs()} == expected
    assert {job.id: shown_state(reader, job.id) for job in jobs} == shown
    reader.shutdown()

    writer = LMDBJobStore(path)
    writer.start(scheduler, "writer")
    assert writer.environment.format_version == FORMAT_VERSION
    for _ in range(2):  # decoded, then from the decoded-state cache
        assert {job_id: state(writer.lookup_job(job_id)) for job_id in expected} == expected
    assert all(in_older_form(body_of(writer, job.id), version) for job in jobs)
    changed = writer.lookup_job("plain")
    changed._modify(name="renamed")
    writer.update_job(changed)
    assert in_present_form(body_of(writer, "plain"))
    assert state(writer.lookup_job("plain")) == {**expected["plain"], "name": "renamed"}
    assert in_older_form(body_of(writer, "nested"), version)
    assert writer.check().ok
    writer.shutdown()


def test_jobs_read_from_a_format_3_record_are_independent(
    tmp_path: Path, jobs: list[Job], scheduler: BackgroundScheduler
) -> None:
    path = str(tmp_path / "jobs.lmdb")
    store = LMDBJobStore(path)
    store.add_jobs(jobs)
    store.shutdown()
    as_format(path, 3)
    store = LMDBJobStore(path)
    store.start(scheduler, "store")
    first = store.lookup_job("nested")
    first.args[0][1].append("mine")
    first.kwargs["deep"]["list"].clear()
    assert store.lookup_job("nested").args == ARGUMENTS["nested"][0]
    assert store.lookup_job("nested").kwargs == ARGUMENTS["nested"][1]
    store.shutdown()


@pytest.mark.parametrize(
    "body",
    [
        pytest.param((1, 2, 3), id="too-short"),
        pytest.param(
            ("id", 42, None, "default", "n", 1, False, 1, (), {}), id="func-no-reference"
        ),
        pytest.param(
            ("id", "tests:x", (99,), "default", "n", 1, False, 1, (), {}), id="bad-trigger"
        ),
    ],
)
def test_a_record_whose_tuple_is_no_job_state_is_quarantined_and_kept(
    lmdb_store: LMDBJobStore, make_job: MakeJob, body: tuple[Any, ...]
) -> None:
    lmdb_store.add_job(make_job("broken"))
    env = lmdb_store.environment
    key = job_key(encode_job_id("broken"))
    with env.env.begin(write=True) as txn:
        record = JobRecord.decode(txn.get(key, db=env.jobs))
        damaged = record._replace(body=pickle.dumps(body)).encode()
        txn.put(key, damaged, db=env.jobs)
    lmdb_store._codec.cache.clear()

    assert lmdb_store.lookup_job("broken") is None
    assert [entry.job_id for entry in lmdb_store.get_quarantined_jobs()] == ["broken"]
    assert lmdb_store.get_quarantined_jobs()[0].record == damaged
