"""Jobs that survive a crash: a scheduler process is killed with SIGKILL, a new one opens
the same store and carries on.

Run it with ``python examples/restart_demo.py [STORE_PATH]``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler

from lmdbstore import LMDBJobStore

RUN_LOG = "runs.log"


def record_run(store_path: str, name: str) -> None:
    """The job every demo job runs: it appends a line to a log beside the store."""
    stamp = datetime.now(timezone.utc).strftime("%H:%M:%S.%f")[:-3]
    with open(Path(store_path) / RUN_LOG, "a") as log:
        log.write(f"{stamp} pid {os.getpid()} ran {name}\n")


def first_life(store_path: str) -> None:
    """Schedule jobs, let them run, then wait to be killed."""
    scheduler = BackgroundScheduler(jobstores={"default": LMDBJobStore(store_path)})
    scheduler.start()
    soon = datetime.now(timezone.utc) + timedelta(seconds=4)
    add = scheduler.add_job
    add(record_run, "interval", seconds=1, args=[store_path, "every second"], id="tick")
    add(record_run, "cron", second="*/2", args=[store_path, "cron */2"], id="cron")
    add(record_run, "date", run_date=soon, args=[store_path, "once, at +4 s"], id="once")
    add(record_run, "interval", hours=1, args=[store_path, "paused"], id="paused")
    scheduler.pause_job("paused")
    print(f"[first life, pid {os.getpid()}] scheduled 4 jobs in {store_path}", flush=True)
    time.sleep(3600)


def second_life(store_path: str) -> None:
    """Open the same store after the crash: the jobs are there and go on running."""
    scheduler = BackgroundScheduler(jobstores={"default": LMDBJobStore(store_path)})
    scheduler.start(paused=True)
    print(f"[second life, pid {os.getpid()}] found in the store:")
    for job in scheduler.get_jobs():
        when = job.next_run_time.isoformat() if job.next_run_time else "paused"
        print(f"    {job.id:<7} {job.trigger!s:<40} next run: {when}")
    scheduler.resume()
    time.sleep(4)
    scheduler.shutdown()


def main() -> None:
    store_path = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="lmdbstore-demo-")
    store_path = os.path.join(store_path, "jobs.lmdb")
    child = subprocess.Popen([sys.executable, __file__, "--first-life", store_path])
    time.sleep(2.5)
    child.send_signal(signal.SIGKILL)
    child.wait()
    print(f"[demo] killed pid {child.pid} with SIGKILL: no shutdown, no flush\n")
    second_life(store_path)
    print("\n[demo] every run, from both lives:")
    print((Path(store_path) / RUN_LOG).read_text(), end="")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--first-life"]:
        first_life(sys.argv[2])
    else:
        main()
