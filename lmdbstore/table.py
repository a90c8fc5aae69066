"""The job table: job records, their run time index entries, and the moves of the jobs
that wakeups rescheduled, read and changed together inside one transaction, so that they
never disagree.

A wakeup that only reschedules a job (the same job, a new next run time) leaves its record
as it is and *moves* it instead: its index entry goes to the new run time, and a move entry
keyed like the record's own index entry (the record's run time key, then the id) says where
the job went and when exactly it runs (:func:`~.records.encode_move`). A job has a move
entry exactly when its index entry's run time is not its record's. The records a wakeup
touches lie all over the file (ids are random); its index and move entries lie together
(by run time), so its commit writes a few dozen pages rather than one per job.

An index entry's value holds the stamp of the job's record and, if the job was moved, its
record's run time key and its move (:func:`index_value`): a scan in index order learns
each job's version and run time without reading its record, which it then reads only if
the caller does not know that version already (in a format 2 store opened read-only, the
values are empty, and every record is read).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from apscheduler.jobstores.base import ConflictingIdError

from .environment import StoreEnvironment, Transaction
from .keys import RUN_TIME_SIZE, index_key, job_key
from .leases import after, leases_in_force
from .records import record_run_key, record_stamp

_STAMP_SIZE = 8
_MOVE_AT = _STAMP_SIZE + RUN_TIME_SIZE

# Hot paths pass a sub-database positionally: py-lmdb parses keyword arguments slowly
# (about 0.1 µs a call).

Row = tuple[bytes, bytes, bytes, bytes, "bytes | None"]
"""A job as the table holds it: its encoded id; its run time key; its record's stamp; its
move (empty unless a wakeup moved it since its record was written); and its record
(``None`` if it is missing)."""

Versions = dict[bytes, tuple[bytes, bytes]]
"""The run time keys and record stamps of jobs, by encoded id."""

T = TypeVar("T")


def scan(
    txn: Transaction,
    env: StoreEnvironment,
    start: bytes,
    limit: bytes | None,
    cached: Mapping[bytes, Sequence[Any]],
    build: Callable[[Any, bytes], T | None],
    versions: Versions | None = None,
) -> tuple[list[T | Row], int]:
    """The jobs in index order, from index key ``start`` up to run time key ``limit``,
    and how many of them are rows.

    A job whose entry in ``cached`` (by encoded id; an entry's first item is the stamp of
    the record it stands for) is that of its current record comes as what
    ``build(entry, move)`` makes of it, its record unread; unless that is ``None``, as
    for any other job, it comes as its :data:`Row`. ``versions`` (if given) gets the run
    time key and record stamp of every job."""
    get = txn.get
    jobs = env.jobs
    entry_of = cached.get
    found: list[T | Row] = []
    rows = 0
    if limit is None and not start and 2 * len(cached) < txn.stat(jobs)["entries"]:
        env.read_in()  # most records of the store are to be read
    with txn.cursor(env.index) as cursor:
        if not cursor.set_range(start):
            return found, rows
        for key, value in cursor:
            if limit is not None and key[:RUN_TIME_SIZE] > limit:
                break
            id_key = key[RUN_TIME_SIZE:]
            if value:
                stamp = value[:_STAMP_SIZE]
                entry = entry_of(id_key)
                if entry is not None and entry[0] == stamp:
                    job = build(entry, value[_MOVE_AT:])
                    if job is not None:
                        found.append(job)
                        if versions is not None:
                            versions[id_key] = (key[:RUN_TIME_SIZE], stamp)
                        continue
                move = value[_MOVE_AT:]
                record = get(job_key(id_key), None, jobs)
            else:  # an entry of a format 2 store opened read-only: no stamp, no move
                record = get(job_key(id_key), None, jobs)
                stamp = b"" if record is None else record_stamp(record)
                move = b""
            found.append((id_key, key[:RUN_TIME_SIZE], stamp, move, record))
            rows += 1
            if versions is not None:
                versions[id_key] = (key[:RUN_TIME_SIZE], stamp)
    return found, rows


def rows(txn: Transaction, env: StoreEnvironment, start: bytes, limit: bytes | None) -> list[Row]:
    """The jobs as :func:`scan` finds them, each as its :data:`Row`."""
    found, _ = scan(txn, env, start, limit, {}, _nothing)
    return found


def _nothing(entry: Any, move: bytes) -> None:
    return None


def current(txn: Transaction, env: StoreEnvironment, id_key: bytes) -> tuple[bytes, bytes] | None:
    """The record and the move (empty if none) of the job ``id_key``, if it exists."""
    record = txn.get(job_key(id_key), None, env.jobs)
    if record is None:
        return None
    moves = env.moves
    if moves is None:
        return record, b""
    return record, txn.get(record[6:14] + id_key, b"", moves)


def indexed(
    txn: Transaction, env: StoreEnvironment, run_key: bytes, id_key: bytes
) -> tuple[bytes, bytes, bytes] | None:
    """The stamp of the record, the record's run time key (the job's *home*, where its
    move entry is keyed) and the move of the job ``id_key``, if it is at run time key
    ``run_key``."""
    value = txn.get(index_key(run_key, id_key), None, env.index)
    if value is None:
        return None
    if not value:  # an entry written by format 2, whose record was missing when upgraded
        record = txn.get(job_key(id_key), db=env.jobs)
        return None if record is None else (record_stamp(record), run_key, b"")
    if len(value) > _STAMP_SIZE:
        return value[:_STAMP_SIZE], value[_STAMP_SIZE:_MOVE_AT], value[_MOVE_AT:]
    return value, run_key, b""


def run_key_of(record: bytes, move: bytes) -> bytes:
    """The run time key of a job: that of its move if it has one, else its record's."""
    return move[:RUN_TIME_SIZE] if move else record_run_key(record)


