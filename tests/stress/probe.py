"""A process that opens a store and tries operations on it, reporting what each did.

``python -m stress.probe PATH ACTION...`` prints one JSON line per action::

    {"action": "read", "ok": true, "value": 3}
    {"action": "add", "ok": false, "error": "ReadOnlyStoreError", "message": "..."}

Actions: ``open``, ``read`` (``get_all_jobs``: the value is the number of jobs), ``add``
(one small job), ``check`` (the value says whether the check is clean), ``fill`` (jobs of
20 kB until one cannot be added: the value is how many were), ``limit`` (limits the size
of the files this process may write to what the data file has now, plus 64 kB, as
``RLIMIT_FSIZE`` does, so that writes fail with ``EFBIG``) and ``unlimit`` (lifts that
limit). An action that fails is reported, and the store stays as it is for the next one.

Run by the fault tests in a process of their own: a fault that crashed the process
(a segfault, a bus error) shows as its exit status instead of as the output.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import signal
from typing import Any

from lmdbstore import LMDBJobStore

from .workload import make_job, make_scheduler

_FILL_LIMIT = 100_000
_LIMIT_SLACK = 64 * 1024


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path")
    parser.add_argument(
        "actions", nargs="+", choices=["open", "read", "add", "check", "fill", "limit", "unlimit"]
    )
    args = parser.parse_args(argv)
    scheduler = make_scheduler()
    store: LMDBJobStore | None = None
    numbers = itertools.count()

    def add(size: int) -> None:
        assert store is not None
        number = next(numbers)
        store.add_job(make_job(scheduler, f"probe-{os.getpid()}-{number}", None, "probe", size))

    for action in args.actions:
        report: dict[str, Any] = {"action": action}
        try:
            if action == "open":
                store = LMDBJobStore(args.path)
            elif store is None:
                raise RuntimeError("the store is not open")
            elif action == "read":
                report["value"] = len(store.get_all_jobs())
            elif action == "add":
                add(100)
            elif action == "check":
                report["value"] = store.check().ok
            elif action == "fill":
                for count in range(_FILL_LIMIT):
                    report["value"] = count  # the jobs added so far
                    add(20_000)
                raise RuntimeError(f"{_FILL_LIMIT} jobs added without an error")
            elif action == "limit":
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                size = os.path.getsize(os.path.join(args.path, "data.mdb")) + _LIMIT_SLACK
                resource.setrlimit(resource.RLIMIT_FSIZE, (size, resource.RLIM_INFINITY))
            elif action == "unlimit":
                limits = (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
                resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        except Exception as exc:
            report.update(ok=False, error=type(exc).__name__, message=str(exc))
            report["bases"] = [cls.__name__ for cls in type(exc).__mro__]
        else:
            report["ok"] = True
        print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
