"""Any callable, with ``serializer="cloudpickle"``: lambdas, closures and partials survive a
restart through a real scheduler, in a new process that does not have their code; a record
written by one serializer is refused, clearly, by the other."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from cli_fixtures import UTC, fill_store, make_job, run_cli, sample_jobs

from lmdbstore import LMDBJobStore, SerializerMismatchError
from lmdbstore.keys import encode_job_id, index_key
from lmdbstore.records import record_run_key

RUN_STORE = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from apscheduler.schedulers.background import BackgroundScheduler
    from lmdbstore import LMDBJobStore

    path, *markers = sys.argv[1:]
    store = LMDBJobStore(path, serializer="cloudpickle")
    scheduler = BackgroundScheduler(timezone="UTC", jobstores={"default": store})
    scheduler.start()
    deadline = time.monotonic() + 60
    while not all(map(Path.exists, map(Path, markers))) and time.monotonic() < deadline:
        time.sleep(0.05)
    scheduler.shutdown()
    """
)


def writer_of(path: Path, text: str):  # type: ignore[no-untyped-def]
    """A closure over ``path`` and ``text``."""

    def write() -> None:
        path.write_text(text)

    return write


def test_lambdas_closures_and_partials_survive_a_restart(tmp_path: Path) -> None:
    store_path = tmp_path / "jobs.lmdb"
    markers = [tmp_path / name for name in ("lambda", "closure", "partial")]
    scheduler = BackgroundScheduler(
        timezone=UTC,
        jobstores={"default": LMDBJobStore(store_path, serializer="cloudpickle")},
    )
    scheduler.start(paused=True)
    soon = datetime.now(UTC) + timedelta(seconds=1)
    callables = [
        lambda: markers[0].write_text("lambda"),
        writer_of(markers[1], "closure"),
        functools.partial(Path.write_text, markers[2], "partial"),
    ]
    for number, func in enumerate(callables):
        scheduler.add_job(func, "date", run_date=soon, id=f"job-{number}", misfire_grace_time=None)
    scheduler.shutdown()
    assert not any(marker.exists() for marker in markers)

    # A new process, without this module on its path, runs them from the store alone.
    subprocess.run(
        [sys.executable, "-c", RUN_STORE, store_path, *markers],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": ""},
        check=True,
        timeout=120,
    )
    assert [marker.read_text() for marker in markers] == ["lambda", "closure", "partial"]


def test_a_store_written_with_cloudpickle_refuses_to_open_with_pickle(tmp_path: Path) -> None:
    fill_store(tmp_path / "jobs.lmdb", sample_jobs(), serializer="cloudpickle")
    with pytest.raises(SerializerMismatchError) as raised:
        LMDBJobStore(tmp_path / "jobs.lmdb")
    assert str(raised.value) == (
        f"the store at {str(tmp_path / 'jobs.lmdb')!r} was written with serializer "
        "'cloudpickle', but is opened with serializer 'pickle': open it with "
        "serializer='cloudpickle'"
    )


def test_a_record_written_by_another_serializer_is_refused(tmp_path: Path) -> None:
    """A cloudpickle record put into a pickle store (as a careless copy would) is never
    read as if it were a pickle one: the store quarantines it, saying why, and the command
    line names the problem."""
    fill_store(tmp_path / "other.lmdb", [sample_jobs()[1]], serializer="cloudpickle")
    other = LMDBJobStore(tmp_path / "other.lmdb", serializer="cloudpickle")
    key = encode_job_id("beta")
    record = other.environment.read(lambda txn: txn.get(key, db=other.environment.jobs))
    other.shutdown()

    path = tmp_path / "jobs.lmdb"
    fill_store(path, [])
    store = LMDBJobStore(path)
    env = store.environment

    def put(txn: object) -> None:
        txn.put(key, record, db=env.jobs)  # type: ignore[attr-defined]
        txn.put(index_key(record_run_key(record), key), b"", db=env.index)  # type: ignore[attr-defined]

    env.write(put)
    store.shutdown()

    listed = json.loads(run_cli("list", "--json", path, cwd=tmp_path).stdout)
    assert listed[0]["problem"] == (
        "ValueError: the record was written with serializer 'cloudpickle', but the store uses "
        "'pickle'"
    )
    check = run_cli("check", path, cwd=tmp_path)
    assert check.returncode == 1
    assert "does not decode here: written by serializer #2, not pickle" in check.stdout

    store = LMDBJobStore(path)
    assert store.lookup_job("beta") is None
    [entry] = store.get_quarantined_jobs()
    store.shutdown()
    assert entry.error == (
        f"SerializerMismatchError: the store at {str(path)!r} was written with serializer "
        "'cloudpickle', but is opened with serializer 'pickle': open it with "
        "serializer='cloudpickle'"
    )


