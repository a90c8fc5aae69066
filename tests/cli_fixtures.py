"""What the command line tests share: running ``lmdbstore`` as a real process, and stores
filled with known jobs at fixed times."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.job import Job
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from lmdbstore import LMDBJobStore
from lmdbstore.keys import encode_job_id, index_key, job_key
from lmdbstore.records import QuarantineEntry, record_run_key

TESTS = Path(__file__).parent
UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
QUARANTINED_AT = datetime(2029, 12, 31, 23, 0, tzinfo=UTC)


def run_cli(
    *args: str | os.PathLike[str],
    cwd: Path,
    tz: str = "UTC",
    importable: bool = False,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m lmdbstore ARGS`` in ``cwd`` with ``TZ=tz``; the tests' modules are
    importable only if ``importable`` (else the jobs' code is missing, as on a box where
    the command line runs outside the application's environment)."""
    env = {**os.environ, "TZ": tz, "PYTHONPATH": str(TESTS) if importable else ""}
    env.pop("LMDBSTORE_PATH", None)
    return subprocess.run(
        [sys.executable, "-m", "lmdbstore", *map(str, args)],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def make_job(
    job_id: str,
    trigger: BaseTrigger,
    next_run_time: datetime | None,
    func: Any = "clijobs:tick",
    **changes: Any,
) -> Job:
    """A job (not yet stored) with every field set."""
    fields: dict[str, Any] = {
        "func": func,
        "trigger": trigger,
        "executor": "default",
        "args": (),
        "kwargs": {},
        "name": job_id,
        "misfire_grace_time": 30,
        "coalesce": True,
        "max_instances": 1,
        "next_run_time": next_run_time,
        **changes,
    }
    return Job(BackgroundScheduler(timezone=UTC), id=job_id, **fields)


def sample_jobs() -> list[Job]:
    """Three jobs: one on an interval, one on a cron schedule in Berlin, one paused."""
    import clijobs

    return [
        make_job(
            "alpha",
            IntervalTrigger(minutes=5, start_date=datetime(2030, 1, 1, tzinfo=UTC), timezone=UTC),
            datetime(2030, 1, 1, tzinfo=UTC),
            name="Alpha job",
            args=(1, "x", clijobs.Payload(7)),
            kwargs={"k": "v"},
        ),
        make_job(
            "beta",
            CronTrigger(hour=3, minute=30, timezone=BERLIN),
            datetime(2030, 1, 2, 3, 30, tzinfo=BERLIN),
            func="clijobs:touch",
            args=("/tmp/never",),
        ),
        make_job("gamma", DateTrigger(datetime(2030, 6, 1, 12, tzinfo=UTC)), None),
    ]


def fill_store(path: Path, jobs: list[Job], serializer: str = "pickle") -> None:
    """Create a store at ``path`` holding ``jobs``."""
    store = LMDBJobStore(path, serializer=serializer)
    try:
        for job in jobs:
            store.add_job(job)
    finally:
        store.shutdown()


def quarantine_job(path: Path, job_id: str, error: str) -> None:
    """Move a stored job to the quarantine as a scheduler would, at
    :data:`QUARANTINED_AT`."""
    store = LMDBJobStore(path)
    env = store.environment
    id_key = encode_job_id(job_id)

    def move(txn: Any) -> None:
        data = txn.pop(job_key(id_key), db=env.jobs)
        txn.delete(index_key(record_run_key(data), id_key), db=env.index)
        entry = QuarantineEntry(job_id, error, QUARANTINED_AT, data)
        txn.put(job_key(id_key), entry.encode(), db=env.quarantine)

    try:
        env.write(move)
    finally:
        store.shutdown()


def sample_store(path: Path) -> Path:
    """A store holding :func:`sample_jobs` and a quarantined job ``delta``."""
    fill_store(
        path,
        [
            *sample_jobs(),
            make_job(
                "delta",
                IntervalTrigger(
                    hours=1, start_date=datetime(2030, 1, 1, tzinfo=UTC), timezone=UTC
                ),
                datetime(2030, 1, 3, tzinfo=UTC),
            ),
        ],
    )
    quarantine_job(path, "delta", "ModuleNotFoundError: No module named 'gone'")
    return path
