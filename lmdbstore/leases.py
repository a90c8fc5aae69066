"""Wakeup leases: how several schedulers share one store and hand each run time to one.

A scheduler's wakeup takes every job due at its ``now`` by writing one lease, committed
before it runs any of them::

    meta key  b"lease/" + owner token (16 random bytes, one per store object)
    value     the run time key of the wakeup's ``now`` + the run time key of the expiry

The lease covers every index entry up to ``now``; another scheduler takes only entries
above the highest ``now`` of the leases in force. The wakeup's group commit deletes its
lease in the same transaction as its updates. A scheduler that dies leaves its lease
until it expires; then its jobs, still due, are taken by the next wakeup of another.
"""

from __future__ import annotations

import os
import struct
from typing import NamedTuple

from .environment import Transaction
from .keys import RUN_TIME_SIZE

_PREFIX = b"lease/"
_VALUE = struct.Struct(f">{RUN_TIME_SIZE}s{RUN_TIME_SIZE}s")
_U64 = struct.Struct(">Q")


def new_owner() -> bytes:
    """A token naming one store object among all the processes on a store."""
    return os.urandom(16)


class Lease(NamedTuple):
    """The leases of other schedulers in force at some moment."""

    floor: bytes
    """Run time key up to which their leases cover the index (``b""``: none)."""
    expiry: bytes
    """Run time key at which the first of them expires (``b""``: none)."""


_NO_LEASE = Lease(b"", b"")


def leases_in_force(txn: Transaction, meta: object, owner: bytes, now_key: bytes) -> Lease:
    """The leases of owners other than ``owner`` that have not expired at run time key
    ``now_key``."""
    floor = expiry = b""
    with txn.cursor(db=meta) as cursor:
        if not cursor.set_range(_PREFIX) or not cursor.key().startswith(_PREFIX):
            return _NO_LEASE
        for key, value in cursor:
            if not key.startswith(_PREFIX):
                break
            covered, ends = _VALUE.unpack(value)
            if key[len(_PREFIX) :] == owner or ends <= now_key:
                continue
            floor = max(floor, covered)
            expiry = min(expiry or ends, ends)
    return Lease(floor, expiry)


def take_lease(
    txn: Transaction, meta: object, owner: bytes, now_key: bytes, expiry_key: bytes
) -> None:
    """Write the lease of ``owner`` over the index up to run time key ``now_key``, in force
    until ``expiry_key``; drop the leases expired at ``now_key``."""
    with txn.cursor(db=meta) as cursor:
        expired = []
        if cursor.set_range(_PREFIX):
            for key, value in cursor:
                if not key.startswith(_PREFIX):
                    break
                if _VALUE.unpack(value)[1] <= now_key:
                    expired.append(key)
    for key in expired:
        txn.delete(key, db=meta)
    txn.put(_PREFIX + owner, _VALUE.pack(now_key, expiry_key), db=meta)


def release_lease(txn: Transaction, meta: object, owner: bytes) -> bool:
    """Delete the lease of ``owner``; return whether it was still there."""
    return bool(txn.delete(_PREFIX + owner, db=meta))


def after(floor: bytes) -> bytes:
    """The smallest index key above every entry whose run time key is ``floor``."""
    if not floor:
        return b""
    return _U64.pack(_U64.unpack(floor)[0] + 1)
