"""Several schedulers, in several processes, on one store (issue 5): each run fires once, a
killed scheduler's runs go to the others once its lease ends, and what another process
changes is acted on at once.

Every scheduler here is a process of its own (``sharing_worker``) that writes down each
run it executes. The tests print their figures (``pytest tests/test_sharing.py -s``, with
``--slow`` for the long runs); ``docs/sharing.md`` reports them.
"""

from __future__ import annotations

import math
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, NamedTuple

import pytest
from apscheduler.job import Job
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from lmdbstore import LMDBJobStore

TESTS = Path(__file__).parent
UTC = timezone.utc
SECOND = 1_000_000  # microseconds: run times are compared as integers of them
JOB_FUNCTION = "sharing_worker:started_at"
JOB_IDS = [f"job{n:03}" for n in range(100)]
WORKERS = 4
LEASE = 2.0
PICKUP_BOUND = 0.1  # seconds: the spec's bound on acting on a change made elsewhere
RETRIES = 2  # extra tries of a timing sample that missed its bound
SEED = 5
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
# A scheduler never started: jobs built here need one for its time zone only.
OWNER = BackgroundScheduler(timezone=UTC)


def microseconds(text: str) -> int:
    """Parse POSIX seconds written with six decimals, exactly."""
    whole, _, fraction = text.partition(".")
    return int(whole) * SECOND + int(fraction.ljust(6, "0"))


def sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


class Run(NamedTuple):
    """One line of a worker's run log: a run executed."""

    job_id: str
    scheduled: int
    pid: int
    actual: float

    @property
    def key(self) -> tuple[str, int]:
        return self.job_id, self.scheduled

    @property
    def delay(self) -> float:
        """Seconds from the run's scheduled time to its start."""
        return self.actual - self.scheduled / SECOND


def whole_lines(path: Path) -> list[list[str]]:
    """The complete lines of a log file (a kill may cut the last one), split in fields."""
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    return [line.split() for line in text.splitlines(keepends=True) if line.endswith("\n")]


class Worker:
    """A scheduler process (``sharing_worker``) on a store, and the files it writes."""

    def __init__(self, store: Path, log: Path, options: Sequence[str]) -> None:
        self.log = log
        self.killed = False
        self._stderr: IO[str] = open(f"{log}.stderr", "w", encoding="utf-8")  # noqa: SIM115
        paths = [str(TESTS.parent), str(TESTS), os.environ.get("PYTHONPATH", "")]
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
        command = [sys.executable, "-m", "sharing_worker", str(store), str(log), *options]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            env=environment,
            text=True,
        )
        self.pid = self.process.pid

    def events(self) -> list[list[str]]:
        return whole_lines(Path(f"{self.log}.events"))

    def runs(self) -> list[Run]:
        return [
            Run(job_id, microseconds(scheduled), int(pid), float(actual))
            for job_id, scheduled, pid, actual in whole_lines(Path(f"{self.log}.runs"))
        ]

    def stderr(self) -> str:
        return Path(f"{self.log}.stderr").read_text(encoding="utf-8")

    def wait_ready(self, deadline: float) -> None:
        while not any(fields[0] == "ready" for fields in self.events()):
            if self.process.poll() is not None or time.time() > deadline:
                pytest.fail(f"worker {self.log.name} did not start:\n{self.stderr()}")
            time.sleep(0.05)

    def cpu(self) -> float:
        """The CPU seconds the process has used, as it reports them."""
        asked = sum(fields[0] == "cpu" for fields in self.events())
        assert self.process.stdin is not None
        self.process.stdin.write("cpu\n")
        self.process.stdin.flush()
        deadline = time.time() + READY_TIMEOUT
        while time.time() < deadline:
            answers = [float(fields[1]) for fields in self.events() if fields[0] == "cpu"]
            if len(answers) > asked:
                return answers[-1]
            time.sleep(0.01)
        pytest.fail(f"worker {self.log.name} did not report its CPU time")

    def kill(self) -> None:
        self.killed = True
        self.process.send_signal(signal.SIGKILL)

    def close_input(self) -> None:
        if self.process.stdin is not None and not self.process.stdin.closed:
            with suppress(BrokenPipeError):  # it is dead already
                self.process.stdin.close()

    def stop(self) -> None:
        """Have the worker shut its scheduler down; kill it if it does not."""
        self.close_input()
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._stderr.close()

    def check_exit(self) -> None:
        """It ended by the kill it was meant to end by, or else cleanly."""
        expected = -signal.SIGKILL if self.killed else 0
        assert self.process.returncode == expected, self.stderr()
        assert "Traceback" not in self.stderr(), self.stderr()


