"""``python -m benchmarks.commit_floor``: what a durable ``add_job`` costs at its floor.

In one run, on one file system, at one N (100,000 by default), the median cost of:

- commits as LMDB makes them, in a file as long as the store's: 4 KiB pages written (one
  or nine at random places, or nine adjacent), ``fdatasync``, then a 120-byte ``O_DSYNC``
  write (LMDB's meta page);
- a bare py-lmdb commit of an add: an environment opened as the store opens it, holding
  the N records LMDBJobStore wrote for the plan's jobs (under random ids as long as
  theirs) and their index entries, with written room past its pages; one transaction
  puts one of those records under a new id, and its index entry;
- ``LMDBJobStore.add_job`` and ``SQLAlchemyJobStore.add_job`` (SQLite), their stores
  holding the plan's N jobs;

and SQLite's cost over each. Results go to ``benchmarks/results/commit-floor.md``.
"""

from __future__ import annotations

import argparse
import os
import pickle
import random
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import lmdb
from apscheduler.job import Job
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.util import datetime_to_utc_timestamp

from lmdbstore import LMDBJobStore
from lmdbstore.keys import index_key, job_key
from lmdbstore.records import record_run_key, record_stamp

from .jobs import TIMEZONE, JobPlan
from .report import machine_line, number, ratio
from .results import machine_info
from .timing import Budget, median, percentile, time_calls
from .wakeup import ALIAS, ManualScheduler

ADDS = 1000
PAGE = 4096
RESULTS = Path(__file__).resolve().parent / "results" / "commit-floor.md"
Case = tuple[str, list[float]]


def disk_floor(directory: Path, length: int, budget: Budget) -> list[Case]:
    """Commits as LMDB makes them, in a file of ``length`` bytes: pages written (one or
    nine at random places, or nine adjacent), ``fdatasync``, then a 120-byte
    ``O_DSYNC`` write of a meta page."""
    path = directory / "floor.dat"
    with open(path, "wb") as file:  # written, not sparse: no write allocates a block
        for _ in range(0, length, 1024 * 1024):
            file.write(bytes(1024 * 1024))
        os.fsync(file.fileno())
    data = os.open(path, os.O_RDWR)
    meta = os.open(path, os.O_RDWR | os.O_DSYNC)
    head, pages, block = os.urandom(120), length // PAGE - 16, os.urandom(9 * PAGE)
    rng = random.Random(1)

    def commit(count: int, adjacent: bool) -> Callable[[object], None]:
        def write(_: object) -> None:
            if adjacent:
                os.pwrite(data, block[: count * PAGE], rng.randrange(2, pages) * PAGE)
            else:
                for page in sorted(rng.sample(range(2, pages), count)):
                    os.pwrite(data, block[:PAGE], page * PAGE)
            os.fdatasync(data)
            os.pwrite(meta, head, rng.choice((16, PAGE + 16)))

        return write

    kinds = (
        ("1 page", 1, False),
        ("9 pages all over it", 9, False),
        ("9 adjacent pages", 9, True),
    )
    try:
        return [
            (
                f"disk: {label}, fdatasync, a 120-byte O_DSYNC write",
                time_calls(commit(count, adjacent), [None] * ADDS, budget)[0],
            )
            for label, count, adjacent in kinds
        ]
    finally:
        os.close(data)
        os.close(meta)


