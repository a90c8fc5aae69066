"""Group commit of a scheduler wakeup: its writes become durable together, in one
transaction, with one flush to disk instead of one per job.

APScheduler's wakeup (``BaseScheduler._process_jobs``) holds the scheduler's
``_jobstores_lock`` while it calls ``get_due_jobs``, then ``update_job`` or
``remove_job`` for each due job, then ``get_next_run_time``. The store keeps those
updates and removals in a :class:`WakeupBatch` and commits them before answering
``get_next_run_time``, or before any other call, or, should the wakeup end in an
exception, as soon as the scheduler's lock is released (the :class:`BatchWatchdog`).

A process kill or a power cut inside the wakeup therefore undoes all of its writes or
none: its jobs run once more after a restart, as APScheduler does after any crash.
A batched write applies only if the job is still the one the wakeup read; if another
process changed, moved or removed the job meanwhile, that change wins. A write that only
reschedules a job moves it (see table.py) rather than rewriting its record.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .codec import EncodedJob


class WakeupBatch:
    """The writes of one wakeup, made by the thread running it, to jobs it was handed."""

    def __init__(self, read_versions: dict[bytes, tuple[bytes, bytes]], leased: bool) -> None:
        self.owner = threading.get_ident()
        self.leased = leased
        """Whether the wakeup holds a lease on its jobs, to release at commit."""
        self.read_versions = read_versions
        """The version of each due job (its run time key and its record's stamp: a move
        changes the one, any other write the other), as the wakeup read it, by id key."""
        self.writes: dict[bytes, EncodedJob | None] = {}
        """The new version of each job written, or ``None`` for a removal, by id key."""

    def takes(self, id_key: bytes) -> bool:
        """Whether a write to ``id_key`` by the calling thread belongs to this batch."""
        return id_key in self.read_versions and threading.get_ident() == self.owner


def scheduler_lock_probe(scheduler: Any) -> Callable[[], bool]:
    """A function telling whether the calling thread holds the job store lock of
    ``scheduler`` (``None``: no scheduler), as it does throughout a wakeup."""
    is_owned = getattr(getattr(scheduler, "_jobstores_lock", None), "_is_owned", None)
    return is_owned if callable(is_owned) else _never


def _never() -> bool:
    return False


class BatchWatchdog:
    """A daemon thread that commits a batch left pending by a wakeup that ended in an
    exception: it waits for the scheduler's lock to be released, then calls ``flush``."""

    def __init__(self, scheduler: Any, flush: Callable[[WakeupBatch], None]) -> None:
        self._lock = scheduler._jobstores_lock
        self._flush = flush
        self._cond = threading.Condition()
        self._batch: WakeupBatch | None = None
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="lmdbstore-watchdog", daemon=True)
        self._thread.start()

    def watch(self, batch: WakeupBatch) -> None:
        """Have ``batch`` committed once its wakeup is over, if nothing commits it first."""
        with self._cond:
            self._batch = batch
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._batch is None and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                batch, self._batch = self._batch, None
            with self._lock:  # held by the wakeup until it is over, however it ends
                pass
            if batch is not None:
                self._flush(batch)