@contextmanager
def running(store: Path, log: Path, options: Sequence[Sequence[str]]) -> Iterator[list[Worker]]:
    """Start a worker on ``store`` for each list of ``options`` (logs named from ``log``)
    and wait until all are ready; at the end stop every one, whatever happened."""
    workers: list[Worker] = []
    try:
        for number, worker_options in enumerate(options):
            workers.append(Worker(store, Path(f"{log}-{number}"), worker_options))
        deadline = time.time() + READY_TIMEOUT
        for worker in workers:
            worker.wait_ready(deadline)
        yield workers
    finally:
        for worker in workers:
            worker.close_input()  # all of them stop at once
        for worker in workers:
            worker.stop()


@contextmanager
def opened(path: Path) -> Iterator[LMDBJobStore]:
    """The store at ``path`` as another process sees it: opened, never started."""
    store = LMDBJobStore(path)
    try:
        yield store
    finally:
        store.shutdown()


def make_job(job_id: str, trigger: BaseTrigger, run_time: datetime) -> Job:
    return Job(
        OWNER,
        id=job_id,
        func=JOB_FUNCTION,
        trigger=trigger,
        executor="default",
        args=(),
        kwargs={},
        name=job_id,
        misfire_grace_time=None,
        coalesce=False,
        max_instances=1,
        next_run_time=run_time,
    )


def interval_job(job_id: str, seconds: float, start: datetime) -> Job:
    return make_job(
        job_id, IntervalTrigger(seconds=seconds, start_date=start, timezone=UTC), start
    )


def date_job(job_id: str, run_time: datetime) -> Job:
    return make_job(job_id, DateTrigger(run_time, UTC), run_time)


def at(seconds: float) -> datetime:
    """POSIX seconds as an aware datetime, to the microsecond."""
    return datetime.fromtimestamp(round(seconds, 6), UTC)


# -- many schedulers, one store, interval jobs ----------------------------------------------


class Tally:
    """Which (job, scheduled run time) pairs were executed how often, against the pairs a
    shared run must have executed: every whole second from ``start`` to ``stop``, without
    the first and last second."""

    def __init__(self, runs: Iterable[Run], start: int, stop: float) -> None:
        self.executions = Counter(run.key for run in runs)
        last = microseconds(f"{stop:.6f}") - SECOND
        run_times = range(start + SECOND, last + 1, SECOND)
        self.expected = {(job_id, moment) for job_id in JOB_IDS for moment in run_times}
        self.duplicates = {key: n for key, n in self.executions.items() if n > 1}
        self.misses = sorted(self.expected - self.executions.keys())
        self.strays = sorted(
            (job_id, moment)
            for job_id, moment in self.executions
            if moment < start or (moment - start) % SECOND
        )

    @property
    def extra_executions(self) -> int:
        return sum(n - 1 for n in self.duplicates.values())

    def __str__(self) -> str:
        return (
            f"{sum(self.executions.values())} runs executed, {len(self.expected)} expected; "
            f"duplicates: {self.extra_executions}, misses: {len(self.misses)}, "
            f"stray run times: {len(self.strays)}"
        )


@dataclass
class Wakeup:
    """A leased wakeup of one worker, as its event log tells it."""

    now: int
    taken: set[tuple[str, int]] = field(default_factory=set)
    committing: bool = False
    committed: bool = False
    committed_at: float = 0.0

    @property
    def seconds(self) -> float:
        """From the wakeup's ``now`` to the end of its commit."""
        return self.committed_at - self.now / SECOND

    def take(self, job_id: str, first: int) -> None:
        """Add the runs of interval job ``job_id``, due from ``first`` up to ``now``."""
        self.taken.update((job_id, moment) for moment in range(first, self.now + 1, SECOND))


