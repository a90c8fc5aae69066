"""``lmdbstore backup`` while a scheduler writes to the store, and ``lmdbstore compact``,
which needs the store to itself."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path

from apscheduler.triggers.interval import IntervalTrigger
from cli_fixtures import TESTS, UTC, fill_store, make_job, run_cli, sample_store

from lmdbstore import LMDBJobStore

BUSY_SCHEDULER = textwrap.dedent(
    """
    import sys, time
    from datetime import datetime, timedelta, timezone
    from apscheduler.schedulers.background import BackgroundScheduler
    from lmdbstore import LMDBJobStore

    def tick():
        pass

    path, ready = sys.argv[1:]
    scheduler = BackgroundScheduler(
        timezone="UTC", jobstores={"default": LMDBJobStore(path, durability="relaxed")}
    )
    scheduler.start()
    for number in range(20):
        scheduler.add_job("clijobs:tick", "interval", seconds=0.01, id=f"fast-{number}")
    open(ready, "w").close()
    number = 0
    while True:  # keeps adding and removing jobs besides the scheduler's own writes
        scheduler.add_job("clijobs:tick", "interval", hours=1, id=f"churn-{number}")
        if number >= 50:
            scheduler.remove_job(f"churn-{number - 50}")
        number += 1
    """
)


def test_backup_while_a_scheduler_writes_is_consistent(tmp_path: Path) -> None:
    path = tmp_path / "jobs.lmdb"
    fill_store(path, [])
    ready = tmp_path / "ready"
    busy = subprocess.Popen(
        [sys.executable, "-c", BUSY_SCHEDULER, path, ready],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(TESTS)},
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert busy.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        for number in range(3):
            time.sleep(0.3)
            result = run_cli("backup", path, f"backup-{number}", cwd=tmp_path)
            assert result.returncode == 0, result.stderr
            jobs = int(result.stdout.split(": ")[1].split()[0])
            assert jobs >= 20  # the scheduler's jobs, and some of the churn
            checked = run_cli("check", f"backup-{number}", "--path", TESTS, cwd=tmp_path)
            assert checked.returncode == 0, checked.stdout
        assert busy.poll() is None
    finally:
        busy.kill()
        busy.wait()


def test_backup_output_and_copy(tmp_path: Path) -> None:
    path = sample_store(tmp_path / "jobs.lmdb")
    result = run_cli("backup", "jobs.lmdb", "backup", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("backed up jobs.lmdb to backup: 3 jobs, 1 quarantined, ")
    listed = run_cli("list", "backup", cwd=tmp_path)
    assert listed.stdout == run_cli("list", path, cwd=tmp_path).stdout
    backup_size = (tmp_path / "backup" / "data.mdb").stat().st_size
    assert backup_size < path.joinpath("data.mdb").stat().st_size


def test_backup_goes_into_a_new_or_empty_directory(tmp_path: Path) -> None:
    sample_store(tmp_path / "jobs.lmdb")
    (tmp_path / "empty").mkdir()
    assert run_cli("backup", "jobs.lmdb", "empty", cwd=tmp_path).returncode == 0

    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    refused = run_cli("backup", "jobs.lmdb", "full", cwd=tmp_path)
    assert refused.returncode == 2
    assert "'full' is not empty: a backup goes into a new or empty directory" in refused.stderr
    assert os.listdir(tmp_path / "full") == ["keep.txt"]

    (tmp_path / "file").write_text("")
    assert run_cli("backup", "jobs.lmdb", "file", cwd=tmp_path).returncode == 2


def churned_store(path: Path) -> list[str]:
    """A store that held many jobs and now holds three: its file has many free pages."""
    store = LMDBJobStore(path)
    trigger = IntervalTrigger(hours=1, timezone=UTC)
    padding = "x" * 3000
    first_run = datetime(2030, 1, 1, tzinfo=UTC)
    for number in range(600):
        store.add_job(make_job(f"job-{number:04}", trigger, first_run, args=(padding,)))
    kept = ["job-0000", "job-0300", "job-0599"]
    for number in range(600):
        if f"job-{number:04}" not in kept:
            store.remove_job(f"job-{number:04}")
    store.shutdown()
    return kept


def test_compact_shrinks_the_data_file_and_keeps_the_jobs(tmp_path: Path) -> None:
    path = tmp_path / "jobs.lmdb"
    churned_store(path)
    before = run_cli("list", path, cwd=tmp_path).stdout
    size = path.joinpath("data.mdb").stat().st_size
    result = run_cli("compact", path, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"compacted {path}: data file ")
    assert path.joinpath("data.mdb").stat().st_size < size / 10
    assert run_cli("list", path, cwd=tmp_path).stdout == before
    assert run_cli("check", path, "--path", TESTS, cwd=tmp_path).returncode == 0
    assert [name for name in os.listdir(tmp_path) if name.startswith(".compact")] == []


def test_compact_refuses_while_another_process_has_the_store_open(tmp_path: Path) -> None:
    path = tmp_path / "jobs.lmdb"
    kept = churned_store(path)
    size = path.joinpath("data.mdb").stat().st_size
    store = LMDBJobStore(path)  # this process has it open now
    try:
        result = run_cli("compact", path, cwd=tmp_path)
        assert result.returncode == 1
        assert result.stderr.startswith(
            f"Error: the store at {str(path)!r} is open in process {os.getpid()}: stop the "
            "schedulers and tools using it"
        )
        assert path.joinpath("data.mdb").stat().st_size == size
        assert sorted(job.id for job in store.get_all_jobs()) == kept
    finally:
        store.shutdown()
