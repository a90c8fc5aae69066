"""The job store: APScheduler's ``BaseJobStore`` contract on an LMDB environment."""

from __future__ import annotations

import os
import pickle
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from apscheduler.job import Job
from apscheduler.jobstores.base import BaseJobStore, ConflictingIdError, JobLookupError
from apscheduler.schedulers.base import STATE_STOPPED

from .cache import (
    CachedState,
    CallableReferences,
    StateCache,
    build_job,
    cache_entry,
    found_callable,
    private_state,
    same_body,
    shareable,
)
from .environment import (
    DEFAULT_MAP_SIZE,
    Durability,
    StoreEnvironment,
    Transaction,
    open_environment,
)
from .errors import (
    JobSerializationError,
    QuarantineLookupError,
    ReadOnlyStoreError,
    SerializerMismatchError,
)
from .integrity import IntegrityReport, check_store
from .keys import (
    MAX_JOB_ID_KEY_SIZE,
    RUN_TIME_SIZE,
    decode_run_time,
    encode_job_id,
    encode_run_time,
    encode_timestamp,
    index_key,
    job_key,
)
from .leases import after, leases_in_force, new_owner, release_lease, take_lease
from .records import (
    JobRecord,
    QuarantineEntry,
    decode_next_run_time,
    encode_next_run_time,
    new_stamp,
    record_job_id,
    record_run_key,
    record_stamp,
)
from .serializers import SERIALIZER_NAMES, Serializer, make_serializer
from .wakeup import BatchWatchdog, EncodedJob, WakeupBatch, scheduler_lock_held
from .watcher import ChangeWatcher

