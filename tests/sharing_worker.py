"""A scheduler process of the sharing tests (``test_sharing.py``): one ``BackgroundScheduler``
with a thread pool executor on a shared LMDB store, writing down what it runs.

Run it as ``python -m sharing_worker STORE LOG [options]`` with the repository root and
``tests/`` on ``PYTHONPATH``. It appends to two files, flushing every line at once, so that
what a process did before a SIGKILL is still there:

- ``LOG.runs``: one line per executed run, ``job_id scheduled_run_time pid actual_time``,
  times in POSIX seconds, ``actual_time`` being when the job's function started;
- ``LOG.events``: ``ready pid`` once the scheduler runs; ``take now job_id run_time`` for
  each job a wakeup leased (``now`` is the wakeup's, ``run_time`` the job's first due run
  time); ``committing time`` and ``committed time`` around the group commit of a leased
  wakeup;
  ``stopping`` before it stops itself; ``cpu seconds`` when asked.

It reads commands from its standard input: ``cpu`` writes down the CPU time the process
has used. The end of its input shuts the scheduler down (waiting for running jobs); the
exit status is then 0, or 3 if the scheduler's thread had died.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import IO, Any

from apscheduler.events import EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from lmdbstore import LMDBJobStore
from lmdbstore.keys import decode_run_time
from lmdbstore.wakeup import WakeupBatch

THREADS = 10
DEAD_SCHEDULER_EXIT = 3
RUNS_TIMEOUT = 10.0  # seconds a kill before a commit waits for the wakeup's runs

Found = tuple[list[Any], int]  # jobs in index order, some rows still to rebuild
Versions = dict[bytes, tuple[bytes, bytes]]  # the run time key and stamp of each job
RunKey = tuple[str, str]  # job id, scheduled run time as written in the logs


def started_at() -> float:
    """The test jobs' function: it returns when it started, for the run log."""
    return time.time()


def seconds_text(moment: datetime) -> str:
    return f"{moment.timestamp():.6f}"


class Log:
    """A file that hands each line to the operating system as it comes."""

    def __init__(self, path: str) -> None:
        self._file: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115
        self._lock = threading.Lock()

    def write(self, line: str) -> None:
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()


class Executed:
    """The runs this process has executed and written down, to wait for."""

    def __init__(self) -> None:
        self._runs: set[RunKey] = set()
        self._changed = threading.Condition()

    def add(self, run: RunKey) -> None:
        with self._changed:
            self._runs.add(run)
            self._changed.notify_all()

    def wait_for(self, runs: set[RunKey], timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: runs <= self._runs, timeout)


def cpu_seconds() -> float:
    """CPU time (user and system, every thread) this process has used."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def kill_myself() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def instrument(
    store: LMDBJobStore,
    events: Log,
    executed: Executed,
    take_delay: float,
    take_write_delay: float,
    kill_at_take: int,
    kill_before_commit: int,
    stop_at_take: int,
) -> None:
    """Write down the store's lease takes and group commits. Wait ``take_delay`` seconds
    before each take (a handicap in the race for due jobs), ``take_write_delay`` seconds
    between a take's look at the due jobs and its write (a window in which another
    scheduler may lease them). Die by SIGKILL at the
    ``kill_at_take``-th take that leases jobs, before it returns (so that the scheduler runs
    none of them), or at the ``kill_before_commit``-th leased group commit, once the runs
    of its wakeup were executed and written down; stop (SIGSTOP, until someone sends
    SIGCONT) at the ``stop_at_take``-th take that leases jobs, before it returns (0: never)."""
    take_due: Callable[[datetime, bytes, Versions], Found] = store._take_due
    commit_batch: Callable[[WakeupBatch], None] = store._commit_batch
    write: Callable[[Callable[[Any], Found]], Found] = store._write
    takes = commits = 0
    taken: set[RunKey] = set()
    taking = False

    def delayed_write(operation: Callable[[Any], Found]) -> Found:
        if taking:
            time.sleep(take_write_delay)
        return write(operation)

    def logged_take_due(now: datetime, limit: bytes, versions: Versions) -> Found:
        nonlocal takes, taken, taking
        if take_delay:
            time.sleep(take_delay)
        taking = True
        try:
            found = take_due(now, limit, versions)
        finally:
            taking = False
        taken = set()
        for id_key, (run_key, _stamp) in versions.items():
            first = decode_run_time(run_key)
            assert first is not None  # paused jobs are never due
            run = (id_key.decode(), seconds_text(first))
            events.write(f"take {seconds_text(now)} {run[0]} {run[1]}")
            taken.add(run)
        leased = bool(found[0])
        takes += leased
        if leased and takes == kill_at_take:
            kill_myself()
        if leased and takes == stop_at_take:
            events.write("stopping")
            os.kill(os.getpid(), signal.SIGSTOP)
        return found

    def logged_commit_batch(batch: WakeupBatch) -> None:
        nonlocal commits
        if not batch.leased:
            commit_batch(batch)
            return
        commits += 1
        if commits == kill_before_commit and executed.wait_for(taken, RUNS_TIMEOUT):
            kill_myself()
        events.write(f"committing {time.time():.6f}")
        commit_batch(batch)
        events.write(f"committed {time.time():.6f}")

    store._take_due = logged_take_due
    if take_write_delay:
        store._write = delayed_write
    store._commit_batch = logged_commit_batch


def parse_lease(text: str) -> float | None:
    return None if text == "none" else float(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("store")
    parser.add_argument("log", help="path prefix of the .runs and .events files")
    parser.add_argument("--lease", type=parse_lease, default=30.0, help='seconds, or "none"')
    parser.add_argument("--take-delay", type=float, default=0.0, metavar="SECONDS")
    parser.add_argument("--take-write-delay", type=float, default=0.0, metavar="SECONDS")
    parser.add_argument("--kill-at-take", type=int, default=0, metavar="N")
    parser.add_argument("--kill-before-commit", type=int, default=0, metavar="N")
    parser.add_argument("--stop-at-take", type=int, default=0, metavar="N")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")

    pid = os.getpid()
    runs = Log(args.log + ".runs")
    events = Log(args.log + ".events")
    executed = Executed()
    store = LMDBJobStore(args.store, lease=args.lease)
    instrument(
        store,
        events,
        executed,
        args.take_delay,
        args.take_write_delay,
        args.kill_at_take,
        args.kill_before_commit,
        args.stop_at_take,
    )

    def write_run(event: JobExecutionEvent) -> None:
        run = (event.job_id, seconds_text(event.scheduled_run_time))
        runs.write(f"{run[0]} {run[1]} {pid} {event.retval:.6f}")
        executed.add(run)

    scheduler = BackgroundScheduler(
        jobstores={"default": store},
        executors={"default": ThreadPoolExecutor(THREADS)},
        timezone=timezone.utc,
    )
    scheduler.add_listener(write_run, EVENT_JOB_EXECUTED)
    scheduler.start()
    events.write(f"ready {pid}")
    for command in sys.stdin:
        if command.strip() == "cpu":
            events.write(f"cpu {cpu_seconds():.6f}")
    alive = scheduler._thread.is_alive()
    scheduler.shutdown(wait=True)
    runs.close()
    events.close()
    return 0 if alive else DEAD_SCHEDULER_EXIT


if __name__ == "__main__":
    sys.exit(main())
