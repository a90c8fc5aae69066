"""Reading a store's jobs as a tool needs them: record by record, without importing the
jobs' callables, and without ever moving a job to the quarantine.

The store's own reads (``get_all_jobs``, ``lookup_job``) rebuild :class:`~apscheduler.job.Job`
objects, which imports each job's callable, and quarantine the jobs that fail. A tool run
in another process (another virtualenv, another ``sys.path``) must not do that: it reads the
job's *state* instead, whose ``"func"`` is a textual reference, never imported here.
"""

from __future__ import annotations

import io
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, NamedTuple

from . import table
from .environment import StoreEnvironment, Transaction, open_environment
from .keys import (
    PAUSED,
    RUN_TIME_SIZE,
    decode_run_time,
    encode_job_id,
    id_key_of_job_key,
    job_key,
)
from .records import (
    CorruptRecordError,
    JobRecord,
    QuarantineEntry,
    decode_next_run_time,
    moved_record,
    record_job_id,
    record_run_key,
)
from .serializers import SERIALIZER_NAMES, Serializer, state_of_body
from .store import LMDBJobStore
from .triggers import restored_state


def open_store(
    path: str | os.PathLike[str], *, new_serializer: str = "pickle", readonly: bool = False
) -> LMDBJobStore:
    """Open the store at ``path`` with the serializer it was written with; a store created
    here (or never written) gets ``new_serializer``. A ``readonly`` store must exist.

    :raises LMDBStoreError: if ``path`` cannot hold a store
    """
    env = open_environment(path, readonly=readonly)
    try:
        serializer = env.serializer_name or new_serializer
        return LMDBJobStore(path, serializer=serializer, readonly=readonly)
    finally:
        env.release()


class StoredJob(NamedTuple):
    """A job as its store holds it, read without importing its callable."""

    job_id: str
    next_run_time: datetime | None
    """When the job runs next, in UTC, as the store's index has it (``None``: paused)."""
    state: dict[str, Any] | None
    """The job's state (as ``Job.__getstate__`` makes it), or ``None`` if it cannot be read."""
    problem: str
    """Why the state cannot be read; empty if it can."""
    quarantine: QuarantineEntry | None = None
    """The quarantine entry, for a job in the quarantine."""


class Unresolved:
    """Stands in for a class or function that this process cannot import, so that the rest
    of a job's state can still be shown."""

    reference: ClassVar[str] = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> Unresolved:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<{self.reference} (not importable here)>"


class _TolerantUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            return type(name, (Unresolved,), {"reference": f"{module}:{name}"})


def _tolerant_loads(data: bytes) -> Any:
    return state_of_body(_TolerantUnpickler(io.BytesIO(data)).load())


def load_state(
    record: JobRecord, serializer: Serializer, *, tolerant: bool = False
) -> dict[str, Any]:
    """Return the job state a record holds, its next run time included.

    :param tolerant: put an :class:`Unresolved` in place of each class or function that
        cannot be imported (to show a state), instead of raising (to copy it)
    :raises Exception: whatever unpickling raises, or :class:`ValueError` if the record was
        written by another serializer or holds no job state
    """
    if record.serializer_tag != serializer.tag:
        written = SERIALIZER_NAMES.get(record.serializer_tag, f"#{record.serializer_tag}")
        raise ValueError(
            f"the record was written with serializer {written!r}, but the store uses "
            f"{serializer.name!r}"
        )
    loads: Callable[[bytes], Any] = _tolerant_loads if tolerant else serializer.loads
    state: dict[str, Any] = loads(record.body)
    if not isinstance(state, dict) or "id" not in state:
        raise ValueError("the record's body is not a job's state")
    restored_state(state)  # in a state the tolerant unpickler restored
    state["next_run_time"] = decode_next_run_time(record.next_run_time)
    return state


def stored_job(
    job_id: str,
    data: bytes,
    serializer: Serializer,
    *,
    tolerant: bool,
    quarantine: QuarantineEntry | None = None,
) -> StoredJob:
    """Read the job a record holds; a record that cannot be read still gives its id and
    its next run time, with the problem."""
    next_run_time = decode_run_time(record_run_key(data)) if len(data) > RUN_TIME_SIZE else None
    try:
        state = load_state(JobRecord.decode(data), serializer, tolerant=tolerant)
    except Exception as exc:
        return StoredJob(job_id, next_run_time, None, f"{type(exc).__name__}: {exc}", quarantine)
    return StoredJob(job_id, next_run_time, state, "", quarantine)


