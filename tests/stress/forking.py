"""What the fork tests run in child processes, and the snapshot-across-fork scenario.

:func:`write_jobs` is the work of a child (forked, or spawned by :mod:`multiprocessing`):
it checks what the store holds and adds jobs, one commit each.

``python -m stress.forking PATH METHOD`` runs :func:`snapshot_across_fork` in a process of
its own (a parent whose snapshot is damaged may read freed pages, so not in pytest's
process) and prints its findings as JSON.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import multiprocessing
import os
import signal
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from lmdbstore import LMDBJobStore

from .workload import Model, contents, make_job, make_scheduler

METHODS = ("os.fork", "multiprocessing fork", "multiprocessing spawn")
CHILD_TIMEOUT = 120.0
_START = datetime(2030, 1, 1, tzinfo=timezone.utc)


def child_job_ids(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{index}" for index in range(count)]


def write_jobs(store: LMDBJobStore | str, prefix: str, count: int, expected: Model) -> None:
    """Check that the store (an object, or a path to open) holds at least ``expected``,
    then add the jobs :func:`child_job_ids` names, one commit each."""
    job_store = LMDBJobStore(store) if isinstance(store, str) else store
    try:
        found = contents(job_store)
        wrong = sorted(job_id for job_id, state in expected.items() if found.get(job_id) != state)
        if wrong:
            raise AssertionError(f"the child reads other jobs than the parent wrote: {wrong}")
        scheduler = make_scheduler()
        for index, job_id in enumerate(child_job_ids(prefix, count)):
            run_time = _START + timedelta(minutes=index)
            job_store.add_job(make_job(scheduler, job_id, run_time, prefix, 100))
    finally:
        if job_store is not store:
            job_store.shutdown()


def run_child(method: str, function: Callable[..., None], *args: Any) -> int:
    """Run ``function(*args)`` in a child process started by ``method`` (one of
    :data:`METHODS`); return the child's exit code (0: it returned; negative: the signal
    that ended it). A child still running after :data:`CHILD_TIMEOUT` is killed."""
    if method == "os.fork":
        pid = os.fork()
        if pid == 0:  # never return into the parent's code
            code = 1
            try:
                _report_if_hung()
                function(*args)
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        deadline = time.monotonic() + CHILD_TIMEOUT
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)
    context = (
        multiprocessing.get_context("spawn")
        if method.endswith("spawn")
        else multiprocessing.get_context("fork")
    )
    process = context.Process(target=_run_reporting_if_hung, args=(function, *args))
    process.start()
    process.join(timeout=CHILD_TIMEOUT)
    if process.exitcode is None:
        process.kill()
        process.join()
    assert process.exitcode is not None
    return process.exitcode


def _report_if_hung() -> None:
    """Have this child print the stack of each of its threads to its standard error
    if it is still running shortly before :func:`run_child` kills it."""
    faulthandler.dump_traceback_later(CHILD_TIMEOUT - 5.0, exit=False)


def _run_reporting_if_hung(function: Callable[..., None], *args: Any) -> None:
    _report_if_hung()
    function(*args)


def snapshot_across_fork(path: str, method: str, commits: int = 300) -> dict[str, Any]:
    """The parent begins a read transaction on its store, starts a child that makes
    ``commits`` commits, and reads on in the same transaction; return what it found."""
    store = LMDBJobStore(path)
    scheduler = make_scheduler()
    store.add_jobs([make_job(scheduler, f"job-{n}", _START, "parent", 1000) for n in range(50)])
    environment = store.environment
    txn = environment.env.begin()
    try:
        before = dict(txn.cursor(db=environment.jobs))
        target: Any = store.path if method.endswith("spawn") else store
        exit_code = run_child(method, write_jobs, target, "child-", commits, {})
        slot_kept = str(os.getpid()) in environment.env.readers().split()
        after = dict(txn.cursor(db=environment.jobs))
    finally:
        txn.abort()
    now = contents(store)
    findings = {
        "child_exit_code": exit_code,
        "snapshot_intact": after == before,
        "slot_kept": slot_kept,
        "later_reads_see_the_child": set(child_job_ids("child-", commits)) <= now.keys(),
        "check_ok": store.check().ok,
    }
    store.shutdown()
    return findings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path")
    parser.add_argument("method", choices=METHODS)
    args = parser.parse_args(argv)
    print(json.dumps(snapshot_across_fork(args.path, args.method)), flush=True)


if __name__ == "__main__":
    main()