def index_value(stamp: bytes, record_run_key: bytes = b"", move: bytes = b"") -> bytes:
    """The value of a job's index entry: its record's stamp, and if it was moved, its
    record's run time key and its move."""
    return stamp + record_run_key + move if move else stamp


def insert(
    txn: Transaction, env: StoreEnvironment, rows: Sequence[tuple[str, bytes, bytes]]
) -> None:
    """Add jobs, given as (id, encoded id, record).

    :raises ConflictingIdError: if an id is stored already, or given twice
    """
    records = sorted((job_key(id_key), record, job_id) for job_id, id_key, record in rows)
    entries = sorted(
        (index_key(record_run_key(record), id_key), record_stamp(record))
        for _, id_key, record in rows
    )
    if not records:
        return
    # In key order past the last key, LMDB appends: full pages, not half-full ones.
    append = _beyond_last_key(txn, env.jobs, records[0][0])
    for key, record, job_id in records:
        if not txn.put(key, record, db=env.jobs, overwrite=False, append=append):
            raise ConflictingIdError(job_id)  # with append: the key came twice
    append = _beyond_last_key(txn, env.index, entries[0][0])
    for entry, stamp in entries:
        txn.put(entry, stamp, db=env.index, append=append)


def replace(
    txn: Transaction,
    env: StoreEnvironment,
    id_key: bytes,
    home: bytes,
    old_move: bytes,
    new: bytes,
) -> None:
    """Overwrite the record of a job (``home`` being its record's run time key, and
    ``old_move`` its move) with ``new``, moving its index entry along."""
    txn.put(job_key(id_key), new, db=env.jobs)
    old_run_key = old_move[:RUN_TIME_SIZE] if old_move else home
    run_key = record_run_key(new)
    if old_move:
        txn.delete(index_key(home, id_key), db=env.moves)
    if old_run_key != run_key:
        _delete_index_entry(txn, env, old_run_key, id_key)
    txn.put(index_key(run_key, id_key), record_stamp(new), db=env.index)


def move(
    txn: Transaction,
    env: StoreEnvironment,
    id_key: bytes,
    stamp: bytes,
    home: bytes,
    old_move: bytes,
    new_move: bytes,
) -> None:
    """Move a job (whose record has ``stamp`` and run time key ``home``, and
    whose move is ``old_move``) to ``new_move``, whose run time key must not be the
    record's."""
    old_run_key = old_move[:RUN_TIME_SIZE] if old_move else home
    run_key = new_move[:RUN_TIME_SIZE]
    txn.put(index_key(home, id_key), new_move, db=env.moves)
    if old_run_key != run_key:
        _delete_index_entry(txn, env, old_run_key, id_key)
    value = index_value(stamp, home, new_move)
    txn.put(index_key(run_key, id_key), value, db=env.index)


def delete(
    txn: Transaction,
    env: StoreEnvironment,
    id_key: bytes,
    home: bytes,
    old_move: bytes,
) -> None:
    """Delete a job (whose record's run time key is ``home``, and whose move
    is ``old_move``): its record, its index and move entries."""
    txn.delete(job_key(id_key), db=env.jobs)
    if old_move:
        txn.delete(index_key(home, id_key), db=env.moves)
    old_run_key = old_move[:RUN_TIME_SIZE] if old_move else home
    _delete_index_entry(txn, env, old_run_key, id_key)


def clear(txn: Transaction, env: StoreEnvironment) -> None:
    """Delete every job."""
    for db in (env.jobs, env.index, env.moves):
        if db is not None:
            txn.drop(db, delete=False)


def next_run_key(
    txn: Transaction, env: StoreEnvironment, owner: bytes | None, now: bytes
) -> bytes | None:
    """The run time key of the first job, or, if ``owner`` shares the store (see
    leases.py), of its first job that is not another scheduler's, or the end of that
    scheduler's lease if that comes first, at run time key ``now``."""
    with txn.cursor(db=env.index) as cursor:
        if not cursor.first():
            return None
        first: bytes = cursor.key()[:RUN_TIME_SIZE]
        if owner is None or first > now:
            return first  # leases cover only what was due when they were taken
        lease = leases_in_force(txn, env.meta, owner, now)
        if first > lease.floor:
            return first
        # The first jobs are another scheduler's until it is done or its lease ends.
        if not cursor.set_range(after(lease.floor)):
            return lease.expiry
        free: bytes = cursor.key()[:RUN_TIME_SIZE]
        return min(lease.expiry, free)


def _delete_index_entry(
    txn: Transaction, env: StoreEnvironment, run_key: bytes, id_key: bytes
) -> None:
    if txn.delete(index_key(run_key, id_key), b"", env.index):
        return
    # The record's run time was damaged: find the entry by its id instead.
    with txn.cursor(db=env.index) as cursor:
        for key in cursor.iternext(values=False):
            if key[RUN_TIME_SIZE:] == id_key:
                txn.delete(key, db=env.index)
                return


def _beyond_last_key(txn: Transaction, db: object, key: bytes) -> bool:
    """Whether ``key`` sorts after every key of ``db``."""
    with txn.cursor(db=db) as cursor:
        return not cursor.last() or bool(cursor.key() < key)


def stamp_index(txn: Transaction, jobs: Any, index: Any) -> None:
    """Give every index entry of a format 2 store its value (:func:`index_value`): the
    stamp of its job's record (format 2 has no moves)."""
    with txn.cursor(db=index) as cursor:
        keys = [key for key, value in cursor if not value]
    for key in keys:
        record = txn.get(job_key(key[RUN_TIME_SIZE:]), db=jobs)
        if record is not None:
            txn.put(key, record_stamp(record), db=index)