def wakeups(events: Iterable[list[str]]) -> list[Wakeup]:
    """The leased wakeups in a worker's event log, in order."""
    found: list[Wakeup] = []
    for kind, *values in events:
        if kind == "take":
            now = microseconds(values[0])
            if not found or found[-1].now != now:
                found.append(Wakeup(now))
            found[-1].take(values[1], microseconds(values[2]))
        elif kind == "committing":
            found[-1].committing = True
        elif kind == "committed":
            found[-1].committed = True
            found[-1].committed_at = float(values[0])
    return found


@dataclass
class Sharing:
    """What the workers of one shared run did."""

    workers: list[Worker]
    start: int
    stop: float
    runs: list[Run]

    @property
    def tally(self) -> Tally:
        return Tally(self.runs, self.start, self.stop)

    def shares(self) -> str:
        counts = Counter(run.pid for run in self.runs)
        return ", ".join(f"{worker.pid}: {counts[worker.pid]}" for worker in self.workers)


During = Callable[[list[Worker], float], None]


def share_interval_jobs(
    tmp_path: Path, options: Sequence[Sequence[str]], seconds: float, during: During | None = None
) -> Sharing:
    """Run a worker per list of ``options`` on one store holding the JOB_IDS interval jobs that
    fire every second from a common whole second on, for ``seconds`` from then (longer if
    ``during``, called with the workers and that start, takes longer); check the store."""
    path = tmp_path / "jobs.lmdb"
    with opened(path) as store:
        with running(path, tmp_path / "worker", options) as workers:
            start = math.ceil(time.time() + 0.5)
            store.add_jobs(interval_job(job_id, 1, at(start)) for job_id in JOB_IDS)
            if during is not None:
                during(workers, start)
            # Stop between run times: APScheduler's loop runs one more wakeup after
            # shutdown(), and would lose what is due then (see test_a_stopped_scheduler_...).
            sleep_until(start + seconds + 0.5)
            stop = time.time()
        report = store.check()
    assert report.ok, report
    for worker in workers:
        worker.check_exit()
    runs = [run for worker in workers for run in worker.runs()]
    return Sharing(workers, start * SECOND, stop, runs)


@pytest.mark.parametrize(
    "seconds", [pytest.param(5, id="5s"), pytest.param(20, id="20s", marks=pytest.mark.slow)]
)
def test_four_schedulers_run_each_run_time_once(tmp_path: Path, seconds: float) -> None:
    sharing = share_interval_jobs(tmp_path, [[]] * WORKERS, seconds)
    tally = sharing.tally
    lengths = [
        wakeup.seconds * 1000
        for worker in sharing.workers
        for wakeup in wakeups(worker.events())
        if wakeup.committed
    ]
    print(f"\nexactly once, {WORKERS} schedulers, {seconds} s: {tally}")
    print(
        f"runs by process: {sharing.shares()}; {len(lengths)} leased wakeups, from their now "
        f"to their commit: p50 {percentile(lengths, 0.5):.1f} ms, max {max(lengths):.1f} ms"
    )
    assert not tally.duplicates
    assert not tally.misses
    assert not tally.strays


def wait_for_event(worker: Worker, kind: str, deadline: float) -> None:
    while not any(fields[0] == kind for fields in worker.events()):
        if time.time() > deadline:
            pytest.fail(f"worker {worker.log.name} never wrote {kind!r}")
        time.sleep(0.01)


