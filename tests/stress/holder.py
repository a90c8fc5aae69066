"""A process that holds a store in a given state until it is killed.

``python -m stress.holder PATH MODE``, where MODE is one of:

- ``read``: sits inside a read transaction of the store;
- ``get_all_jobs``: calls ``get_all_jobs()`` over and over;
- ``write``: sits inside a write transaction of the store that has written (but not
  committed) the meta key :data:`UNCOMMITTED`;
- ``grow``: adds one job of :data:`GROWING_JOB_SIZE` bytes, which makes a map of 1 MiB
  grow several times; it prints ``added`` once ``add_job`` has returned.

It prints ``ready`` once it is in that state (for ``get_all_jobs`` and ``grow``: just
before its first call).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from lmdbstore import LMDBJobStore

from .workload import make_job, make_scheduler

UNCOMMITTED = b"holder-uncommitted"
GROWING_JOB_ID = "growing"
GROWING_JOB_SIZE = 24 * 1024 * 1024
_FOREVER = 3600.0


def _say_and_wait(word: str) -> None:
    print(word, flush=True)
    time.sleep(_FOREVER)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path")
    parser.add_argument("mode", choices=["read", "get_all_jobs", "write", "grow"])
    args = parser.parse_args(argv)
    store = LMDBJobStore(args.path, map_size=1024 * 1024)
    environment = store.environment
    if args.mode == "read":
        environment.read(lambda txn: _say_and_wait("ready"))
    elif args.mode == "write":

        def write(txn: Any) -> None:
            txn.put(UNCOMMITTED, b"never committed", db=environment.meta)
            _say_and_wait("ready")

        environment.write(write)
    elif args.mode == "grow":
        job = make_job(make_scheduler(), GROWING_JOB_ID, None, "grown", GROWING_JOB_SIZE)
        print("ready", flush=True)
        store.add_job(job)
        _say_and_wait("added")
    else:
        print("ready", flush=True)
        while True:
            store.get_all_jobs()
    sys.exit("the holder was not killed in time")


if __name__ == "__main__":
    main()