def read_records(env: StoreEnvironment) -> list[tuple[str, bytes]]:
    """Return the id and record of every job, in the scheduler's order (by next run time,
    then id; paused jobs last), from one snapshot."""

    def scan(txn: Transaction) -> list[tuple[str, bytes]]:
        return [
            (record_job_id(id_key, data), _as_moved(data, move))
            for id_key, _run_key, _stamp, move, data in table.rows(txn, env, b"", None)
            if data is not None
        ]

    return env.read(scan)


def _as_moved(data: bytes, move: bytes) -> bytes:
    """The record of a job moved by ``move``, as if written with its current run time."""
    try:
        return moved_record(data, move)
    except CorruptRecordError:
        return data  # shown as damaged


def read_jobs(store: LMDBJobStore, *, tolerant: bool = True) -> list[StoredJob]:
    """Return every job of ``store`` in the scheduler's order, then every quarantined job
    in id order."""
    serializer = store.serializer
    jobs = [
        stored_job(job_id, data, serializer, tolerant=tolerant)
        for job_id, data in read_records(store.environment)
    ]
    return jobs + read_quarantined(store, tolerant=tolerant)


def read_quarantined(store: LMDBJobStore, *, tolerant: bool = True) -> list[StoredJob]:
    """Return every quarantined job of ``store``, in id order."""
    return [
        stored_job(
            entry.job_id, entry.record, store.serializer, tolerant=tolerant, quarantine=entry
        )
        for entry in store.get_quarantined_jobs()
    ]


def read_job(store: LMDBJobStore, job_id: str, *, tolerant: bool = True) -> StoredJob | None:
    """Return the job of that id, looked for among the jobs, then in the quarantine; or
    ``None``."""
    env = store.environment
    id_key = encode_job_id(job_id)

    def lookup(txn: Transaction) -> tuple[tuple[bytes, bytes] | None, bytes | None]:
        return table.current(txn, env, id_key), txn.get(job_key(id_key), db=env.quarantine)

    found, quarantined = env.read(lookup)
    if found is not None:
        return stored_job(job_id, _as_moved(*found), store.serializer, tolerant=tolerant)
    if quarantined is not None:
        entry = QuarantineEntry.decode(quarantined)
        return stored_job(
            job_id, entry.record, store.serializer, tolerant=tolerant, quarantine=entry
        )
    return None


def unimportable_jobs(store: LMDBJobStore) -> dict[str, str]:
    """Return the jobs whose state cannot be read in this process only because something
    it names (a class of an argument, a trigger) cannot be imported here, by id, with the
    error: their bytes are sound, and where that code is importable they work."""
    env = store.environment

    def scan(txn: Transaction) -> list[tuple[str, bytes]]:
        with txn.cursor(db=env.jobs) as cursor:
            return [(record_job_id(id_key_of_job_key(key), data), data) for key, data in cursor]

    found = {}
    for job_id, data in env.read(scan):
        try:
            record = JobRecord.decode(data)
            load_state(record, store.serializer)
        except (ImportError, AttributeError) as exc:
            try:
                load_state(record, store.serializer, tolerant=True)
            except Exception:
                continue
            found[job_id] = f"{type(exc).__name__}: {exc}"
        except Exception:
            continue
    return found


def callable_reference(func: object) -> str:
    """How a state's ``"func"`` reads: its textual reference, or the name of a callable
    stored by value."""
    if isinstance(func, str):
        return func
    module = getattr(func, "__module__", None) or "?"
    name = getattr(func, "__qualname__", None) or type(func).__qualname__
    return f"{module}:{name} (stored by value)"


@dataclass(frozen=True)
class StoreStats:
    """Counts and sizes of a store, read without decoding any job."""

    path: str
    format_version: int
    serializer: str
    jobs: int
    paused: int
    quarantined: int
    next_run_time: datetime | None
    map_size: int
    map_used: int
    file_size: int


def read_stats(store: LMDBJobStore) -> StoreStats:
    """Return the counts and sizes of ``store``, from one snapshot."""
    env = store.environment

    def count(txn: Transaction) -> tuple[int, int, int, bytes | None]:
        paused = 0
        first = None
        with txn.cursor(db=env.index) as cursor:
            if cursor.first():
                first = cursor.key()
            if cursor.set_range(PAUSED):
                paused = sum(1 for _ in cursor.iternext(values=False))
        return (
            txn.stat(env.jobs)["entries"],
            paused,
            txn.stat(env.quarantine)["entries"],
            first,
        )

    jobs, paused, quarantined, first = env.read(count)
    figures = env.figures()
    return StoreStats(
        path=env.path,
        format_version=env.format_version,
        serializer=store.serializer.name,
        jobs=jobs,
        paused=paused,
        quarantined=quarantined,
        next_run_time=None if first is None else decode_run_time(first),
        map_size=figures.map_size,
        map_used=figures.used,
        file_size=os.path.getsize(os.path.join(env.path, "data.mdb")),
    )
