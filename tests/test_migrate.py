"""``lmdbstore export``, ``import`` and ``migrate``: files in APScheduler's export format
read and written both ways with a real scheduler, and every job copied, field for field,
between our store and SQLite (SQLAlchemyJobStore) and a real Redis server."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import shutil
import socket
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from apscheduler.job import Job
from apscheduler.jobstores.base import BaseJobStore
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.redis import RedisJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from cli_fixtures import (
    TESTS,
    UTC,
    fill_store,
    make_job,
    quarantine_job,
    run_cli,
    sample_jobs,
)
from redis import Redis

from lmdbstore import LMDBJobStore
from lmdbstore.keys import encode_job_id


def every_field(job: Job) -> dict[str, Any]:
    """A job's state, its trigger's state and the time zone of its next run time included,
    in a form that compares equal only if all of them are equal."""
    state = job.__getstate__()
    state["args"] = tuple(state["args"])  # APScheduler's import_jobs leaves JSON's list
    state["trigger"] = (type(job.trigger), job.trigger.__getstate__())
    next_run_time = state["next_run_time"]
    state["next_run_time"] = (next_run_time, next_run_time and str(next_run_time.tzinfo))
    return state


def fields_by_id(jobs: list[Job]) -> dict[str, dict[str, Any]]:
    return {job.id: every_field(job) for job in jobs}


def jobs_of(store: BaseJobStore) -> dict[str, dict[str, Any]]:
    """Every field of every job of ``store``, which is closed afterwards."""
    store.start(BackgroundScheduler(timezone=UTC), "test")
    try:
        return fields_by_id(store.get_all_jobs())
    finally:
        store.shutdown()


def lmdb_jobs(path: Path) -> dict[str, dict[str, Any]]:
    return jobs_of(LMDBJobStore(path))


def sqlite_jobs(path: Path) -> dict[str, dict[str, Any]]:
    return jobs_of(SQLAlchemyJobStore(url=f"sqlite:///{path}"))


SAMPLE = fields_by_id(sample_jobs())


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    path = tmp_path / "jobs.lmdb"
    fill_store(path, sample_jobs())
    return path


def broken_store(path: Path) -> Path:
    """A store of the sample jobs, one of whose records (``beta``) is damaged."""
    fill_store(path, sample_jobs())
    store = LMDBJobStore(path)
    env = store.environment
    key = encode_job_id("beta")
    env.write(lambda txn: txn.put(key, txn.get(key, db=env.jobs)[:-3] + b"bad", db=env.jobs))
    store.shutdown()
    return path


def summary(read: int, copied: int, replaced: int, skipped: int, failed: int) -> list[str]:
    return [
        f"  read:     {read}",
        f"  copied:   {copied}",
        f"  replaced: {replaced}",
        f"  skipped:  {skipped} (a job of that id is there already)",
        f"  failed:   {failed}",
    ]


# -- APScheduler's export format, both ways ---------------------------------------------


def test_export_is_read_by_apscheduler_import_jobs(store_path: Path) -> None:
    result = run_cli("export", store_path, "jobs.json", "--path", TESTS, cwd=store_path.parent)
    assert result.returncode == 0, result.stderr
    memory = MemoryJobStore()
    scheduler = BackgroundScheduler(timezone=UTC, jobstores={"default": memory})
    scheduler.import_jobs(str(store_path.parent / "jobs.json"))
    assert fields_by_id(memory.get_all_jobs()) == SAMPLE


def test_import_reads_what_apscheduler_export_jobs_writes(tmp_path: Path) -> None:
    scheduler = BackgroundScheduler(timezone=UTC, jobstores={"default": MemoryJobStore()})
    scheduler.start(paused=True)
    try:
        for job in sample_jobs():
            scheduler._jobstores["default"].add_job(job)
        scheduler.export_jobs(str(tmp_path / "jobs.json"))
    finally:
        scheduler.shutdown()
    result = run_cli("import", "jobs.json", "jobs.lmdb", "--path", TESTS, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1:] == summary(3, 3, 0, 0, 0)
    assert lmdb_jobs(tmp_path / "jobs.lmdb") == SAMPLE


def test_export_matches_apscheduler_export_jobs_byte_for_byte(tmp_path: Path) -> None:
    jobs = [job for job in sample_jobs() if job.id != "alpha"]  # alpha's args hold an object
    scheduler = BackgroundScheduler(timezone=UTC, jobstores={"default": MemoryJobStore()})
    scheduler.start(paused=True)
    try:
        for job in jobs:
            scheduler._jobstores["default"].add_job(job)
        scheduler.export_jobs(str(tmp_path / "theirs.json"))
    finally:
        scheduler.shutdown()
    fill_store(tmp_path / "jobs.lmdb", jobs)
    assert run_cli("export", "jobs.lmdb", "ours.json", cwd=tmp_path).returncode == 0
    assert (tmp_path / "ours.json").read_text() == (tmp_path / "theirs.json").read_text()


def test_export_and_import_keep_every_field(store_path: Path) -> None:
    cwd = store_path.parent
    assert run_cli("export", store_path, "jobs.json", "--path", TESTS, cwd=cwd).returncode == 0
    assert run_cli("import", "jobs.json", "copy.lmdb", "--path", TESTS, cwd=cwd).returncode == 0
    assert lmdb_jobs(cwd / "copy.lmdb") == SAMPLE


def test_export_to_standard_output_and_import_from_standard_input(store_path: Path) -> None:
    cwd = store_path.parent
    exported = run_cli("export", store_path, "-", "--path", TESTS, cwd=cwd)
    assert exported.returncode == 0
    assert json.loads(exported.stdout)["version"] == 1
    assert "copied:   3" in exported.stderr
    imported = run_cli("import", "-", "copy.lmdb", "--path", TESTS, cwd=cwd, stdin=exported.stdout)
    assert imported.returncode == 0, imported.stderr
    assert lmdb_jobs(cwd / "copy.lmdb") == SAMPLE


def test_export_into_a_missing_directory(store_path: Path) -> None:
    result = run_cli(
        "export", store_path, "missing/jobs.json", "--path", TESTS, cwd=store_path.parent
    )
    assert result.returncode == 1
    assert result.stderr.startswith("Error: [Errno 2] No such file or directory: ")


def test_import_of_a_file_that_repeats_an_id(store_path: Path) -> None:
    cwd = store_path.parent
    assert run_cli("export", store_path, "jobs.json", "--path", TESTS, cwd=cwd).returncode == 0
    document = json.loads((cwd / "jobs.json").read_text())
    document["jobs"].append(document["jobs"][0])
    (cwd / "twice.json").write_text(json.dumps(document))
    result = run_cli("import", "twice.json", "copy.lmdb", "--path", TESTS, cwd=cwd)
    assert result.returncode == 0
    assert result.stdout.splitlines()[1:6] == summary(4, 3, 0, 1, 0)
    assert lmdb_jobs(cwd / "copy.lmdb") == SAMPLE


def test_import_of_a_file_that_is_not_an_export(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{"version": 2, "jobs": []}')
    result = run_cli("import", "bad.json", "jobs.lmdb", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == "Error: cannot read file bad.json: its version is 2, not 1\n"
    assert not (tmp_path / "jobs.lmdb").exists()


def test_export_needs_the_arguments_classes_or_skip_broken(store_path: Path) -> None:
    cwd = store_path.parent
    refused = run_cli("export", store_path, "jobs.json", cwd=cwd)
    assert refused.returncode == 1
    assert "1 job(s) of lmdbstore store" in refused.stderr
    assert "job 'alpha': ModuleNotFoundError: No module named 'clijobs'" in refused.stderr
    assert not (cwd / "jobs.json").exists()

    skipped = run_cli("export", store_path, "jobs.json", "--skip-broken", cwd=cwd)
    assert skipped.returncode == 1
    assert skipped.stdout.splitlines()[1:7] == [
        *summary(3, 2, 0, 0, 1),
        "    job 'alpha': ModuleNotFoundError: No module named 'clijobs'",
    ]
    exported = json.loads((cwd / "jobs.json").read_text())
    assert [job["id"] for job in exported["jobs"]] == ["beta", "gamma"]


# -- migrate -------------------------------------------------------------------------------


def test_migrate_lmdb_to_sqlite_and_back_keeps_every_field(store_path: Path) -> None:
    cwd = store_path.parent
    there = run_cli("migrate", store_path, "sqlite:///jobs.sqlite", "--path", TESTS, cwd=cwd)
    assert there.returncode == 0, there.stderr
    assert there.stdout.splitlines() == [
        f"copied jobs from lmdbstore store {store_path} to SQL database sqlite:///jobs.sqlite",
        *summary(3, 3, 0, 0, 0),
    ]
    assert sqlite_jobs(cwd / "jobs.sqlite") == SAMPLE

    back = run_cli("migrate", "sqlite:///jobs.sqlite", "back.lmdb", "--path", TESTS, cwd=cwd)
    assert back.returncode == 0, back.stderr
    assert lmdb_jobs(cwd / "back.lmdb") == SAMPLE


def test_migrate_never_imports_the_jobs_callables(tmp_path: Path) -> None:
    jobs = [job for job in sample_jobs() if job.id != "alpha"]
    fill_store(tmp_path / "jobs.lmdb", jobs)
    result = run_cli("migrate", "jobs.lmdb", "sqlite:///jobs.sqlite", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sqlite_jobs(tmp_path / "jobs.sqlite") == fields_by_id(jobs)


def test_migrate_never_deletes_from_the_source_what_it_cannot_read(tmp_path: Path) -> None:
    source = SQLAlchemyJobStore(url=f"sqlite:///{tmp_path / 'jobs.sqlite'}")
    source.start(BackgroundScheduler(timezone=UTC), "source")
    for job in sample_jobs():
        source.add_job(job)
    source.shutdown()
    result = run_cli("migrate", "sqlite:///jobs.sqlite", "jobs.lmdb", cwd=tmp_path)
    assert result.returncode == 1
    assert "job 'alpha': ModuleNotFoundError: No module named 'clijobs'" in result.stderr
    assert sqlite_jobs(tmp_path / "jobs.sqlite") == SAMPLE  # APScheduler would delete alpha
    assert not (tmp_path / "jobs.lmdb").exists()


def test_migrate_writes_nothing_if_a_job_cannot_be_read(tmp_path: Path) -> None:
    broken_store(tmp_path / "jobs.lmdb")
    result = run_cli(
        "migrate", "jobs.lmdb", "sqlite:///jobs.sqlite", "--path", TESTS, cwd=tmp_path
    )
    assert result.returncode == 1
    assert "cannot be read, so nothing was written" in result.stderr
    assert "job 'beta': CorruptRecordError" in result.stderr
    assert sqlite_jobs(tmp_path / "jobs.sqlite") == {}


def test_migrate_skip_broken_copies_the_rest(tmp_path: Path) -> None:
    broken_store(tmp_path / "jobs.lmdb")
    result = run_cli(
        "migrate",
        "jobs.lmdb",
        "sqlite:///jobs.sqlite",
        "--skip-broken",
        "--path",
        TESTS,
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert result.stdout.splitlines()[1:6] == summary(3, 2, 0, 0, 1)
    assert sorted(sqlite_jobs(tmp_path / "jobs.sqlite")) == ["alpha", "gamma"]


def test_migrate_dry_run_counts_and_writes_nothing(store_path: Path) -> None:
    cwd = store_path.parent
    fill_store(cwd / "dest.lmdb", [sample_jobs()[0]])
    result = run_cli("migrate", "--dry-run", store_path, "dest.lmdb", "--path", TESTS, cwd=cwd)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"would copy jobs from lmdbstore store {store_path} to lmdbstore store dest.lmdb",
        *summary(3, 2, 0, 1, 0),
        "dry run: nothing was written",
    ]
    assert sorted(lmdb_jobs(cwd / "dest.lmdb")) == ["alpha"]
    to_sqlite = run_cli("migrate", "--dry-run", store_path, "sqlite:///j.sqlite", cwd=cwd)
    assert to_sqlite.returncode == 1  # alpha cannot be read without --path
    assert not (cwd / "j.sqlite").exists() or sqlite_jobs(cwd / "j.sqlite") == {}


def test_migrate_skips_existing_jobs_unless_told_to_replace_them(store_path: Path) -> None:
    cwd = store_path.parent
    older = make_job(
        "beta", IntervalTrigger(days=1, timezone=UTC), datetime(2040, 1, 1, tzinfo=UTC)
    )
    fill_store(cwd / "dest.lmdb", [older])
    skipped = run_cli("migrate", store_path, "dest.lmdb", "--path", TESTS, cwd=cwd)
    assert skipped.returncode == 0
    assert skipped.stdout.splitlines()[1:6] == summary(3, 2, 0, 1, 0)
    assert lmdb_jobs(cwd / "dest.lmdb")["beta"] == every_field(older)

    replaced = run_cli(
        "migrate", store_path, "dest.lmdb", "--replace-existing", "--path", TESTS, cwd=cwd
    )
    assert replaced.returncode == 0
    assert replaced.stdout.splitlines()[1:6] == summary(3, 0, 3, 0, 0)
    assert lmdb_jobs(cwd / "dest.lmdb") == SAMPLE


def test_migrate_does_not_copy_quarantined_jobs(store_path: Path) -> None:
    cwd = store_path.parent
    store = LMDBJobStore(store_path)
    store.add_job(make_job("lost", IntervalTrigger(hours=1, timezone=UTC), None))
    store.shutdown()
    quarantine_job(store_path, "lost", "ModuleNotFoundError: No module named 'gone'")
    result = run_cli("migrate", store_path, "copy.lmdb", "--path", TESTS, cwd=cwd)
    assert result.returncode == 0
    assert result.stdout.splitlines()[-1] == "  not copied: 1 quarantined job(s)"
    assert lmdb_jobs(cwd / "copy.lmdb") == SAMPLE


def test_migrate_to_the_same_store_is_a_usage_error(store_path: Path) -> None:
    result = run_cli("migrate", store_path, store_path, cwd=store_path.parent)
    assert result.returncode == 2


def test_migrate_from_a_missing_store(tmp_path: Path) -> None:
    result = run_cli("migrate", "missing.lmdb", "sqlite:///j.sqlite", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == "Error: 'missing.lmdb' holds no lmdbstore store\n"


def test_migrate_to_an_unknown_kind_of_url(store_path: Path) -> None:
    result = run_cli("migrate", store_path, "nosuchdb://x", cwd=store_path.parent)
    assert result.returncode == 1
    assert result.stderr.startswith("Error: cannot open nosuchdb://x: ")


def test_migrate_to_mongodb_names_what_it_needs(store_path: Path) -> None:
    try:
        import pymongo  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("pymongo is installed: this checks the message given without it")
    result = run_cli("migrate", store_path, "mongodb://u:secret@127.0.0.1/", cwd=store_path.parent)
    assert (result.returncode, result.stderr) == (
        1,
        "Error: MongoDB needs pymongo: pip install pymongo\n",
    )


def test_passwords_in_urls_are_not_shown(store_path: Path) -> None:
    url = f"redis://:secret@127.0.0.1:{_free_port()}/0"
    result = run_cli("migrate", store_path, url, "--path", TESTS, cwd=store_path.parent)
    assert result.returncode == 1
    assert "secret" not in result.stderr
    assert "redis://:***@127.0.0.1:" in result.stderr


def test_progress_bars_show_on_a_terminal_only(store_path: Path) -> None:
    cwd = store_path.parent
    plain = run_cli("migrate", store_path, "sqlite:///a.sqlite", "--path", TESTS, cwd=cwd)
    assert plain.stderr == ""

    terminal, terminal_end = pty.openpty()
    fcntl.ioctl(terminal_end, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {**os.environ, "PYTHONPATH": str(TESTS), "TZ": "UTC"}
    process = subprocess.Popen(
        [sys.executable, "-m", "lmdbstore", "migrate", store_path, "sqlite:///b.sqlite"],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=terminal_end,
    )
    os.close(terminal_end)
    shown = b""
    while True:
        try:
            chunk = os.read(terminal, 4096)
        except OSError:  # the terminal closed
            break
        if not chunk:
            break
        shown += chunk
    assert process.wait(timeout=60) == 0
    os.close(terminal)
    assert b"copying" in shown
    assert b"0/3 [" in shown


# -- Redis, a real server on a loopback port ---------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A fresh Redis server on a free 127.0.0.1 port, stopped after the test."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not on PATH: install it (apt-get install -y redis-server)")
    port = _free_port()
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = Redis(port=port)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except Exception:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=20)


def redis_jobs(url: str) -> dict[str, dict[str, Any]]:
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    return jobs_of(RedisJobStore(port=port))


def test_migrate_lmdb_to_redis_and_back_keeps_every_field(
    store_path: Path, redis_url: str
) -> None:
    cwd = store_path.parent
    there = run_cli("migrate", store_path, redis_url, "--path", TESTS, cwd=cwd)
    assert there.returncode == 0, there.stderr
    assert there.stdout.splitlines()[0] == (
        f"copied jobs from lmdbstore store {store_path} to Redis {redis_url}"
    )
    assert redis_jobs(redis_url) == SAMPLE
    again = run_cli("migrate", store_path, redis_url, "--path", TESTS, cwd=cwd)
    assert again.stdout.splitlines()[1:6] == summary(3, 0, 0, 3, 0)

    back = run_cli("migrate", redis_url, "back.lmdb", "--path", TESTS, cwd=cwd)
    assert back.returncode == 0, back.stderr
    assert lmdb_jobs(cwd / "back.lmdb") == SAMPLE


def test_migrate_to_a_redis_server_that_is_down(store_path: Path) -> None:
    url = f"redis://127.0.0.1:{_free_port()}/0"
    result = run_cli("migrate", store_path, url, "--path", TESTS, cwd=store_path.parent)
    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: cannot write to Redis {url}: ")


def test_migrate_many_jobs(tmp_path: Path, redis_url: str) -> None:
    count = 2000
    trigger = IntervalTrigger(minutes=1, timezone=UTC)
    jobs = [
        make_job(f"job-{n:05}", trigger, datetime(2030, 1, 1, 0, n % 60, tzinfo=UTC))
        for n in range(count)
    ]
    store = LMDBJobStore(tmp_path / "jobs.lmdb")
    store.add_jobs(jobs)
    store.shutdown()
    for dest in ("sqlite:///jobs.sqlite", redis_url, "copy.lmdb"):
        result = run_cli("migrate", "jobs.lmdb", dest, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert f"  copied:   {count}" in result.stdout
    assert len(lmdb_jobs(tmp_path / "copy.lmdb")) == count
