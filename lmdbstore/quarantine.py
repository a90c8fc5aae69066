"""The quarantine: job records that could not be restored, kept with why and when,
instead of being deleted as APScheduler's own stores do."""

from __future__ import annotations

from datetime import datetime

from . import table
from .environment import StoreEnvironment, Transaction
from .errors import QuarantineLookupError
from .keys import job_key
from .records import (
    CorruptRecordError,
    QuarantineEntry,
    moved_record,
    record_job_id,
    record_run_key,
)

Failure = tuple[bytes, bytes, bytes, Exception]
"""A job that could not be restored: its encoded id, its record, its move, and why."""


def move_in(
    txn: Transaction, env: StoreEnvironment, failed: list[Failure], now: datetime
) -> list[tuple[str, Exception]]:
    """Move the records of ``failed`` out of the job table into the quarantine, unless
    they changed since they were read; return the ids moved, with why."""
    moved = []
    for id_key, data, move, exc in failed:
        if table.current(txn, env, id_key) != (data, move):
            continue  # changed since it was read: that write decides
        job_id = record_job_id(id_key, data)
        try:
            kept = moved_record(data, move)  # its run time with it
        except CorruptRecordError:
            kept = data
        entry = QuarantineEntry(job_id, f"{type(exc).__name__}: {exc}", now, kept)
        txn.put(job_key(id_key), entry.encode(), db=env.quarantine)
        table.delete(txn, env, id_key, record_run_key(data), move)
        moved.append((job_id, exc))
    return moved


def entries(txn: Transaction, env: StoreEnvironment) -> list[QuarantineEntry]:
    """Every quarantine entry, in id order."""
    with txn.cursor(db=env.quarantine) as cursor:
        return [QuarantineEntry.decode(data) for data in cursor.iternext(keys=False)]


def entry(txn: Transaction, env: StoreEnvironment, job_id: str, id_key: bytes) -> bytes:
    """The bytes of the quarantine entry of ``job_id``.

    :raises QuarantineLookupError: if there is none
    """
    data = txn.get(job_key(id_key), db=env.quarantine)
    if data is None:
        raise QuarantineLookupError(job_id)
    return data  # type: ignore[no-any-return]


def move_out(
    txn: Transaction, env: StoreEnvironment, job_id: str, id_key: bytes, data: bytes
) -> None:
    """Put the record of quarantine entry ``data`` back into the job table.

    :raises QuarantineLookupError: if the entry changed or went meanwhile
    :raises ConflictingIdError: if a job with this id was added since
    """
    key = job_key(id_key)
    if txn.get(key, db=env.quarantine) != data:
        raise QuarantineLookupError(job_id)
    table.insert(txn, env, [(job_id, id_key, QuarantineEntry.decode(data).record)])
    txn.delete(key, db=env.quarantine)


def purge(txn: Transaction, env: StoreEnvironment, job_id: str, id_key: bytes) -> None:
    """Delete the quarantine entry of ``job_id``.

    :raises QuarantineLookupError: if there is none
    """
    if not txn.delete(job_key(id_key), db=env.quarantine):
        raise QuarantineLookupError(job_id)
