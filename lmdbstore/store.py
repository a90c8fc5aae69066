"""The job store: APScheduler's ``BaseJobStore`` contract on an LMDB environment."""

from __future__ import annotations

import os
import pickle
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar, cast

from apscheduler.job import Job
from apscheduler.jobstores.base import BaseJobStore, JobLookupError
from apscheduler.schedulers.base import STATE_STOPPED

from . import quarantine, table
from .cache import CachedState, build_job, job_builder
from .codec import EncodedJob, JobCodec
from .environment import (
    DEFAULT_MAP_SIZE,
    Durability,
    StoreEnvironment,
    Transaction,
    open_environment,
)
from .errors import ReadOnlyStoreError
from .integrity import IntegrityReport, check_store
from .keys import (
    RUN_TIME_SIZE,
    decode_run_time,
    encode_job_id,
    encode_run_time,
    encode_timestamp,
)
from .leases import after, leases_in_force, new_owner, release_lease, take_lease
from .options import DEFAULT_CACHE_SIZE, DEFAULT_LEASE, StoreOptions
from .records import (
    JobRecord,
    QuarantineEntry,
    encode_next_run_time,
    move_run_time,
    new_stamp,
    record_job_id,
    record_run_key,
    record_stamp,
)
from .serializers import Serializer, make_serializer
from .table import Row
from .wakeup import BatchWatchdog, WakeupBatch, scheduler_lock_probe
from .watcher import ChangeWatcher

T = TypeVar("T")
Scan = tuple[list[Job | Row], int]
"""Jobs in index order, some of them rows still to rebuild, and how many are rows."""


