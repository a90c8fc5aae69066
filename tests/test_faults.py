"""Faults and bad input: each gives a clear error (never a crash of the process), and
nothing already stored is lost.

Permission tests need a user without privileges: run as root, they drop to ``nobody``
in a child process (with ``setpriv``), on a directory bind-mounted where that user can
reach it (``tmp_path`` lies in root's private directory). Disk-full tests mount a small
tmpfs inside ``tmp_path``; where mounting is impossible they are skipped with the reason,
and ``RLIMIT_FSIZE`` still makes writes fail.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import lmdb
import pytest
import stress
from apscheduler.jobstores.base import ConflictingIdError
from apscheduler.schedulers.background import BackgroundScheduler
from stress import run
from stress.workload import (
    Model,
    contents,
    fingerprint,
    make_job,
    make_scheduler,
    populate,
    random_run_time,
)

import lmdbstore
from lmdbstore import (
    FORMAT_VERSION,
    JobSerializationError,
    LMDBJobStore,
    NewerFormatError,
    ReadOnlyStoreError,
    StorageError,
    StorePathError,
)

NOBODY = 65534
_MB = 1024 * 1024


@pytest.fixture
def scheduler() -> BackgroundScheduler:
    return make_scheduler()


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "jobs.lmdb"


@pytest.fixture
def store(store_path: Path, scheduler: BackgroundScheduler) -> Iterator[LMDBJobStore]:
    store = LMDBJobStore(store_path)
    store.start(scheduler, "default")
    yield store
    store.shutdown()


@pytest.fixture
def kept(store: LMDBJobStore) -> Iterator[Model]:
    """Jobs stored before the fault; at the end of the test they must all be there, and
    the store must check clean."""
    expected = populate(store, 5, "kept-")
    yield expected
    found = contents(store)
    assert {job_id: found.get(job_id) for job_id in expected} == expected
    assert store.check().ok


def _probe(path: Path, *actions: str, as_nobody: bool = False) -> list[dict[str, Any]]:
    """Run :mod:`stress.probe` on ``path`` (as the user ``nobody``, with no privileges:
    see :func:`_drop_privileges`); fail if it did not exit normally."""
    result = run("probe", str(path), *actions, wrapper=_drop_privileges() if as_nobody else ())
    if result.returncode < 0:
        pytest.fail(f"the probe was killed by {signal.Signals(-result.returncode).name}")
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def _drop_privileges() -> list[str]:
    """The command that runs another as ``nobody`` with no groups and no capabilities.

    It is util-linux's ``setpriv``: here ``subprocess``'s own ``user=``/``group=`` cannot
    start the virtualenv's interpreter (its ``execve`` is refused), which ``setpriv`` can.
    """
    if os.geteuid() != 0:
        return []  # already without privileges
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("needs util-linux's setpriv to run a process as nobody")
    stress_code = Path(stress.__file__).parent
    for code in (stress_code.parent, stress_code, Path(lmdbstore.__file__).parent):
        closed = _closed_to_others(code)
        if closed is not None:
            pytest.skip(f"nobody cannot read the code the probe runs: {closed} is closed to it")
    return [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


def _closed_to_others(directory: Path) -> Path | None:
    """The first of ``directory`` and the directories above it that a user other than
    its owner and group cannot enter (or, for ``directory``, list), if any."""
    for path in (directory, *directory.parents):
        needed = stat.S_IXOTH | (stat.S_IROTH if path == directory else 0)
        if path.stat().st_mode & needed != needed:
            return path
    return None


# -- bad jobs --------------------------------------------------------------------------


def test_an_argument_that_cannot_be_pickled(
    store: LMDBJobStore, scheduler: BackgroundScheduler, kept: Model
) -> None:
    job = make_job(scheduler, "kept-0", None, "new", 0)
    job._modify(args=(threading.Lock(),), kwargs={})
    with pytest.raises(JobSerializationError, match="'kept-0' cannot be serialized"):
        store.update_job(job)
    job = make_job(scheduler, "bad", None, "bad", 0)
    job._modify(args=(threading.Lock(),), kwargs={})
    with pytest.raises(JobSerializationError, match="'bad' cannot be serialized"):
        store.add_job(job)
    good = make_job(scheduler, "good", None, "good", 0)
    with pytest.raises(JobSerializationError):
        store.add_jobs([good, job])
    assert store.lookup_job("good") is None  # all of the batch, or none


def test_a_callable_without_a_textual_reference(
    store: LMDBJobStore, scheduler: BackgroundScheduler, kept: Model
) -> None:
    job = make_job(scheduler, "lambda", None, "lambda", 0)
    job._modify(func=lambda **kwargs: None)
    assert job.func_ref is None
    with pytest.raises(JobSerializationError, match="'lambda' cannot be serialized"):
        store.add_job(job)


def test_a_naive_datetime(
    store: LMDBJobStore, scheduler: BackgroundScheduler, kept: Model
) -> None:
    naive = datetime(2030, 1, 1, 12, 0)
    job = make_job(scheduler, "naive", None, "naive", 0)
    job.next_run_time = naive
    with pytest.raises(ValueError, match="naive"):
        store.add_job(job)
    with pytest.raises(ValueError, match="naive"):
        store.set_next_run_time("kept-0", naive)
    with pytest.raises(ValueError, match="naive"):
        store.get_due_jobs(naive)


def test_an_id_that_is_not_a_str(
    store: LMDBJobStore, scheduler: BackgroundScheduler, kept: Model
) -> None:
    job = make_job(scheduler, "x", None, "x", 0)
    job.id = 5
    with pytest.raises(TypeError, match="job id must be a str, not int"):
        store.add_job(job)
    with pytest.raises(TypeError, match="job id must be a str"):
        store.lookup_job(5)
    with pytest.raises(TypeError, match="job id must be a str"):
        store.remove_job(b"kept-0")


def test_ids_of_100_kb(store: LMDBJobStore, scheduler: BackgroundScheduler, kept: Model) -> None:
    """Ids far longer than an LMDB key work, and two that differ only at their end are
    two jobs."""
    first, second = "x" * 100_000 + "1", "x" * 100_000 + "2"
    store.add_job(make_job(scheduler, first, None, "first", 10))
    store.add_job(make_job(scheduler, second, random_run_time(random.Random(1)), "second", 10))
    with pytest.raises(ConflictingIdError):
        store.add_job(make_job(scheduler, first, None, "again", 10))
    assert fingerprint(store.lookup_job(first)) == (None, "first", 10)
    store.update_job(make_job(scheduler, second, None, "updated", 20))
    assert contents(store)[second] == (None, "updated", 20)
    store.remove_job(first)
    assert store.lookup_job(first) is None
    assert store.lookup_job(second) is not None


def test_a_job_of_50_mb(store: LMDBJobStore, scheduler: BackgroundScheduler, kept: Model) -> None:
    store.add_job(make_job(scheduler, "huge", None, "huge", 50 * _MB))
    job = store.lookup_job("huge")
    assert job is not None and len(job.kwargs["payload"]) == 50 * _MB
    store.remove_job("huge")


# -- damaged files -----------------------------------------------------------------------


def test_a_record_whose_bytes_are_corrupted_is_quarantined(
    store_path: Path, scheduler: BackgroundScheduler
) -> None:
    marker = "corrupt-me-" * 10
    store = LMDBJobStore(store_path)
    store.start(scheduler, "default")
    expected = populate(store, 5, "kept-")
    store.add_job(make_job(scheduler, "damaged", None, marker, 0))
    store.shutdown()
    data = (store_path / "data.mdb").read_bytes()
    assert marker.encode() in data
    damaged = data.replace(marker.encode(), marker.upper().encode())
    (store_path / "data.mdb").write_bytes(damaged)

    restarted = LMDBJobStore(store_path)
    restarted.start(scheduler, "default")
    try:
        assert restarted.lookup_job("damaged") is None
        assert contents(restarted) == expected
        [entry] = restarted.get_quarantined_jobs()
        assert entry.job_id == "damaged"
        assert "checksum" in entry.error
        assert restarted.check().ok
    finally:
        restarted.shutdown()


@pytest.mark.parametrize("kept_bytes", ["4096", "8192", "half", "all but 64 kB"])
def test_a_truncated_data_file(
    store_path: Path, scheduler: BackgroundScheduler, kept_bytes: str
) -> None:
    """A data file cut short gives StorePathError or StorageError, in a process that
    goes on (LMDB maps the file: reading past its end would be a bus error)."""
    store = LMDBJobStore(store_path)
    store.add_jobs([make_job(scheduler, f"job-{n}", None, "t", 3000) for n in range(300)])
    store.shutdown()
    data_file = store_path / "data.mdb"
    size = data_file.stat().st_size
    length = {"half": size // 2, "all but 64 kB": size - 65536}.get(kept_bytes)
    os.truncate(data_file, int(kept_bytes) if length is None else length)

    reports = _probe(store_path, "open", "read")

    failed = [report for report in reports if not report["ok"]]
    assert failed, f"a truncated store opened and read as if whole: {reports}"
    assert failed[0]["error"] in ("StorePathError", "StorageError"), failed[0]
    assert str(store_path) in failed[0]["message"]


# -- unusable paths --------------------------------------------------------------------


def test_a_path_that_is_a_regular_file(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("not a store")
    with pytest.raises(StorePathError, match="is a file, not a store directory"):
        LMDBJobStore(path)
    assert path.read_text() == "not a store"


def test_a_path_whose_parent_is_missing(tmp_path: Path) -> None:
    with pytest.raises(StorePathError, match="is not a directory"):
        LMDBJobStore(tmp_path / "missing" / "jobs.lmdb")
    assert not (tmp_path / "missing").exists()


def test_a_directory_of_something_else(tmp_path: Path) -> None:
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(StorePathError, match="directory of something else"):
        LMDBJobStore(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["photo.jpg"]


def test_a_directory_another_process_is_creating_a_store_in(tmp_path: Path) -> None:
    (tmp_path / "lock.mdb").write_bytes(b"")
    store = LMDBJobStore(tmp_path)
    store.start(None, "default")
    assert store.get_all_jobs() == []
    store.shutdown()


def test_processes_creating_the_same_stores_at_once(tmp_path: Path) -> None:
    code = (
        "import os, sys\n"
        "from lmdbstore import LMDBJobStore\n"
        "go = os.path.join(sys.argv[1], 'go')\n"
        "while not os.path.exists(go): pass\n"
        "for n in range(300):\n"
        "    s = LMDBJobStore(os.path.join(sys.argv[1], f'jobs{n}.lmdb'))\n"
        "    s.start(None, 'default'); s.shutdown()\n"
    )
    children = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    time.sleep(1)
    (tmp_path / "go").touch()
    errors = [child.communicate()[1].decode() for child in children]
    assert [child.returncode for child in children] == [0, 0], errors


def test_an_lmdb_environment_of_another_program(tmp_path: Path) -> None:
    env = lmdb.open(str(tmp_path), max_dbs=2)
    with env.begin(write=True) as txn:
        txn.put(b"key", b"value", db=env.open_db(b"theirs", txn=txn))
    env.close()
    with pytest.raises(StorePathError, match="another program"):
        LMDBJobStore(tmp_path)
    env = lmdb.open(str(tmp_path), max_dbs=2)
    with env.begin() as txn:
        assert txn.get(b"key", db=env.open_db(b"theirs", txn=txn)) == b"value"
    env.close()


@pytest.fixture
def shared_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory on ``tmp_path`` that the user of :func:`_drop_privileges` can reach.

    For root that user is ``nobody``, and ``tmp_path`` lies inside root's private
    directory: so the directory is bind-mounted at a mount point of its own.
    """
    source = tmp_path / "shared"
    source.mkdir(mode=0o755)
    if os.geteuid() != 0:
        yield source
        return
    mount_point = Path(tempfile.mkdtemp(prefix="lmdbstore-shared-"))
    mount_point.chmod(0o755)
    mounted = subprocess.run(
        ["mount", "--bind", str(source), str(mount_point)], capture_output=True, text=True
    )
    if mounted.returncode:
        mount_point.rmdir()
        pytest.skip(f"cannot bind-mount a directory for nobody: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)
        mount_point.rmdir()


def _shared_store(shared_dir: Path) -> tuple[Path, Model]:
    path = shared_dir / "jobs.lmdb"
    store = LMDBJobStore(path)
    expected = populate(store, 5, "kept-")
    store.shutdown()
    return path, expected


@pytest.mark.parametrize("unreadable", ["directory", "data file"])
def test_an_unreadable_store(shared_dir: Path, unreadable: str) -> None:
    path, expected = _shared_store(shared_dir)
    (path if unreadable == "directory" else path / "data.mdb").chmod(0)

    [opened] = _probe(path, "open", as_nobody=True)

    assert opened["error"] == "StorePathError"
    assert "cannot be read" in opened["message"] and str(path) in opened["message"]
    (path if unreadable == "directory" else path / "data.mdb").chmod(0o755)
    store = LMDBJobStore(path)
    assert contents(store) == expected
    store.shutdown()


def test_a_read_only_store_for_its_user(shared_dir: Path) -> None:
    """Files the user may read but not write: the store opens, reads work, writes raise
    ReadOnlyStoreError."""
    path, expected = _shared_store(shared_dir)
    for file in path.iterdir():
        file.chmod(0o444)
    path.chmod(0o555)

    opened, read, added, checked = _probe(path, "open", "read", "add", "check", as_nobody=True)

    assert opened["ok"], opened
    assert read == {"action": "read", "ok": True, "value": len(expected)}
    assert added["error"] == "ReadOnlyStoreError"
    assert str(path) in added["message"]
    assert checked["ok"] and checked["value"]
    path.chmod(0o755)
    store = LMDBJobStore(path)
    assert contents(store) == expected
    store.shutdown()


def test_a_store_opened_read_only(store_path: Path, scheduler: BackgroundScheduler) -> None:
    store = LMDBJobStore(store_path)
    expected = populate(store, 5, "kept-")
    store.shutdown()
    reader = LMDBJobStore(store_path, readonly=True)
    reader.start(scheduler, "default")
    try:
        assert contents(reader) == expected
        assert reader.get_next_run_time() == min(
            state[0] for state in expected.values() if state[0]
        )
        job = make_job(scheduler, "kept-0", None, "changed", 0)
        writes = [
            lambda: reader.add_job(make_job(scheduler, "new", None, "new", 0)),
            lambda: reader.update_job(job),
            lambda: reader.set_next_run_time("kept-0", None),
            lambda: reader.remove_job("kept-0"),
            reader.remove_all_jobs,
        ]
        for write in writes:
            with pytest.raises(ReadOnlyStoreError, match="is read-only"):
                write()
        assert contents(reader) == expected
        assert reader.check().ok
    finally:
        reader.shutdown()


# -- a full disk -------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A file system of 4 MiB (tmpfs) mounted inside ``tmp_path``."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a small tmpfs: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


@pytest.mark.parametrize("payload", [100, 20_000], ids=["small jobs", "20 kB jobs"])
def test_a_full_disk(small_disk: Path, scheduler: BackgroundScheduler, payload: int) -> None:
    """The write that does not fit fails with a StorageError saying the disk is full;
    everything acknowledged stays; reads go on; once space is freed, writes work."""
    store = LMDBJobStore(small_disk / "jobs.lmdb")
    filler = small_disk / "filler"
    filler.write_bytes(bytes(_MB))
    added = []
    try:
        with pytest.raises(StorageError) as failure:
            for n in range(100_000):
                store.add_job(make_job(scheduler, f"job-{n}", None, "t", payload))
                added.append(f"job-{n}")
        path = str(small_disk / "jobs.lmdb")
        message = str(failure.value)
        assert path in message
        assert re.search("no space|disk is full", message.replace(path, ""), re.I), message
        assert sorted(contents(store)) == sorted(added)
        filler.unlink()
        store.add_job(make_job(scheduler, "after", None, "t", payload))
        assert sorted(contents(store)) == sorted([*added, "after"])
        assert store.check().ok
    finally:
        store.shutdown()


def test_a_file_size_limit(store_path: Path) -> None:
    """Writes beyond RLIMIT_FSIZE (EFBIG, as on a file system that allows no larger
    file) fail with a StorageError; the store is whole and takes writes once the limit
    is lifted."""
    store = LMDBJobStore(store_path)
    expected = populate(store, 5, "kept-")
    store.shutdown()

    reports = _probe(store_path, "open", "limit", "fill", "read", "unlimit", "add", "check")

    opened, limited, filled, read, unlimited, added, checked = reports
    assert opened["ok"] and limited["ok"] and unlimited["ok"], reports
    assert filled["error"] == "StorageError" and str(store_path) in filled["message"]
    assert read["value"] == len(expected) + filled["value"]
    assert added["ok"], added
    assert checked["value"] is True
    store = LMDBJobStore(store_path)
    found = contents(store)
    assert {job_id: found[job_id] for job_id in expected} == expected
    assert len(found) == len(expected) + filled["value"] + 1
    store.shutdown()


# -- one store, two handles ------------------------------------------------------------


def test_two_store_objects_on_one_path_share_it(
    store_path: Path, scheduler: BackgroundScheduler
) -> None:
    first = LMDBJobStore(store_path)
    second = LMDBJobStore(store_path)
    try:
        assert first.environment is second.environment
        expected = populate(first, 5, "kept-")
        assert contents(second) == expected
        second.add_job(make_job(scheduler, "second", None, "second", 0))
        first.shutdown()
        assert sorted(contents(second)) == sorted([*expected, "second"])
    finally:
        first.shutdown()
        second.shutdown()


def test_raw_lmdb_on_a_path_the_store_holds(store: LMDBJobStore, kept: Model) -> None:
    with pytest.raises(lmdb.Error, match="already open"):
        lmdb.open(store.path, max_dbs=8)
    assert contents(store) == kept


def test_the_store_on_a_path_raw_lmdb_holds(store_path: Path) -> None:
    env = lmdb.open(str(store_path), max_dbs=8)
    try:
        with pytest.raises(StorePathError, match="already open in this process outside lmdbstore"):
            LMDBJobStore(store_path)
    finally:
        env.close()
    LMDBJobStore(store_path).shutdown()


# -- another version -------------------------------------------------------------------


def test_a_store_written_by_a_newer_format(store_path: Path) -> None:
    store = LMDBJobStore(store_path)
    expected = populate(store, 5, "kept-")
    store.shutdown()
    newer = FORMAT_VERSION + 1
    _set_format(store_path, str(newer).encode())

    with pytest.raises(NewerFormatError, match=f"has format version {newer}") as refusal:
        LMDBJobStore(store_path)

    assert str(store_path) in str(refusal.value)
    _set_format(store_path, str(FORMAT_VERSION).encode())
    store = LMDBJobStore(store_path)
    assert contents(store) == expected
    store.shutdown()


def test_a_store_of_the_development_format_before_0_1_0(store_path: Path) -> None:
    store = LMDBJobStore(store_path)
    populate(store, 5, "kept-")
    store.shutdown()
    _set_format(store_path, b"1")
    data = store_path / "data.mdb"
    before = data.read_bytes()

    with pytest.raises(StorePathError, match="has format version 1, that of a development"):
        LMDBJobStore(store_path)

    assert data.read_bytes() == before


def _set_format(path: Path, version: bytes) -> None:
    env = lmdb.open(str(path), max_dbs=8)
    with env.begin(write=True) as txn:
        txn.put(b"format", version, db=env.open_db(b"meta", txn=txn))
    env.close()