@pytest.mark.parametrize(
    "interruption, doubled",
    [
        pytest.param("--kill-at-take", False, id="killed-after-its-lease"),
        pytest.param("--kill-before-commit", True, id="killed-after-its-runs-before-its-commit"),
        pytest.param("--stop-at-take", True, id="hung-past-its-lease", marks=pytest.mark.slow),
    ],
)
def test_a_scheduler_interrupted_in_its_wakeup(
    tmp_path: Path, interruption: str, doubled: bool
) -> None:
    """One worker is interrupted in its second leased wakeup: killed right after taking the
    lease (it ran none of those runs), or killed once it ran them but before its wakeup's
    commit, or stopped right after taking the lease until the lease has ended. The three
    others (handicapped so that the first one always wins the race for due jobs) run that
    wakeup's runs when the lease ends, within lease + 1 s: once, or a second time if the
    interrupted one ran them (no scheduler can know it did) or runs them when it goes on."""
    lease = ["--lease", str(LEASE)]
    options = [[*lease, interruption, "2"]] + [[*lease, "--take-delay", "0.05"]] * (WORKERS - 1)

    def interrupt(workers: list[Worker], start: float) -> None:
        first = workers[0]
        deadline = start + 10
        if interruption == "--stop-at-take":
            wait_for_event(first, "stopping", deadline)
            time.sleep(LEASE + 1.5)
            first.process.send_signal(signal.SIGCONT)
            time.sleep(1)  # for it to run what it had taken
            return
        first.killed = True
        try:
            first.process.wait(deadline - time.time())
        except subprocess.TimeoutExpired:
            pytest.fail("the worker never reached its kill point")
        time.sleep(LEASE + 1.5)

    sharing = share_interval_jobs(tmp_path, options, 4, interrupt)
    first = sharing.workers[0]
    interrupted = wakeups(first.events())[1]
    own = Counter(run.key for run in sharing.runs if run.pid == first.pid)
    taken_over = [
        run for run in sharing.runs if run.key in interrupted.taken and run.pid != first.pid
    ]
    delays = [run.delay for run in taken_over]
    tally = sharing.tally
    print(
        f"\n{interruption[2:]} 2: {len(interrupted.taken)} runs leased, of which it executed "
        f"{sum(own[key] for key in interrupted.taken)}; the others ran them "
        f"{min(delays):.3f}-{max(delays):.3f} s after their time (bound {LEASE + 1} s)"
    )
    print(f"{tally}; runs by process: {sharing.shares()}")
    assert Counter(run.key for run in taken_over) == Counter(interrupted.taken)
    assert max(delays) <= LEASE + 1
    assert all(own[key] == int(doubled) for key in interrupted.taken)
    assert tally.duplicates == (dict.fromkeys(interrupted.taken, 2) if doubled else {})
    assert not tally.misses
    assert not tally.strays


@pytest.mark.parametrize(
    "seconds, kills",
    [
        pytest.param(6, 1, id="6s-1-kill"),
        pytest.param(20, 3, id="20s-3-kills", marks=pytest.mark.slow),
    ],
)
def test_schedulers_killed_at_random_moments(tmp_path: Path, seconds: float, kills: int) -> None:
    """SIGKILL random workers (seeded) at random moments of their wakeups: a random 0-8 ms
    (about a wakeup's length here) after each next takes a lease, or at a set moment if it
    takes none (a uniform moment would nearly always find it asleep). A kill between a
    wakeup's lease and its commit hands the wakeup's runs to the others when the lease ends;
    those the dead worker had executed run twice (at least once). A kill between the commit
    and the runs loses those it had not executed yet (at most once, as with APScheduler
    alone: the executor's queue dies with the process). Any other duplicate or miss is a
    failure."""
    rng = random.Random(SEED)
    victims = rng.sample(range(WORKERS), kills)
    watch_from = sorted(rng.sample(range(1, int(seconds - 2 * LEASE)), kills))

    def kill_in_wakeups(workers: list[Worker], start: float) -> None:
        for victim, second in zip(victims, watch_from, strict=True):
            sleep_until(start + second)
            kill_in_a_wakeup(workers[victim], rng.uniform(0, 0.008), start + second + LEASE)

    sharing = share_interval_jobs(
        tmp_path, [["--lease", str(LEASE)]] * WORKERS, seconds, kill_in_wakeups
    )
    tally = sharing.tally
    doubled_in_flight: set[tuple[str, int]] = set()
    lost_in_flight: set[tuple[str, int]] = set()
    landed = []
    for victim in victims:
        worker = sharing.workers[victim]
        done = {run.key for run in worker.runs()}
        last = (wakeups(worker.events()) or [Wakeup(0)])[-1]
        if not last.committed:
            doubled_in_flight |= last.taken & done
        if last.committing:
            lost_in_flight |= last.taken - done
        landed.append(f"worker {victim} {where_the_kill_landed(last, done)}")
    unexplained_duplicates = {
        key: n for key, n in tally.duplicates.items() if n > 2 or key not in doubled_in_flight
    }
    unexplained_misses = [key for key in tally.misses if key not in lost_in_flight]
    print(
        f"\nrandom kills (seed {SEED}): {'; '.join(landed)}\n{tally}; of which duplicates of "
        f"runs executed before a commit that never came: "
        f"{len(tally.duplicates) - len(unexplained_duplicates)}, misses of runs committed "
        f"but not executed before the kill: {len(tally.misses) - len(unexplained_misses)}"
    )
    print(f"runs by process: {sharing.shares()}")
    assert not unexplained_duplicates
    assert not unexplained_misses
    assert not tally.strays