class LMDBJobStore(BaseJobStore):  # type: ignore[misc]
    """
    Stores jobs in an LMDB environment: a directory holding one memory-mapped data file.

    Every method is one ACID transaction, except that the writes of one scheduler wakeup
    are committed together (group commit: all or none, durable before the wakeup ends).
    Jobs that cannot be restored (their code moved, their bytes damaged) are moved to a
    quarantine instead of being deleted: see :meth:`get_quarantined_jobs`.

    Plugin alias: ``lmdb``

    :param path: the store's directory, created if missing (its parent must exist)
    :param pickle_protocol: pickle protocol level to use (for serialization), defaults to
        the highest available
    :param map_size: initial size of the memory map in bytes; the map grows by itself
    :param durability: ``"full"`` (default): a call that returns is on disk, and survives a
        process kill and a power cut. ``"relaxed"``: a process kill loses nothing, a power
        cut may undo the last committed call, the store is never corrupted; commits cost
        less than half as much.
    :param serializer: ``"pickle"`` (default), or ``"cloudpickle"`` to store by value
        callables that have no textual reference (lambdas, closures, partials)
    :param readonly: open the store for reading only; writes raise
        :class:`~lmdbstore.ReadOnlyStoreError`
    :param cache_size: how many decoded jobs to keep in memory, so that a job unchanged
        since this process wrote it, took it as due, or read it a second time is not
        unpickled again (0: none); each takes about as much memory as the job itself
    :param group_commit: commit the writes of each scheduler wakeup together
    :param lease: seconds for which a scheduler's wakeup holds the jobs it takes, so that
        several schedulers (in several processes) can share the store and each run time
        goes to one of them; a scheduler that dies leaves its jobs due to the others once
        its lease runs out. ``None``: no leases, APScheduler's plain semantics (every
        scheduler on the store runs every job).
    :param watch_changes: wake the scheduler when another process changes the store
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        pickle_protocol: int = pickle.HIGHEST_PROTOCOL,
        map_size: int = DEFAULT_MAP_SIZE,
        durability: Durability = "full",
        serializer: str = "pickle",
        readonly: bool = False,
        cache_size: int = DEFAULT_CACHE_SIZE,
        group_commit: bool = True,
        lease: float | None = DEFAULT_LEASE,
        watch_changes: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
            raise ValueError(f'The "path" parameter must be a non-empty path, not {path!r}')
        self.options = StoreOptions(
            pickle_protocol,
            map_size,
            durability,
            serializer,
            readonly,
            cache_size,
            group_commit,
            lease,
            watch_changes,
        )
        self.path = os.fspath(path)
        self.serializer: Serializer = make_serializer(serializer, pickle_protocol)
        self.pickle_protocol = pickle_protocol
        self.readonly = readonly
        self.lease = lease
        self._codec = JobCodec(self.serializer, cache_size, self.path)
        self._owner = new_owner()
        """This store object's name in leases (a forked child takes another)."""
        self._own_commits: set[int] = set()
        self._watcher: ChangeWatcher | None = None
        self._environment: StoreEnvironment | None = None
        self._batch: WakeupBatch | None = None
        self._watchdog: BatchWatchdog | None = None
        self._next_key_memo: tuple[int, bytes | None] | None = None
        self._in_wakeup = scheduler_lock_probe(None)
        """Whether the calling thread runs a wakeup of the scheduler (holds its lock)."""
        self._reset_locks()
        _open_stores.add(self)
        self._open()

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} (path={self.path!r})>"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled (as ``multiprocessing`` does for a spawned process), a store becomes the
        same store opened again, by path, with the same options, not yet started."""
        return (_reopen, (type(self), self.path, self.options.as_dict()))

    def _reset_locks(self) -> None:
        self._lock = threading.Lock()
        self._batch_lock = threading.RLock()

    def _after_fork_in_child(self) -> None:
        # The parent's threads are gone: their locks may be held, their batch is theirs.
        self._owner = new_owner()
        self._reset_locks()
        self._batch = None
        self._watchdog = None
        if self._watcher is not None:
            self._watcher.close_inherited()
            self._watcher = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, scheduler: Any, alias: str) -> None:
        self._stop_threads()
        super().start(scheduler, alias)
        self._in_wakeup = scheduler_lock_probe(scheduler)
        env = self._open()
        if scheduler is not None and self.options.watch_changes:

            def wakeup() -> None:
                if scheduler.state != STATE_STOPPED:  # as APScheduler checks itself
                    scheduler.wakeup()

            self._watcher = ChangeWatcher(
                os.path.join(env.path, "data.mdb"),
                env.commits,
                self._is_own_commit,
                wakeup,
            )

    def shutdown(self) -> None:
        """Commit what is pending and close the store; it opens again on its next use."""
        self._flush()
        self._stop_threads()
        with self._lock:
            environment, self._environment = self._environment, None
        self._codec.cache.forget_seen()  # another file may be there when it opens again
        if environment is not None:
            environment.release()

    def _open(self) -> StoreEnvironment:
        with self._lock:
            if self._environment is None:
                environment = open_environment(
                    self.path,
                    map_size=self.options.map_size,
                    durability=self.options.durability,
                    readonly=self.readonly,
                )
                try:
                    environment.claim_serializer(self.serializer.name)
                except BaseException:
                    environment.release()
                    raise
                self._environment = environment
            return self._environment

    @property
    def environment(self) -> StoreEnvironment:
        """The LMDB environment this store reads and writes (for tools and checks)."""
        return self._environment or self._open()

    _env = environment

    def _writable_env(self) -> StoreEnvironment:
        if self.readonly:
            raise ReadOnlyStoreError(self.path)
        return self._env

    def _write(self, operation: Callable[[Transaction], T]) -> T:
        """Run ``operation`` in a write transaction; remember the commit as this store's
        own, so that the change watcher does not wake the scheduler for it. An operation
        that raises :class:`_NoChange` aborts its transaction and returns its result."""
        env = self._writable_env()
        self._next_key_memo = None
        watched = self._watcher is not None
        txn_ids = []

        def recorded(txn: Transaction) -> T:
            if watched:
                txn_ids.append(txn.id())
            return operation(txn)

        try:
            result = env.write(recorded)
        except _NoChange as nothing:
            return cast(T, nothing.result)
        if txn_ids:
            self._own_commits.add(txn_ids[-1])
        return result

    def _is_own_commit(self, txn_id: int) -> bool:
        """Whether this store made commit ``txn_id``; the watcher asks of each commit once,
        in order, so the ids before it that are still noted will never be asked of."""
        own = self._own_commits
        if len(own) > 1:
            own.difference_update([noted for noted in tuple(own) if noted < txn_id])
        try:
            own.remove(txn_id)
        except KeyError:
            return False
        return True

    # -- reads ---------------------------------------------------------------------------

    def lookup_job(self, job_id: str) -> Job | None:
        id_key = encode_job_id(job_id)
        if self._batch is not None:
            self._flush()
        env = self._environment or self._open()
        found = env.read(lambda txn: self._current(txn, env, id_key))
        if found is None:
            return None
        cached, data, move = found
        try:
            if cached is not None:
                job = build_job(cached)
            else:
                job = self._codec.decode(id_key, data, at_once=False)
        except Exception:  # decoded again to be quarantined, as in a scan
            jobs = self._restore_jobs(([(id_key, b"", record_stamp(data), move, data)], 1))
            return jobs[0] if jobs else None
        if move:
            job.next_run_time = move_run_time(move)
        job._scheduler = self._scheduler
        job._jobstore_alias = self._alias
        return job

    def _current(
        self, txn: Transaction, env: StoreEnvironment, id_key: bytes
    ) -> tuple[CachedState | None, bytes, bytes] | None:
        """The job ``id_key`` as ``txn`` sees it, if it exists: its cache entry if the
        cache holds its record (then its record is not read again at the same commit),
        else ``None`` and its record; and its move."""
        cache = self._codec.cache
        commit = txn.id()
        seen = cache.seen(commit, id_key)
        if seen is not None:
            return seen[0], b"", seen[1]
        found = table.current(txn, env, id_key)
        if found is None:
            return None
        data, move = found
        cached = cache.get(id_key, record_stamp(data))
        if cached is not None:
            cache.see(commit, id_key, cached, move)
        return cached, data, move

    def get_due_jobs(self, now: datetime) -> list[Job]:
        in_wakeup = self._in_wakeup()
        if in_wakeup and self._scheduler.state == STATE_STOPPED:
            return []  # see _in_last_wakeup
        limit = encode_run_time(now)
        if self._batch is not None:
            self._flush()
        self._next_key_memo = None
        leased = in_wakeup and self.lease is not None and not self.readonly
        versions: table.Versions | None = {} if in_wakeup else None
        if leased:
            found = self._take_due(now, limit, versions)
        else:

            def scan(txn: Transaction) -> Scan:
                found = self._scan(txn, b"", limit, versions)
                if in_wakeup and not found[0]:
                    self._remember_next_key(self._next_key(txn, limit))
                return found

            found = self._env.read(scan)
        if not found[0]:
            return []
        jobs = self._restore_jobs(found)
        if versions is not None and ((jobs and self.options.group_commit) or leased):
            self._open_batch(versions, leased)
        return jobs

    def _scan(
        self,
        txn: Transaction,
        start: bytes,
        limit: bytes | None,
        versions: table.Versions | None = None,
    ) -> Scan:
        """:func:`~.table.scan`, the jobs the cache holds built from it; ``versions`` gets
        those of this transaction only."""
        if versions is not None:
            versions.clear()  # of an attempt that failed
        entries = self._codec.cache.entries
        build = job_builder(self._scheduler, self._alias)
        return table.scan(txn, self._env, start, limit, entries, build, versions)

    def _take_due(self, now: datetime, limit: bytes, versions: table.Versions | None) -> Scan:
        """Lease the due jobs no other scheduler holds, and return them (see leases.py)."""
        env = self._env
        owner = self._owner

        def anything_due(txn: Transaction) -> bool:
            cursor = txn.cursor(env.index)  # no context manager: the idle wakeup's path
            first = cursor.key()[:RUN_TIME_SIZE] if cursor.first() else None
            if first is None or first > limit:
                self._remember_next_key(first)
                return False  # nothing due at all: no lease to look at
            start = after(leases_in_force(txn, env.meta, owner, limit).floor)
            if cursor.set_range(start) and cursor.key()[:RUN_TIME_SIZE] <= limit:
                return True
            self._remember_next_key(self._next_key(txn, limit))
            return False

        if not env.read(anything_due):
            return [], 0  # an idle wakeup: no write
        expiry = encode_run_time(now + timedelta(seconds=self.lease or 0))

        def take(txn: Transaction) -> Scan:
            start = after(leases_in_force(txn, env.meta, owner, limit).floor)
            found = self._scan(txn, start, limit, versions)
            if not found[0]:
                raise _NoChange(found)  # another scheduler took them meanwhile
            take_lease(txn, env.meta, owner, limit, expiry)
            return found

        return self._write(take)

    def get_next_run_time(self) -> datetime | None:
        if self._batch is not None:
            self._flush()
        memo, self._next_key_memo = self._next_key_memo, None
        if memo is not None and memo[0] == threading.get_ident():
            key = memo[1]  # what this wakeup's last transaction found: nothing changed since
        elif self._in_last_wakeup():
            return None
        else:
            key = self._env.read(lambda txn: self._next_key(txn, encode_timestamp(time.time())))
        return None if key is None else decode_run_time(key)

    def _in_last_wakeup(self) -> bool:
        """Whether this is the wakeup APScheduler runs after ``shutdown()``, when its
        executors are gone: it can run nothing, so it must take nothing."""
        return self._in_wakeup() and self._scheduler.state == STATE_STOPPED

    def _next_key(self, txn: Transaction, now: bytes) -> bytes | None:
        """When the scheduler should wake next for this store (see table.next_run_key)."""
        return table.next_run_key(txn, self._env, None if self.lease is None else self._owner, now)

    def _remember_next_key(self, key: bytes | None) -> None:
        """Keep the answer to the wakeup's coming ``get_next_run_time``, found in the
        wakeup's last transaction, for this thread."""
        self._next_key_memo = (threading.get_ident(), key)

    def get_all_jobs(self) -> list[Job]:
        self._flush()
        found = self._env.read(lambda txn: self._scan(txn, b"", None))
        return self._restore_jobs(found, at_once=False)

    # -- writes --------------------------------------------------------------------------

    def add_job(self, job: Job) -> None:
        self.add_jobs([job])

    def add_jobs(self, jobs: Iterable[Job]) -> None:
        """Add many jobs in one transaction: all of them, or none.

        :raises ConflictingIdError: if a job's id is already stored, or repeated in ``jobs``
        """
        jobs = list(jobs)
        kept_from = len(jobs) - self.options.cache_size  # the cache keeps only the last
        encoded = [self._codec.encode(job, number >= kept_from) for number, job in enumerate(jobs)]
        env = self._writable_env()
        self._flush()
        if not encoded:
            return
        rows = [(job.job_id, job.id_key, job.record()) for job in encoded]
        self._write(lambda txn: table.insert(txn, env, rows))
        self._codec.remember(encoded)

    def update_job(self, job: Job) -> None:
        encoded = self._codec.encode(job)
        env = self._writable_env()
        if self._batched(encoded.id_key, encoded):
            return

        def update(txn: Transaction) -> None:
            found = table.current(txn, env, encoded.id_key)
            if found is None:
                raise JobLookupError(job.id)
            record, move = found
            table.replace(txn, env, encoded.id_key, record_run_key(record), move, encoded.record())

        self._write(update)
        self._codec.remember([encoded])

    def set_next_run_time(self, job_id: str, run_time: datetime | None) -> None:
        """Change only the next run time of a stored job (``None`` pauses it), without
        restoring the job: this works even when its callable cannot be imported here.

        :raises JobLookupError: if the job does not exist
        """
        id_key = encode_job_id(job_id)
        run_key = encode_run_time(run_time)
        run_time_bytes = encode_next_run_time(run_time)
        env = self._writable_env()
        self._flush()

        def reschedule(txn: Transaction) -> None:
            found = table.current(txn, env, id_key)
            if found is None:
                raise JobLookupError(job_id)
            old, move = found
            record = JobRecord.decode(old)._replace(
                run_key=run_key, stamp=new_stamp(), next_run_time=run_time_bytes
            )
            table.replace(txn, env, id_key, record_run_key(old), move, record.encode())

        self._write(reschedule)

    def remove_job(self, job_id: str) -> None:
        id_key = encode_job_id(job_id)
        env = self._writable_env()
        if self._batched(id_key, None):
            return

        def remove(txn: Transaction) -> None:
            found = table.current(txn, env, id_key)
            if found is None:
                raise JobLookupError(job_id)
            record, move = found
            table.delete(txn, env, id_key, record_run_key(record), move)

        self._write(remove)
        self._codec.cache.discard(id_key)

    def remove_all_jobs(self) -> None:
        """Remove every job; quarantined jobs stay until purged."""
        env = self._writable_env()
        self._flush()

        self._write(lambda txn: table.clear(txn, env))
        self._codec.cache.clear()

    # -- group commit of a wakeup --------------------------------------------------------

    def _open_batch(self, read_versions: dict[bytes, tuple[bytes, bytes]], leased: bool) -> None:
        with self._batch_lock:
            self._batch = WakeupBatch(read_versions, leased)
            if self._watchdog is None:
                self._watchdog = BatchWatchdog(self._scheduler, self._flush)
            self._watchdog.watch(self._batch)

    def _batched(self, id_key: bytes, write: EncodedJob | None) -> bool:
        """Add a write to the pending wakeup batch if it belongs there, or else commit
        that batch; return whether the write was batched."""
        with self._batch_lock:
            batch = self._batch
            if batch is None:
                return False
            if self.options.group_commit and batch.takes(id_key):
                batch.writes[id_key] = write
                return True
        self._flush()
        return False

    def _flush(self, batch: WakeupBatch | None = None) -> None:
        """Commit the pending wakeup batch (only if it is ``batch``, when given)."""
        if self._batch is None:
            return
        with self._batch_lock:
            pending = self._batch
            if pending is None or (batch is not None and pending is not batch):
                return
            self._batch = None
            if pending.writes or pending.leased:
                self._commit_batch(pending)

    def _commit_batch(self, batch: WakeupBatch) -> None:
        env = self._env

        def commit(txn: Transaction) -> list[EncodedJob]:
            written = []
            changed = False
            for id_key, write in batch.writes.items():
                run_key, read_stamp = batch.read_versions[id_key]
                found = table.indexed(txn, env, run_key, id_key)
                if found is None or found[0] != read_stamp:
                    continue  # changed by another process since the wakeup read it
                stamp, home, move = found
                if write is None:
                    table.delete(txn, env, id_key, home, move)
                elif _movable(write, stamp, home):
                    table.move(txn, env, id_key, stamp, home, move, write.move)
                    moved.append(write)
                else:
                    table.replace(txn, env, id_key, home, move, write.record())
                    written.append(write)
                changed = True
            if batch.leased:
                changed = release_lease(txn, env.meta, self._owner) or changed
            next_key[:] = [self._next_key(txn, encode_timestamp(time.time()))]
            if not changed:
                raise _NoChange(written)
            return written

        next_key: list[bytes | None] = []
        moved: list[EncodedJob] = []
        try:
            written = self._write(commit)
        finally:
            for id_key in batch.writes:
                self._codec.cache.discard(id_key)
        self._codec.remember(written)
        self._codec.remember_moved(moved)
        self._remember_next_key(next_key[0])

    def _stop_threads(self) -> None:
        with self._batch_lock:
            watchdog, self._watchdog = self._watchdog, None
            watcher, self._watcher = self._watcher, None
        if watchdog is not None:
            watchdog.stop()
        if watcher is not None:
            watcher.stop()
        self._own_commits.clear()

    # -- restoring jobs ------------------------------------------------------------------

    def _restore(self, id_key: bytes, data: bytes) -> Job:
        job = self._codec.restore(id_key, data, b"")
        job._scheduler = self._scheduler
        job._jobstore_alias = self._alias
        return job

    def _restore_jobs(self, found: Scan, at_once: bool = True) -> list[Job]:
        """The jobs ``found`` by :meth:`_scan`, those of its rows rebuilt (their decoded
        states kept at once, or on a second read: see ``JobCodec.decode``); quarantine
        those that cannot be rebuilt."""
        items, rows = found
        if not rows:
            return cast(list[Job], items)
        jobs, failed = self._codec.restore_all(items, self._scheduler, self._alias, at_once)
        if not failed:
            return jobs
        if self.readonly:
            for id_key, data, _move, error in failed:
                self._logger.warning(
                    'Unable to restore job "%s" -- left in place: the store is read-only',
                    record_job_id(id_key, data),
                    exc_info=error,
                )
        else:
            env, now = self._env, datetime.now(timezone.utc)

            def move(txn: Transaction) -> list[tuple[str, Exception]]:
                moved = quarantine.move_in(txn, env, failed, now)
                if not moved:
                    raise _NoChange(moved)  # all changed since: those writes decide
                return moved

            for job_id, error in self._write(move):
                self._logger.warning(
                    'Unable to restore job "%s" -- moved it to the quarantine of %r',
                    job_id,
                    self.path,
                    exc_info=error,
                )
        return jobs

    # -- integrity -----------------------------------------------------------------------

    def check(self, repair: bool = False) -> IntegrityReport:
        """Check that the run time index and the job records agree and that every record
        decodes (without importing the jobs' callables).

        :param repair: move records that do not decode to the quarantine and rebuild the
            index from the job records, if a problem was found
        """
        env = self._writable_env() if repair else self._env
        self._flush()
        return check_store(env, self.serializer, repair)

    # -- quarantine ----------------------------------------------------------------------

    def get_quarantined_jobs(self) -> list[QuarantineEntry]:
        """Return the jobs that could not be restored, with the error and the time at which
        each was moved to the quarantine, in id order."""
        return self._env.read(lambda txn: quarantine.entries(txn, self._env))

    def restore_quarantined_job(self, job_id: str) -> Job:
        """Put a quarantined job back among the jobs (once its code is importable again)
        and return it.

        :raises QuarantineLookupError: if no quarantined job has this id
        :raises ConflictingIdError: if a job with this id was added since
        :raises Exception: whatever restoring the job raises; it then stays quarantined
        """
        id_key = encode_job_id(job_id)
        env = self._writable_env()
        data = env.read(lambda txn: quarantine.entry(txn, env, job_id, id_key))
        job = self._restore(id_key, QuarantineEntry.decode(data).record)
        self._write(lambda txn: quarantine.move_out(txn, env, job_id, id_key, data))
        return job

    def purge_quarantined_job(self, job_id: str) -> None:
        """Delete a quarantined job for good.

        :raises QuarantineLookupError: if no quarantined job has this id
        """
        id_key = encode_job_id(job_id)
        env = self._writable_env()
        self._write(lambda txn: quarantine.purge(txn, env, job_id, id_key))


def _movable(write: EncodedJob, stamp: bytes, home: bytes) -> bool:
    """Whether ``write`` may move the job whose record has ``stamp`` and run time key
    ``home`` instead of replacing it: it differs from that record in its run time alone,
    and that run time is not the record's."""
    base = write.base
    return base is not None and base.stamp == stamp and write.move[:RUN_TIME_SIZE] != home


class _NoChange(Exception):
    """Raised by a write operation that finds nothing to write, to abort its transaction:
    LMDB gives an empty commit no transaction id, so the next commit, by any process,
    would take the id this store noted as its own, and the change watcher would miss it."""

    def __init__(self, result: object) -> None:
        super().__init__()
        self.result = result


_open_stores: weakref.WeakSet[LMDBJobStore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for store in list(_open_stores):
        store._after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _reopen(cls: type[LMDBJobStore], path: str, options: dict[str, Any]) -> LMDBJobStore:
    return cls(path, **options)
