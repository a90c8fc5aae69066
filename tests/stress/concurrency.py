"""The concurrency run: several processes of several threads each add, update, pause,
remove and read jobs of one store at once (see :mod:`.worker`); then every acknowledged
write must be there, every shared id claimed exactly once, and the integrity check clean.
The processes open (and so create) the store at the same moment.

Run ``python -m tests.stress.concurrency --seconds 60 --seed 1`` from the repository root;
it also measures how long reads take while another process holds the write lock.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from lmdbstore import LMDBJobStore

from . import started, wait_for
from .worker import MAP_SIZE, Report
from .workload import make_job, make_scheduler

_LATENCY_SAMPLES = 500


@dataclass
class ConcurrencyFigures:
    """What the run did and found."""

    processes: int
    threads: int
    seconds: float
    seed: int
    report: Report = field(default_factory=Report)
    duplicate_claims: list[str] = field(default_factory=list)
    unaccounted_claims: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    map_size: int = 0

    @property
    def ok(self) -> bool:
        report = self.report
        return not (
            report.error_count
            or report.lost
            or self.duplicate_claims
            or self.unaccounted_claims
            or self.problems
        )

    def __str__(self) -> str:
        ops = self.report.ops
        lines = [
            f"concurrency run (seed {self.seed}): {self.processes} processes x "
            f"{self.threads} threads for {self.seconds:g} s",
            f"operations: {sum(ops.values())} "
            f"({', '.join(f'{name} {count}' for name, count in ops.most_common())})",
            f"errors: {self.report.error_count}",
            f"lost or wrong reads of acknowledged writes: {len(self.report.lost)}",
            f"shared ids claimed: {len(self.report.claims)}, claimed twice: "
            f"{len(self.duplicate_claims)}, unaccounted for: {len(self.unaccounted_claims)}",
            f"integrity check problems: {len(self.problems)}",
            f"map size: {MAP_SIZE >> 10} KiB at the start, {self.map_size >> 10} KiB at the end",
            *(f"  {line}" for line in [*self.report.errors, *self.report.lost][:20]),
            *(f"  {problem}" for problem in self.problems[:20]),
        ]
        return "\n".join(lines)


def run(
    directory: Path, processes: int = 4, threads: int = 4, seconds: float = 3.0, seed: int = 1
) -> ConcurrencyFigures:
    """Run ``processes`` worker processes of ``threads`` threads on a new store in
    ``directory`` for ``seconds``."""
    path = directory / "jobs.lmdb"
    figures = ConcurrencyFigures(processes, threads, seconds, seed)
    args = ["--threads", str(threads), "--seconds", str(seconds), "--seed", str(seed)]
    with ExitStack() as stack:
        workers = [
            stack.enter_context(
                started("worker", str(path), "--name", f"p{index}", *args, stdin=subprocess.PIPE)
            )
            for index in range(processes)
        ]
        for worker in workers:
            assert worker.stdout is not None
            line = worker.stdout.readline()
            if line != "ready\n":
                figures.problems.append(f"worker {worker.pid} did not start: {line!r}")
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        for worker in workers:
            assert worker.stdout is not None
            output = worker.stdout.read()
            if worker.wait() != 0 or not output:
                figures.problems.append(f"worker {worker.pid} failed ({worker.returncode})")
            else:
                figures.report.merge(Report.from_json(output))
    store = LMDBJobStore(path, map_size=MAP_SIZE)
    try:
        figures.problems += store.check().problems
        figures.map_size = store.environment.env.info()["map_size"]
        stored = {job.id for job in store.get_all_jobs() if job.id.startswith("claim-")}
    finally:
        store.shutdown()
    claimed = Counter(figures.report.claims)
    figures.duplicate_claims = sorted(job_id for job_id, count in claimed.items() if count > 1)
    figures.unaccounted_claims = sorted(stored ^ claimed.keys())
    return figures


def read_latency(directory: Path) -> str:
    """The median time of a ``lookup_job`` with no writer, and while another process
    sits inside a write transaction, as a sentence."""
    path = directory / "latency.lmdb"
    store = LMDBJobStore(path)
    try:
        store.add_job(make_job(make_scheduler(), "job", None, "token", 100))
        idle = _median_lookup(store)
        with started("holder", str(path), "write") as holder:
            wait_for(holder, "ready")
            held = _median_lookup(store)
            assert holder.poll() is None
    finally:
        store.shutdown()
    return (
        f"lookup_job median: {idle:.1f} µs with no writer, {held:.1f} µs while another "
        "process holds a write transaction open"
    )


def _median_lookup(store: LMDBJobStore) -> float:
    times = []
    for _ in range(_LATENCY_SAMPLES):
        started_at = time.perf_counter()
        store.lookup_job("job")
        times.append(time.perf_counter() - started_at)
    return statistics.median(times) * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as directory:
        figures = run(Path(directory), args.processes, args.threads, args.seconds, args.seed)
        latency = read_latency(Path(directory))
    print(figures)
    print(latency)
    sys.exit(0 if figures.ok else 1)


if __name__ == "__main__":
    main()