def kill_in_a_wakeup(worker: Worker, delay: float, deadline: float) -> None:
    """SIGKILL ``worker`` ``delay`` seconds after it next writes a lease take down, or at
    ``deadline`` if it takes none by then."""
    with open(f"{worker.log}.events", encoding="utf-8") as events:
        events.seek(0, os.SEEK_END)
        while time.time() < deadline:
            if "\ntake " in "\n" + events.read():
                time.sleep(delay)
                break
            time.sleep(0.002)
    worker.kill()


def where_the_kill_landed(last: Wakeup, executed: set[tuple[str, int]]) -> str:
    """Where in its last leased wakeup a worker was killed, as its logs tell."""
    ran = len(last.taken & executed)
    runs = f"{ran} of its {len(last.taken)} runs executed"
    if not last.taken:
        return "having never taken a lease"
    if last.committed:
        return f"after its last wakeup's commit ({runs})"
    if last.committing:
        return f"during a wakeup's commit ({runs})"
    return f"inside a wakeup, before its commit ({runs})"


@pytest.mark.parametrize("lease", ["30", "none"], ids=["leased", "unleased"])
def test_a_lone_scheduler_runs_everything_once(tmp_path: Path, lease: str) -> None:
    sharing = share_interval_jobs(tmp_path, [["--lease", lease]], 3)
    tally = sharing.tally
    print(f"\nalone, lease {lease}: {tally}")
    assert not tally.duplicates
    assert not tally.misses
    assert not tally.strays


def test_a_stopped_scheduler_takes_no_runs(tmp_path: Path) -> None:
    """APScheduler's loop runs one more wakeup after ``shutdown()``, its executors shut down
    by then: what is due fails to be submitted, yet is marked done. On a shared store those
    runs were the other schedulers' to run, so a stopped scheduler must take none."""
    path = tmp_path / "jobs.lmdb"
    due = at(time.time() - 1)
    with opened(path) as store:
        store.add_jobs(interval_job(job_id, 60, due) for job_id in JOB_IDS[:3])
        scheduler = BackgroundScheduler(jobstores={"default": LMDBJobStore(path)}, timezone=UTC)
        scheduler.start(paused=True)  # a scheduler that runs nothing, e.g. in a web worker
        scheduler.shutdown()
        assert [job.next_run_time for job in store.get_all_jobs()] == [due] * 3


# -- changes made by another process ----------------------------------------------------------


def wait_for_runs(
    worker: Worker, enough: Callable[[list[Run]], bool], timeout: float = 5
) -> list[Run]:
    """The worker's runs, once ``enough`` says they are."""
    deadline = time.time() + timeout
    while True:
        runs = worker.runs()
        if enough(runs):
            return runs
        if time.time() > deadline:
            pytest.fail(f"the worker did not run what was expected; its runs: {runs}")
        time.sleep(0.01)


def runs_of(job_id: str, runs: Iterable[Run]) -> list[Run]:
    return [run for run in runs if run.job_id == job_id]