def bare_lmdb(directory: Path, store: LMDBJobStore, budget: Budget) -> tuple[list[float], int]:
    """Adds by bare py-lmdb to a copy of ``store``'s records and index; and the length of
    its data file."""
    with store.environment.env.begin() as txn:
        records = [record for _, record in txn.cursor(store.environment.jobs)]
    path = directory / "bare"
    # Opened as LMDBJobStore opens its environment with durability="full".
    env = lmdb.open(str(path), map_size=4 * PAGE * len(records), max_dbs=2, readahead=False)
    jobs, index = env.open_db(b"jobs"), env.open_db(b"index")

    def put(txn: Any, record: bytes) -> None:
        key = job_key(os.urandom(16).hex().encode())
        txn.put(key, record, db=jobs, overwrite=False)
        txn.put(index_key(record_run_key(record), key), record_stamp(record), db=index)

    with env.begin(write=True) as txn:
        for record in records:
            put(txn, record)
    data = path / "data.mdb"
    with open(data, "ab") as file:  # room past the pages, as the store keeps
        file.write(bytes(4 * 1024 * 1024))
    rng = random.Random(2)

    def add(_: object) -> None:
        with env.begin(write=True) as txn:
            put(txn, records[rng.randrange(len(records))])

    try:
        return time_calls(add, [None] * ADDS, budget)[0], data.stat().st_size
    finally:
        env.close()


def sqlite_store(directory: Path, jobs: list[Job]) -> SQLAlchemyJobStore:
    """SQLAlchemyJobStore on a SQLite file holding ``jobs``, written in one transaction
    (row for row what its ``add_job`` writes)."""
    store = SQLAlchemyJobStore(url=f"sqlite:///{directory / 'jobs.sqlite'}")
    store.start(ManualScheduler(), ALIAS)
    rows = [
        {
            "id": job.id,
            "next_run_time": datetime_to_utc_timestamp(job.next_run_time),
            "job_state": pickle.dumps(job.__getstate__(), store.pickle_protocol),
        }
        for job in jobs
    ]
    with store.engine.begin() as connection:
        connection.execute(store.jobs_t.insert(), rows)
    return store


def measure(size: int, budget: Budget) -> list[Case]:
    plan = JobPlan(size, min(1000, size))
    scheduler = ManualScheduler()
    now = datetime.now(TIMEZONE)
    with tempfile.TemporaryDirectory(prefix="lmdbstore-floor-") as workdir:
        directory = Path(workdir)
        ours = LMDBJobStore(directory / "jobs.lmdb")
        ours.start(scheduler, ALIAS)
        ours.add_jobs(plan.jobs(scheduler, now))
        bare, length = bare_lmdb(directory, ours, budget)
        theirs = sqlite_store(directory, plan.jobs(scheduler, now))
        cases = [
            *disk_floor(directory, length, budget),
            ("bare py-lmdb: a record and its index entry, one commit", bare),
            ("LMDBJobStore.add_job", _adds(ours, plan, scheduler, now, budget)),
            ("SQLAlchemyJobStore.add_job (SQLite)", _adds(theirs, plan, scheduler, now, budget)),
        ]
        ours.shutdown()
        theirs.shutdown()
    return cases


def _adds(store: Any, plan: JobPlan, scheduler: Any, now: datetime, budget: Budget) -> list[float]:
    add: Callable[[Job], None] = store.add_job
    return time_calls(add, plan.extra_jobs(scheduler, now, ADDS), budget)[0]


def markdown(size: int, cases: list[Case]) -> str:
    sqlite = median(cases[-1][1])
    lines = [
        "# What a durable add costs at its floor",
        "",
        machine_line(machine_info()),
        "",
        f"N = {size:,}; median and p90 of up to {ADDS:,} adds each, in one run "
        "(`python -m benchmarks.commit_floor`).",
        "",
        "| what is timed | median (µs) | p90 (µs) | SQLite's add_job over it |",
        "|---|---:|---:|---:|",
    ]
    for label, samples in cases:
        cost = median(samples)
        lines.append(
            f"| {label} | {number(cost / 1e3)} | {number(percentile(samples, 0.9) / 1e3)} "
            f"| {ratio(sqlite / cost)} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.commit_floor", description=__doc__)
    parser.add_argument("--size", type=int, default=100_000, help="jobs N (default 100000)")
    parser.add_argument("--budget", type=float, default=3.0, help="seconds per case (default 3)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="the Markdown file to write")
    options = parser.parse_args()
    if options.size < 1:
        parser.error("--size must be at least 1")
    report = markdown(options.size, measure(options.size, Budget(options.budget, 20, ADDS)))
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(report)
    print(report, end="")


if __name__ == "__main__":
    main()
