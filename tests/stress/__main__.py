"""Both long runs, printing the figures that ``docs/reliability.md`` reports.

Run ``python -m tests.stress --seed 1`` from the repository root: 500 crash trials (see
:mod:`.crash`), then 4 processes of 4 threads on one store for 60 s (see
:mod:`.concurrency`), then the read latency while another process holds the write lock.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .concurrency import read_latency, run
from .crash import run_trials


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, check=False
    ).stdout.strip()
    print(f"lmdbstore at {commit or 'an unknown commit'}, seed {args.seed}", flush=True)
    with tempfile.TemporaryDirectory() as directory:
        started_at = time.monotonic()
        crash_directory = Path(directory, "crash")
        crash_directory.mkdir()
        crash = run_trials(crash_directory, args.trials, args.seed)
        print(crash, f"elapsed: {time.monotonic() - started_at:.0f} s", sep="\n", flush=True)
        concurrency = run(Path(directory), seconds=args.seconds, seed=args.seed)
        print(concurrency, read_latency(Path(directory)), sep="\n")
    sys.exit(0 if crash.ok and concurrency.ok else 1)


if __name__ == "__main__":
    main()