def pickup_delays(worker: Worker, store: LMDBJobStore, name: str, samples: int) -> list[float]:
    """Add ``samples`` date jobs, one by one, each due 200 ms after it is added; return
    how late after its run time the worker started each."""
    due: dict[str, float] = {}
    for number in range(samples):
        job_id = f"{name}-{number}"
        due[job_id] = time.time() + 0.2
        store.add_job(date_job(job_id, at(due[job_id])))
        sleep_until(due[job_id] + 0.05)
    runs = wait_for_runs(worker, lambda runs: due.keys() <= {run.job_id for run in runs})
    started = {run.job_id: run for run in runs if run.job_id in due}
    return [started[job_id].delay for job_id in due]


def test_a_scheduler_that_lost_a_race_sees_the_next_change(tmp_path: Path) -> None:
    """A scheduler whose take finds the due jobs leased by another (which took them between
    its look and its take) must still be woken by the next change another process makes.
    The holder takes the lease 0.1 s after the run time and hangs there (SIGSTOP); the other
    looks at once but writes its take 0.2 s later; then this process adds a job due soon,
    which the other must start within PICKUP_BOUND of its time (plus its 0.2 s handicap)."""
    path = tmp_path / "jobs.lmdb"
    lease = ["--lease", str(LEASE)]
    handicap = 0.2
    options = [
        [*lease, "--take-delay", "0.1", "--stop-at-take", "1"],
        [*lease, "--take-write-delay", str(handicap)],
    ]
    with opened(path) as store, running(path, tmp_path / "worker", options) as [holder, other]:
        try:
            start = math.ceil(time.time() + 0.5)
            store.add_job(date_job("due", at(start)))
            wait_for_event(holder, "stopping", start + 5)
            sleep_until(start + 0.5)
            store.add_job(date_job("added", at(start + 0.9)))
            runs = wait_for_runs(other, lambda runs: bool(runs_of("added", runs)))
        finally:
            holder.kill()
    for worker in (holder, other):
        worker.check_exit()
    [added] = runs_of("added", runs)
    print(f"\na job added after a lost race started {added.delay * 1000:.0f} ms after its time")
    assert added.delay <= handicap + PICKUP_BOUND


@pytest.mark.parametrize(
    "samples", [pytest.param(20, id="20"), pytest.param(200, id="200", marks=pytest.mark.slow)]
)
def test_a_job_added_elsewhere_runs_on_time(tmp_path: Path, samples: int) -> None:
    """An idle scheduler runs a date job that another process adds 200 ms before its run
    time within PICKUP_BOUND of that time. A sample that misses the bound is taken again,
    at most RETRIES times; the figures are those of the first tries."""
    path = tmp_path / "jobs.lmdb"
    retried: list[float] = []
    with opened(path) as store, running(path, tmp_path / "worker", [[]]) as [worker]:
        delays = pickup_delays(worker, store, "pickup", samples)
        late = sum(delay > PICKUP_BOUND for delay in delays)
        for sample in range(late):
            for retry in range(RETRIES):
                retried += pickup_delays(worker, store, f"retry-{sample}-{retry}", 1)
                if retried[-1] <= PICKUP_BOUND:
                    break
    worker.check_exit()
    retries = ", ".join(f"{delay * 1000:.1f}" for delay in retried)
    print(
        f"\npick-up latency over {samples} jobs added by another process: "
        f"p50 {percentile(delays, 0.5) * 1000:.1f} ms, p99 {percentile(delays, 0.99) * 1000:.1f}"
        f" ms, max {max(delays) * 1000:.1f} ms; {late} over {PICKUP_BOUND * 1000:.0f} ms"
        f"{f'; retries: {retries} ms' if late else ''}"
    )
    assert min(delays) >= 0
    assert sum(delay <= PICKUP_BOUND for delay in retried) == late


class Reactions(NamedTuple):
    """How long after a change made elsewhere the scheduler still acted as before it."""

    paused_overrun: float
    resumed_delay: float
    removed_overrun: float

    def within(self, bound: float) -> bool:
        return max(self) <= bound


