"""Crash trials: kill -9 a writer at random moments and check what survived.

Each trial starts :mod:`.writer` on a store, waits for a random number of acknowledged
writes, waits a random fraction of a write longer and kills the writer with SIGKILL. Then
the store must hold exactly every acknowledged write, plus at most the one write that was
in flight, and its integrity check must be clean. Stores start with a 1 MiB map, so that
writers are also killed while the map grows; every ``--trials-per-store`` trials a new
store begins, so that writers are also killed while a store is being created.

Run ``python -m tests.stress.crash --trials 500 --seed 1`` from the repository root.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from lmdbstore import LMDBJobStore

from . import started
from .workload import Model, Operation, apply_to_model, contents

MAP_SIZE = 1024 * 1024
_MAX_ACKS_BEFORE_KILL = 40
_MAX_EXTRA_DELAY = 0.003  # seconds: about the time one write takes


@dataclass
class CrashFigures:
    """What the trials found."""

    seed: int
    trials: int = 0
    acknowledged: int = 0
    losses: int = 0
    unexpected: int = 0
    in_flight_committed: int = 0
    in_flight_absent: int = 0
    map_growths: int = 0
    killed_during: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.losses or self.unexpected or self.failures)

    def __str__(self) -> str:
        during = ", ".join(f"{kind} {count}" for kind, count in self.killed_during.most_common())
        lines = [
            f"crash trials (seed {self.seed}): {self.trials}",
            f"acknowledged writes verified: {self.acknowledged}",
            f"losses (acknowledged writes missing): {self.losses}",
            f"unexpected changes (never acknowledged nor in flight): {self.unexpected}",
            f"write in flight at the kill: committed {self.in_flight_committed}, "
            f"absent {self.in_flight_absent}",
            f"trials in which the map grew: {self.map_growths}",
            f"killed during: {during}",
            f"other failures: {len(self.failures)}",
            *(f"  {failure}" for failure in self.failures[:20]),
        ]
        return "\n".join(lines)


def run_trials(
    directory: Path, trials: int, seed: int, trials_per_store: int = 10
) -> CrashFigures:
    """Run ``trials`` crash trials on stores in ``directory``."""
    rng = random.Random(seed)
    figures = CrashFigures(seed)
    model: Model = {}
    path = directory
    for trial in range(trials):
        if trial % trials_per_store == 0:
            path = directory / f"store-{trial // trials_per_store}"
            model = {}
        model = _run_trial(path, model, rng, trial, figures)
    return figures


def _run_trial(
    path: Path, model: Model, rng: random.Random, trial: int, figures: CrashFigures
) -> Model:
    """Run one trial on the store at ``path``, which holds ``model``; return what the
    store holds after it."""
    acks_before_kill = rng.randrange(_MAX_ACKS_BEFORE_KILL)
    delay = rng.uniform(0, _MAX_EXTRA_DELAY)
    args = ["--path", str(path), "--seed", str(rng.randrange(2**32))]
    args += ["--prefix", f"t{trial}.", "--map-size", str(MAP_SIZE)]
    lines: list[str] = []
    # The writer's standard error goes to a file: a pipe that filled up would block it.
    with tempfile.TemporaryFile("w+") as stderr, started("writer", *args, stderr=stderr) as writer:
        assert writer.stdout is not None
        acks = 0
        while acks < acks_before_kill:
            line = writer.stdout.readline()
            if not line:
                break
            lines.append(line)
            acks += line.startswith("ack ")
        time.sleep(delay)
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        lines += writer.stdout.readlines()
        stderr.seek(0)
        errors = stderr.read().strip().splitlines()
    figures.trials += 1
    if writer.returncode != -signal.SIGKILL:
        why = errors[-1] if errors else f"exit status {writer.returncode}"
        figures.failures.append(f"trial {trial}: the writer stopped by itself: {why}")
    acknowledged = dict(model)
    in_flight: Operation | None = None
    sizes = []
    for line in lines:
        if not line.endswith("\n"):
            break  # cut short by the kill
        word, _, rest = line.partition(" ")
        if word == "op":
            in_flight = json.loads(rest)
        elif word == "ack":
            assert in_flight is not None
            apply_to_model(acknowledged, in_flight)
            figures.acknowledged += 1
            in_flight = None
        if word in ("open", "ack"):
            sizes.append(int(rest))
    figures.map_growths += bool(sizes) and sizes[-1] > sizes[0]
    figures.killed_during[in_flight["kind"] if in_flight else "no write"] += 1
    with_in_flight = dict(acknowledged)
    if in_flight is not None:
        apply_to_model(with_in_flight, in_flight)
    return _verify(path, trial, acknowledged, with_in_flight, in_flight is not None, figures)


def _verify(
    path: Path,
    trial: int,
    acknowledged: Model,
    with_in_flight: Model,
    was_in_flight: bool,
    figures: CrashFigures,
) -> Model:
    if not path.exists():
        if acknowledged:
            figures.losses += len(acknowledged)
            figures.failures.append(f"trial {trial}: the store is gone")
        return {}
    store = LMDBJobStore(path, map_size=MAP_SIZE)
    try:
        found = contents(store)
        report = store.check()
    finally:
        store.shutdown()
    if not report.ok:
        figures.failures.append(f"trial {trial}: check found {report.problems}")
    if found == acknowledged:
        figures.in_flight_absent += was_in_flight
    elif found == with_in_flight:
        figures.in_flight_committed += 1
    else:
        for job_id in found.keys() | acknowledged.keys() | with_in_flight.keys():
            state = found.get(job_id)
            if state in (acknowledged.get(job_id), with_in_flight.get(job_id)):
                continue
            if job_id in acknowledged:
                figures.losses += 1
            else:
                figures.unexpected += 1
            figures.failures.append(
                f"trial {trial}: job {job_id!r} is {state}, acknowledged as "
                f"{acknowledged.get(job_id)}"
            )
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--trials-per-store", type=int, default=10)
    parser.add_argument("--directory", type=Path, help="where the stores go (default: a temp dir)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.directory) as directory:
        started_at = time.monotonic()
        figures = run_trials(Path(directory), args.trials, args.seed, args.trials_per_store)
        elapsed = time.monotonic() - started_at
    print(figures)
    print(f"elapsed: {elapsed:.0f} s")
    sys.exit(0 if figures.ok else 1)


if __name__ == "__main__":
    main()