def test_the_command_line_lists_callables_stored_by_value(tmp_path: Path) -> None:
    path = tmp_path / "jobs.lmdb"
    trigger = IntervalTrigger(hours=1, timezone=UTC)
    fill_store(
        path,
        [make_job("anon", trigger, datetime(2030, 1, 1, tzinfo=UTC), func=lambda: None)],
        serializer="cloudpickle",
    )
    listed = json.loads(run_cli("list", "--json", path, cwd=tmp_path).stdout)
    assert listed[0]["func"] == (
        "test_cloudpickle:test_the_command_line_lists_callables_stored_by_value.<locals>."
        "<lambda> (stored by value)"
    )
    assert listed[0]["problem"] is None


def test_callables_stored_by_value_move_between_cloudpickle_stores_only(tmp_path: Path) -> None:
    path = tmp_path / "jobs.lmdb"
    trigger = IntervalTrigger(hours=1, timezone=UTC)
    marker = tmp_path / "ran"
    job = make_job(
        "anon", trigger, datetime(2030, 1, 1, tzinfo=UTC), func=writer_of(marker, "copied")
    )
    fill_store(path, [job], serializer="cloudpickle")

    copied = run_cli("migrate", path, "copy.lmdb", cwd=tmp_path)
    assert copied.returncode == 0, copied.stderr
    store = LMDBJobStore(tmp_path / "copy.lmdb", serializer="cloudpickle")
    store.lookup_job("anon").func()
    store.shutdown()
    assert marker.read_text() == "copied"

    for dest in ("sqlite:///jobs.sqlite", "jobs.json"):
        refused = run_cli("migrate", path, dest, cwd=tmp_path)
        assert refused.returncode == 1
        assert "job 'anon': ValueError: its callable is stored by value (cloudpickle)" in (
            refused.stdout
        )


def test_a_job_that_cannot_be_stored_does_not_stop_the_others(tmp_path: Path) -> None:
    trigger = IntervalTrigger(hours=1, timezone=UTC)
    first_run = datetime(2030, 1, 1, tzinfo=UTC)
    fill_store(
        tmp_path / "jobs.lmdb",
        [
            make_job("by-value", trigger, first_run, func=lambda: None),
            *(make_job(f"plain-{number}", trigger, first_run) for number in range(3)),
        ],
        serializer="cloudpickle",
    )
    result = run_cli(
        "migrate", "jobs.lmdb", "pickled.lmdb", "--serializer", "pickle", cwd=tmp_path
    )
    assert result.returncode == 1
    assert result.stdout.splitlines()[2:6] == [
        "  copied:   3",
        "  replaced: 0",
        "  skipped:  0 (a job of that id is there already)",
        "  failed:   1",
    ]
    assert "job 'by-value': JobSerializationError: job 'by-value' cannot be serialized" in (
        result.stdout
    )
    store = LMDBJobStore(tmp_path / "pickled.lmdb")
    assert sorted(job.id for job in store.get_all_jobs()) == ["plain-0", "plain-1", "plain-2"]
    store.shutdown()