T = TypeVar("T")
_DURABILITIES = ("full", "relaxed")
_MIN_MAP_SIZE = 1024 * 1024
DEFAULT_CACHE_SIZE = 10_000
DEFAULT_LEASE = 30.0
_MAX_LEASE = 86_400


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
        since this process last read or wrote it is not unpickled again (0: none)
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
        if not _is_int(map_size) or map_size < _MIN_MAP_SIZE:
            raise ValueError(
                f'The "map_size" parameter must be an int of at least {_MIN_MAP_SIZE} '
                f"bytes, not {map_size!r}"
            )
        if durability not in _DURABILITIES:
            raise ValueError(
                f'The "durability" parameter must be "full" or "relaxed", not {durability!r}'
            )
        if not _is_int(cache_size) or cache_size < 0:
            raise ValueError(
                f'The "cache_size" parameter must be an int of at least 0, not {cache_size!r}'
            )
        if lease is not None and (
            not isinstance(lease, (int, float))
            or isinstance(lease, bool)
            or not 0 < lease <= _MAX_LEASE
        ):
            raise ValueError(
                f'The "lease" parameter must be a number of seconds above 0 and at most '
                f"{_MAX_LEASE}, or None, not {lease!r}"
            )
        flags = (("readonly", readonly), ("group_commit", group_commit))
        for name, flag in (*flags, ("watch_changes", watch_changes)):
            if not isinstance(flag, bool):
                raise ValueError(f'The "{name}" parameter must be a bool, not {flag!r}')
        self.path = os.fspath(path)
        self._options = {
            "pickle_protocol": pickle_protocol,
            "map_size": map_size,
            "durability": durability,
            "serializer": serializer,
            "readonly": readonly,
            "cache_size": cache_size,
            "group_commit": group_commit,
            "lease": lease,
            "watch_changes": watch_changes,
        }
        self.serializer: Serializer = make_serializer(serializer, pickle_protocol)
        self.pickle_protocol = pickle_protocol
        self.map_size = map_size
        self.durability = durability
        self.readonly = readonly
        self.group_commit = group_commit
        self.lease = lease
        self.watch_changes = watch_changes
        self._token = new_owner()
        self._own_commits: set[int] = set()
        self._watcher: ChangeWatcher | None = None
        self._cache = StateCache(cache_size)
        self._references = CallableReferences()
        self._environment: StoreEnvironment | None = None
        self._batch: WakeupBatch | None = None
        self._watchdog: BatchWatchdog | None = None
        self._next_key_memo: tuple[int, bytes | None] | None = None
        self._reset_locks()
        _open_stores.add(self)
        self._open()

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} (path={self.path!r})>"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled (as ``multiprocessing`` does for a spawned process), a store becomes the
        same store opened again, by path, with the same options, not yet started."""
        return (_reopen, (type(self), self.path, self._options))

    def _reset_locks(self) -> None:
        self._lock = threading.Lock()
        self._batch_lock = threading.RLock()

    def _after_fork_in_child(self) -> None:
        # The parent's threads are gone: their locks may be held, their batch is theirs.
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
        env = self._open()
        if scheduler is not None and self.watch_changes:

            def wakeup() -> None:
                if scheduler.state != STATE_STOPPED:  # as APScheduler checks itself
                    scheduler.wakeup()

            self._watcher = ChangeWatcher(
                os.path.join(env.path, "data.mdb"),
                lambda: int(env.env.info()["last_txnid"]),
                self._is_own_commit,
                wakeup,
            )

    def shutdown(self) -> None:
        """Commit what is pending and close the store; it opens again on its next use."""
        self._flush()
        self._stop_threads()
        with self._lock:
            environment, self._environment = self._environment, None
        if environment is not None:
            environment.release()

    def _open(self) -> StoreEnvironment:
        with self._lock:
            if self._environment is None:
                environment = open_environment(
                    self.path,
                    map_size=self.map_size,
                    durability=self.durability,
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
        own, so that the change watcher does not wake the scheduler for it."""
        env = self._writable_env()
        self._next_key_memo = None
        if self._watcher is None:
            return env.write(operation)
        txn_ids = []

        def recorded(txn: Transaction) -> T:
            txn_ids.append(txn.id())
            return operation(txn)

        result = env.write(recorded)
        self._own_commits.add(txn_ids[-1])
        return result

    def _is_own_commit(self, txn_id: int) -> bool:
        try:
            self._own_commits.remove(txn_id)
        except KeyError:
            return False
        return True

    @property
    def _owner(self) -> bytes:
        """This store object's name in leases (a forked child is another owner)."""
        return self._token + os.getpid().to_bytes(4, "big")

    # -- reads ---------------------------------------------------------------------------

    def lookup_job(self, job_id: str) -> Job | None:
        id_key = encode_job_id(job_id)
        self._flush()
        env = self._env
        data = env.read(lambda txn: txn.get(job_key(id_key), db=env.jobs))
        if data is None:
            return None
        jobs = self._restore_jobs([(id_key, data)])
        return jobs[0] if jobs else None

    def get_due_jobs(self, now: datetime) -> list[Job]:
        limit = encode_run_time(now)
        self._flush()
        self._next_key_memo = None
        in_wakeup = scheduler_lock_held(self._scheduler)
        leased = in_wakeup and self.lease is not None and not self.readonly
        if leased:
            rows = self._take_due(now, limit)
        else:

            def scan(txn: Transaction) -> list[tuple[bytes, bytes]]:
                rows = self._scan(txn, b"", limit)
                if in_wakeup and not rows:
                    self._remember_next_key(self._next_key(txn, limit))
                return rows

            rows = self._env.read(scan)
        jobs = self._restore_jobs(rows)
        if in_wakeup and ((jobs and self.group_commit) or (leased and rows)):
            self._open_batch({id_key: record_stamp(data) for id_key, data in rows}, leased)
        return jobs

    def _take_due(self, now: datetime, limit: bytes) -> list[tuple[bytes, bytes]]:
        """Lease the due jobs no other scheduler holds, and return them (see leases.py)."""
        env = self._env
        owner = self._owner

        def anything_due(txn: Transaction) -> bool:
            start = after(leases_in_force(txn, env.meta, owner, limit).floor)
            with txn.cursor(db=env.index) as cursor:
                if cursor.set_range(start) and cursor.key()[:RUN_TIME_SIZE] <= limit:
                    return True
            self._remember_next_key(self._next_key(txn, limit))
            return False

        if not env.read(anything_due):
            return []  # an idle wakeup: no write
        expiry = encode_run_time(now + timedelta(seconds=self.lease or 0))

        def take(txn: Transaction) -> list[tuple[bytes, bytes]]:
            start = after(leases_in_force(txn, env.meta, owner, limit).floor)
            rows = self._scan(txn, start, limit)
            if rows:
                take_lease(txn, env.meta, owner, limit, expiry)
            return rows

        return self._write(take)

    def get_next_run_time(self) -> datetime | None:
        self._flush()
        memo, self._next_key_memo = self._next_key_memo, None
        if memo is not None and memo[0] == threading.get_ident():
            key = memo[1]  # what this wakeup's last transaction found: nothing changed since
        else:
            key = self._env.read(lambda txn: self._next_key(txn, encode_timestamp(time.time())))
        return None if key is None else decode_run_time(key)

    def _next_key(self, txn: Transaction, now: bytes) -> bytes | None:
        """The run time key of the first job of the index that is not another
        scheduler's, or the end of that scheduler's lease if it comes first (at run time
        key ``now``)."""
        env = self._env
        with txn.cursor(db=env.index) as cursor:
            if not cursor.first():
                return None
            first: bytes = cursor.key()[:RUN_TIME_SIZE]
            if self.lease is None or first > now:
                return first  # leases cover only what was due when they were taken
            lease = leases_in_force(txn, env.meta, self._owner, now)
            if first > lease.floor:
                return first
            # The first jobs are another scheduler's until it is done or its lease ends.
            if not cursor.set_range(after(lease.floor)):
                return lease.expiry
            free: bytes = cursor.key()[:RUN_TIME_SIZE]
            return min(lease.expiry, free)

    def _remember_next_key(self, key: bytes | None) -> None:
        """Keep the answer to the wakeup's coming ``get_next_run_time``, found in the
        wakeup's last transaction, for this thread."""
        self._next_key_memo = (threading.get_ident(), key)

    def get_all_jobs(self) -> list[Job]:
        self._flush()
        return self._restore_jobs(self._env.read(lambda txn: self._scan(txn, b"", None)))

    def _scan(
        self, txn: Transaction, start: bytes, limit: bytes | None
    ) -> list[tuple[bytes, bytes]]:
        """Return (id key, record) of the jobs in index order, from index key ``start`` up
        to run time ``limit``."""
        env = self._env
        get = txn.get
        rows: list[tuple[bytes, bytes]] = []
        with txn.cursor(db=env.index) as cursor:
            if not cursor.set_range(start):
                return rows
            for key in cursor.iternext(values=False):
                if limit is not None and key[:RUN_TIME_SIZE] > limit:
                    break
                id_key = key[RUN_TIME_SIZE:]
                rows.append((id_key, get(job_key(id_key), db=env.jobs)))
        return rows

    # -- writes --------------------------------------------------------------------------

    def add_job(self, job: Job) -> None:
        self.add_jobs([job])

    def add_jobs(self, jobs: Iterable[Job]) -> None:
        """Add many jobs in one transaction: all of them, or none.

        :raises ConflictingIdError: if a job's id is already stored, or repeated in ``jobs``
        """
        encoded = [self._encode(job) for job in jobs]
        env = self._writable_env()
        self._flush()

        records = sorted((job_key(job.id_key), job.record, job.job_id) for job in encoded)
        entries = sorted(index_key(record_run_key(job.record), job.id_key) for job in encoded)

        def add_all(txn: Transaction) -> None:
            # In key order past the last key, LMDB appends: full pages, not half-full ones.
            append = _beyond_last_key(txn, env.jobs, records[0][0]) if records else False
            for key, record, job_id in records:
                if not txn.put(key, record, db=env.jobs, overwrite=False, append=append):
                    raise ConflictingIdError(job_id)  # with append: the key came twice
            append = _beyond_last_key(txn, env.index, entries[0]) if entries else False
            for entry in entries:
                txn.put(entry, b"", db=env.index, append=append)

        self._write(add_all)
        self._remember(encoded)

    def update_job(self, job: Job) -> None:
        encoded = self._encode(job)
        env = self._writable_env()
        if self._batched(encoded.id_key, encoded):
            return

        def update(txn: Transaction) -> None:
            old = txn.get(job_key(encoded.id_key), db=env.jobs)
            if old is None:
                raise JobLookupError(job.id)
            self._replace_record(txn, encoded.id_key, old, encoded.record)

        self._write(update)
        self._remember([encoded])

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
            old = txn.get(job_key(id_key), db=env.jobs)
            if old is None:
                raise JobLookupError(job_id)
            record = JobRecord.decode(old)._replace(
                run_key=run_key, stamp=new_stamp(), next_run_time=run_time_bytes
            )
            self._replace_record(txn, id_key, old, record.encode())

        self._write(reschedule)

    def remove_job(self, job_id: str) -> None:
        id_key = encode_job_id(job_id)
        env = self._writable_env()
        if self._batched(id_key, None):
            return

        def remove(txn: Transaction) -> None:
            old = txn.get(job_key(id_key), db=env.jobs)
            if old is None:
                raise JobLookupError(job_id)
            self._delete_record(txn, id_key, old)

        self._write(remove)
        self._cache.discard(id_key)

    def remove_all_jobs(self) -> None:
        """Remove every job; quarantined jobs stay until purged."""
        env = self._writable_env()
        self._flush()

        def remove_all(txn: Transaction) -> None:
            txn.drop(env.jobs, delete=False)
            txn.drop(env.index, delete=False)

        self._write(remove_all)
        self._cache.clear()

    def _replace_record(self, txn: Transaction, id_key: bytes, old: bytes, new: bytes) -> None:
        """Overwrite a job's record ``old`` with ``new``, moving its index entry along."""
        env = self._env
        txn.put(job_key(id_key), new, db=env.jobs)
        old_run_key, run_key = record_run_key(old), record_run_key(new)
        if old_run_key != run_key:
            self._delete_index_entry(txn, old_run_key, id_key)
            txn.put(index_key(run_key, id_key), b"", db=env.index)

    def _delete_record(self, txn: Transaction, id_key: bytes, old: bytes) -> None:
        """Delete a job's record ``old`` and its index entry."""
        txn.delete(job_key(id_key), db=self._env.jobs)
        self._delete_index_entry(txn, record_run_key(old), id_key)

    def _delete_index_entry(self, txn: Transaction, run_key: bytes, id_key: bytes) -> None:
        index = self._env.index
        if txn.delete(index_key(run_key, id_key), db=index):
            return
        # The record's run time was damaged: find the entry by its id instead.
        with txn.cursor(db=index) as cursor:
            for key in cursor.iternext(values=False):
                if key[RUN_TIME_SIZE:] == id_key:
                    txn.delete(key, db=index)
                    return

    # -- group commit of a wakeup --------------------------------------------------------

    def _open_batch(self, read_stamps: dict[bytes, bytes], leased: bool) -> None:
        with self._batch_lock:
            self._batch = WakeupBatch(read_stamps, leased)
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
            if self.group_commit and batch.takes(id_key):
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
            for id_key, write in batch.writes.items():
                current = txn.get(job_key(id_key), db=env.jobs)
                if current is None or record_stamp(current) != batch.read_stamps[id_key]:
                    continue  # changed by another process since the wakeup read it
                if write is None:
                    self._delete_record(txn, id_key, current)
                else:
                    self._replace_record(txn, id_key, current, write.record)
                    written.append(write)
            if batch.leased:
                release_lease(txn, env.meta, self._owner)
            next_key[:] = [self._next_key(txn, encode_timestamp(time.time()))]
            return written

        next_key: list[bytes | None] = []
        try:
            written = self._write(commit)
        finally:
            for id_key in batch.writes:
                self._cache.discard(id_key)
        self._remember(written)
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

    # -- serialization -------------------------------------------------------------------

    def _encode(self, job: Job) -> EncodedJob:
        """Serialize ``job``, or raise an error naming what is wrong with it."""
        id_key = encode_job_id(job.id)
        next_run_time = getattr(job, "next_run_time", None)
        if next_run_time is not None and not isinstance(next_run_time, datetime):
            raise TypeError(
                f"job {job.id!r} has a next_run_time that is not a datetime: {next_run_time!r}"
            )
        if next_run_time is not None and next_run_time.utcoffset() is None:
            raise ValueError(
                f"job {job.id!r} has a naive next_run_time ({next_run_time}): it needs a time zone"
            )
        serializer = self.serializer
        try:
            state = serializer.job_state(job)
            del state["next_run_time"]
            cached = self._cache.latest(id_key)
            if cached is not None and not same_body(state, cached.state):
                cached = None
            body = serializer.dumps(state) if cached is None else cached.body
            next_run_time_bytes = encode_next_run_time(next_run_time)
        except Exception as exc:
            raise JobSerializationError(job.id, exc) from exc
        full_id = job.id.encode("utf-8", "surrogatepass")
        stamp = new_stamp()
        record = JobRecord(
            serializer.tag,
            encode_run_time(next_run_time),
            stamp,
            body,
            next_run_time_bytes,
            full_id if len(full_id) > MAX_JOB_ID_KEY_SIZE else b"",
        )
        entry: CachedState | None = None
        if cached is not None:
            entry = cached._replace(stamp=stamp, next_run_time=next_run_time)
        elif (
            self._cache.capacity
            and job.args is state["args"]  # not a bound method, whose instance joins args
            and job.func_ref == state["func"]
            and shareable(state)
        ):
            entry = cache_entry(
                stamp,
                body,
                private_state(state),
                next_run_time,
                found_callable(job.func, job.func_ref),
            )
        return EncodedJob(job.id, id_key, record.encode(), entry)

    def _remember(self, written: Iterable[EncodedJob]) -> None:
        """Keep in the cache the state of jobs this process just wrote."""
        for job in written:
            if job.cache_entry is None:
                self._cache.discard(job.id_key)
            else:
                self._cache.put(job.id_key, job.cache_entry)

    def _restore(self, id_key: bytes, data: bytes) -> Job:
        cached = self._cache.get(id_key, record_stamp(data))
        job = build_job(cached) if cached is not None else self._decode(id_key, data)
        job._scheduler = self._scheduler
        job._jobstore_alias = self._alias
        return job

    def _decode(self, id_key: bytes, data: bytes) -> Job:
        """Rebuild a job from its record, and keep it in the cache."""
        serializer = self.serializer
        record = JobRecord.decode(data)
        if record.serializer_tag != serializer.tag:
            written = SERIALIZER_NAMES.get(record.serializer_tag, f"#{record.serializer_tag}")
            raise SerializerMismatchError(self.path, written, serializer.name)
        state = serializer.loads(record.body)
        next_run_time = decode_next_run_time(record.next_run_time)
        if self._cache.capacity and shareable(state):
            found = self._references.resolve(state["func"])
            entry = cache_entry(record.stamp, record.body, state, next_run_time, found)
            self._cache.put(id_key, entry)
            return build_job(entry)
        return serializer.build_job({**state, "next_run_time": next_run_time})

    def _restore_jobs(self, rows: Iterable[tuple[bytes, bytes]]) -> list[Job]:
        """Rebuild the jobs of ``rows``; quarantine those that cannot be rebuilt."""
        jobs = []
        failed = []
        for id_key, data in rows:
            try:
                jobs.append(self._restore(id_key, data))
            except Exception as exc:
                self._cache.discard(id_key)
                failed.append((id_key, data, exc))
        if not failed:
            return jobs
        if self.readonly:
            for id_key, data, error in failed:
                self._logger.warning(
                    'Unable to restore job "%s" -- left in place: the store is read-only',
                    record_job_id(id_key, data),
                    exc_info=error,
                )
        else:
            self._quarantine(failed)
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

    def _quarantine(self, failed: list[tuple[bytes, bytes, Exception]]) -> None:
        env = self._env
        now = datetime.now(timezone.utc)

        def move(txn: Transaction) -> list[tuple[str, Exception]]:
            moved = []
            for id_key, data, exc in failed:
                key = job_key(id_key)
                current = txn.get(key, db=env.jobs)
                if current is None or record_stamp(current) != record_stamp(data):
                    continue  # changed since it was read: that write decides
                job_id = record_job_id(id_key, data)
                entry = QuarantineEntry(job_id, f"{type(exc).__name__}: {exc}", now, data)
                txn.put(key, entry.encode(), db=env.quarantine)
                self._delete_record(txn, id_key, data)
                moved.append((job_id, exc))
            return moved

        for job_id, exc in self._write(move):
            self._logger.warning(
                'Unable to restore job "%s" -- moved it to the quarantine of %r',
                job_id,
                self.path,
                exc_info=exc,
            )

    def get_quarantined_jobs(self) -> list[QuarantineEntry]:
        """Return the jobs that could not be restored, with the error and the time at which
        each was moved to the quarantine, in id order."""
        env = self._env

        def entries(txn: Transaction) -> list[bytes]:
            with txn.cursor(db=env.quarantine) as cursor:
                return list(cursor.iternext(keys=False))

        return [QuarantineEntry.decode(data) for data in env.read(entries)]

    def restore_quarantined_job(self, job_id: str) -> Job:
        """Put a quarantined job back among the jobs (once its code is importable again)
        and return it.

        :raises QuarantineLookupError: if no quarantined job has this id
        :raises ConflictingIdError: if a job with this id was added since
        :raises Exception: whatever restoring the job raises; it then stays quarantined
        """
        id_key = encode_job_id(job_id)
        key = job_key(id_key)
        env = self._writable_env()
        data = env.read(lambda txn: txn.get(key, db=env.quarantine))
        if data is None:
            raise QuarantineLookupError(job_id)
        record = QuarantineEntry.decode(data).record
        job = self._restore(id_key, record)

        def restore(txn: Transaction) -> None:
            if txn.get(key, db=env.quarantine) != data:
                raise QuarantineLookupError(job_id)
            if not txn.put(key, record, db=env.jobs, overwrite=False):
                raise ConflictingIdError(job_id)
            txn.put(index_key(record_run_key(record), id_key), b"", db=env.index)
            txn.delete(key, db=env.quarantine)

        self._write(restore)
        return job

    def purge_quarantined_job(self, job_id: str) -> None:
        """Delete a quarantined job for good.

        :raises QuarantineLookupError: if no quarantined job has this id
        """
        key = job_key(encode_job_id(job_id))
        env = self._writable_env()

        def purge(txn: Transaction) -> None:
            if not txn.delete(key, db=env.quarantine):
                raise QuarantineLookupError(job_id)

        self._write(purge)


_open_stores: weakref.WeakSet[LMDBJobStore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for store in list(_open_stores):
        store._after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _beyond_last_key(txn: Transaction, db: object, key: bytes) -> bool:
    """Whether ``key`` sorts after every key of ``db``."""
    with txn.cursor(db=db) as cursor:
        return not cursor.last() or bool(cursor.key() < key)


def _reopen(cls: type[LMDBJobStore], path: str, options: dict[str, Any]) -> LMDBJobStore:
    return cls(path, **options)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
