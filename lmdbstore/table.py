"""The job table: job records and their run time index entries, read and changed together
inside one transaction, so that they never disagree."""

from __future__ import annotations

from collections.abc import Sequence

from apscheduler.jobstores.base import ConflictingIdError

from .environment import StoreEnvironment, Transaction
from .keys import RUN_TIME_SIZE, index_key, job_key
from .leases import after, leases_in_force
from .records import record_run_key

Row = tuple[bytes, bytes]
"""A job as the table holds it: its encoded id and its record."""


def scan(txn: Transaction, env: StoreEnvironment, start: bytes, limit: bytes | None) -> list[Row]:
    """The jobs in index order, from index key ``start`` up to run time key ``limit``."""
    get = txn.get
    rows: list[Row] = []
    with txn.cursor(db=env.index) as cursor:
        if not cursor.set_range(start):
            return rows
        for key in cursor.iternext(values=False):
            if limit is not None and key[:RUN_TIME_SIZE] > limit:
                break
            id_key = key[RUN_TIME_SIZE:]
            rows.append((id_key, get(job_key(id_key), db=env.jobs)))
    return rows


def insert(
    txn: Transaction, env: StoreEnvironment, rows: Sequence[tuple[str, bytes, bytes]]
) -> None:
    """Add jobs, given as (id, encoded id, record).

    :raises ConflictingIdError: if an id is stored already, or given twice
    """
    records = sorted((job_key(id_key), record, job_id) for job_id, id_key, record in rows)
    entries = sorted(index_key(record_run_key(record), id_key) for _, id_key, record in rows)
    if not records:
        return
    # In key order past the last key, LMDB appends: full pages, not half-full ones.
    append = _beyond_last_key(txn, env.jobs, records[0][0])
    for key, record, job_id in records:
        if not txn.put(key, record, db=env.jobs, overwrite=False, append=append):
            raise ConflictingIdError(job_id)  # with append: the key came twice
    append = _beyond_last_key(txn, env.index, entries[0])
    for entry in entries:
        txn.put(entry, b"", db=env.index, append=append)


def replace(
    txn: Transaction, env: StoreEnvironment, id_key: bytes, old: bytes, new: bytes
) -> None:
    """Overwrite a job's record ``old`` with ``new``, moving its index entry along."""
    txn.put(job_key(id_key), new, db=env.jobs)
    old_run_key, run_key = record_run_key(old), record_run_key(new)
    if old_run_key != run_key:
        _delete_index_entry(txn, env, old_run_key, id_key)
        txn.put(index_key(run_key, id_key), b"", db=env.index)


def delete(txn: Transaction, env: StoreEnvironment, id_key: bytes, old: bytes) -> None:
    """Delete a job's record ``old`` and its index entry."""
    txn.delete(job_key(id_key), db=env.jobs)
    _delete_index_entry(txn, env, record_run_key(old), id_key)


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
    if txn.delete(index_key(run_key, id_key), db=env.index):
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