def pause_resume_remove(worker: Worker, store: LMDBJobStore, job_id: str) -> Reactions:
    """Pause, resume and remove an interval job (every 0.15 s) while ``worker`` runs it."""
    quiet = 0.6  # seconds to wait for runs that should not come
    store.add_job(interval_job(job_id, 0.15, at(time.time() + 0.3)))
    wait_for_runs(worker, lambda runs: len(runs_of(job_id, runs)) >= 3)

    store.set_next_run_time(job_id, None)
    paused = time.time()
    time.sleep(quiet)
    paused_job = store.lookup_job(job_id)
    assert paused_job is not None
    assert paused_job.next_run_time is None, "the scheduler undid the pause"
    paused_overrun = max(run.actual for run in runs_of(job_id, worker.runs())) - paused

    resume_at = at(time.time() + 0.2)
    store.set_next_run_time(job_id, resume_at)
    resumed = microseconds(f"{resume_at.timestamp():.6f}")

    def resumed_runs(runs: list[Run]) -> list[Run]:
        return sorted(run for run in runs_of(job_id, runs) if run.scheduled >= resumed)

    first = resumed_runs(wait_for_runs(worker, lambda runs: len(resumed_runs(runs)) >= 3))[0]
    assert first.scheduled == resumed

    store.remove_job(job_id)
    removed = time.time()
    time.sleep(quiet)
    assert store.lookup_job(job_id) is None, "the scheduler brought the removed job back"
    removed_overrun = max(run.actual for run in runs_of(job_id, worker.runs())) - removed
    return Reactions(paused_overrun, first.delay, removed_overrun)


def test_pause_resume_and_remove_from_another_process(tmp_path: Path) -> None:
    """Another process pauses a job: no run starts later than PICKUP_BOUND after the pause
    returned; resumes it: it runs within PICKUP_BOUND of its new time; removes it: no run
    starts later than PICKUP_BOUND after. A try that misses a bound is made again (at most
    RETRIES times) with a new job."""
    path = tmp_path / "jobs.lmdb"
    tries: list[Reactions] = []
    with opened(path) as store, running(path, tmp_path / "worker", [[]]) as [worker]:
        while len(tries) <= RETRIES and not (tries and tries[-1].within(PICKUP_BOUND)):
            tries.append(pause_resume_remove(worker, store, f"beat-{len(tries)}"))
    worker.check_exit()
    for number, reactions in enumerate(tries):
        print(
            f"\ntry {number}: last run {reactions.paused_overrun * 1000:.1f} ms after the "
            f"pause; first run {reactions.resumed_delay * 1000:.1f} ms after the resumed "
            f"time; last run {reactions.removed_overrun * 1000:.1f} ms after the removal"
        )
    assert tries[-1].within(PICKUP_BOUND)


def test_idle_cost(tmp_path: Path) -> None:
    """CPU time used by a scheduler on an idle store, alone and while another process
    commits to its store every 50 ms."""
    seconds = 5.0
    busy_path = tmp_path / "busy.lmdb"
    far = datetime(2999, 1, 1, tzinfo=UTC)
    with (
        opened(busy_path) as busy_store,
        running(tmp_path / "idle.lmdb", tmp_path / "idle", [[]]) as [idle],
        running(busy_path, tmp_path / "busy", [[]]) as [busy],
    ):
        busy_store.add_job(date_job("far", far))
        time.sleep(0.5)  # let the start-up work end
        begun, idle_before, busy_before = time.time(), idle.cpu(), busy.cpu()
        commits = 0
        while time.time() < begun + seconds:
            commits += 1
            busy_store.set_next_run_time("far", far + timedelta(microseconds=commits))
            time.sleep(0.05)
        idle_used, busy_used = idle.cpu() - idle_before, busy.cpu() - busy_before
        elapsed = time.time() - begun
    for worker in (idle, busy):
        worker.check_exit()
    print(
        f"\nidle cost over {elapsed:.1f} s: alone {idle_used / elapsed:.2%} of a core; with "
        f"another process committing {commits / elapsed:.0f} times a second "
        f"{busy_used / elapsed:.2%} of a core ({busy_used / commits * 1000:.2f} ms a commit)"
    )
    assert idle_used / elapsed < 0.05
