"""Whole copies of a store: a backup while schedulers use it, and compaction while nobody
does.

Every process that has an LMDB environment open holds a shared ``fcntl`` lock on the first
byte of its ``lock.mdb``; a process opening it takes an exclusive lock on that byte first,
to learn whether it is the first. So an exclusive lock we hold tells us that no other
process has the store open, and makes any process that opens it wait until we let go.
(This holds for processes that open the store with LMDB's lock file, as lmdbstore always
does when it can write to the store's directory.)
"""

from __future__ import annotations

import fcntl
import os
import shutil
import struct
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import lmdb

from .environment import MAX_DBS, Transaction
from .errors import LMDBStoreError, StorageError, StorePathError
from .inspection import open_store

_DATA_FILE = "data.mdb"
_LOCK_FILE = "lock.mdb"
_FLOCK = struct.Struct("hhqqi4x")  # Linux's struct flock: type, whence, start, len, pid


class StoreInUseError(LMDBStoreError):
    """Another process has the store open, so it cannot be rewritten."""

    def __init__(self, path: str, holder: int | None) -> None:
        who = f"process {holder}" if holder else "another process"
        super().__init__(
            f"the store at {path!r} is open in {who}: stop the schedulers and tools using "
            "it, then compact it (a backup, made with `lmdbstore backup`, is compacted too "
            "and needs no stop)"
        )
        self.path = path
        self.holder = holder


@contextmanager
def _lmdb_errors(path: str) -> Iterator[None]:
    """Report LMDB's own errors as lmdbstore's, naming the store."""
    try:
        yield
    except lmdb.Error as exc:
        raise StorageError(f"the store at {path!r} failed: {exc}") from exc


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _entry_counts(env: lmdb.Environment, txn: Transaction) -> dict[str, int]:
    """The number of entries of each sub-database, by name."""
    names = [key for key, _ in txn.cursor()]
    return {
        name.decode(): txn.stat(env.open_db(name, txn=txn, create=False))["entries"]
        for name in names
    }


def _copy_entry_counts(path: str) -> dict[str, int]:
    """:func:`_entry_counts` of a copy, opened without a lock file (nobody else uses it)."""
    with _lmdb_errors(path):
        env = lmdb.open(path, readonly=True, lock=False, max_dbs=MAX_DBS)
        try:
            with env.begin() as txn:
                return _entry_counts(env, txn)
        finally:
            env.close()


def _check_copy(path: str, copy: str, expected: dict[str, int]) -> None:
    _fsync_path(os.path.join(copy, _DATA_FILE))
    _fsync_path(copy)
    found = _copy_entry_counts(copy)
    if found != expected:
        raise LMDBStoreError(
            f"the copy of the store at {path!r} in {copy!r} holds {found} entries, not {expected}"
        )


def prepare_backup_directory(dest: str) -> None:
    """Make sure ``dest`` is an empty directory, creating it if missing.

    :raises StorePathError: if ``dest`` is a file or a directory that is not empty
    """
    if not os.path.exists(dest):
        os.mkdir(dest)
    elif not os.path.isdir(dest):
        raise StorePathError(dest, "is a file: a backup goes into a new or empty directory")
    elif os.listdir(dest):
        raise StorePathError(dest, "is not empty: a backup goes into a new or empty directory")


def backup_store(path: str, dest: str) -> dict[str, int]:
    """Copy the store at ``path`` into ``dest`` (a new or empty directory), compacted, as
    one consistent snapshot, while other processes go on using the store; check that the
    copy holds as many entries as the snapshot; return the number of entries of each
    sub-database (``jobs``, ``index``, ``quarantine``, ``meta``).

    :raises StorePathError: if ``dest`` exists and is not an empty directory
    :raises LMDBStoreError: if the copy does not hold what the snapshot held
    """
    prepare_backup_directory(dest)
    store = open_store(path)
    try:
        env = store.environment

        def copy(txn: Transaction) -> dict[str, int]:
            env.env.copy(dest, compact=True, txn=txn)
            return _entry_counts(env.env, txn)

        counts = env.read(copy)
    finally:
        store.shutdown()
    _check_copy(path, dest, counts)
    return counts


def _lock_holder(fd: int) -> int | None:
    """The pid of a process holding a lock that keeps us from an exclusive lock on the
    first byte (Linux), or ``None``."""
    request = _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, 0, 1, 0)
    try:
        kind, _, _, _, pid = _FLOCK.unpack(fcntl.fcntl(fd, fcntl.F_GETLK, request))
    except OSError:
        return None
    return pid if kind != fcntl.F_UNLCK and pid > 0 else None


@contextmanager
def exclusive_use(path: str) -> Iterator[None]:
    """Hold the store at ``path`` for this process alone: no other process has it open,
    and any that opens it waits until the block ends.

    The store must not be open in this process (closing any file of ``lock.mdb`` would
    drop this process's LMDB locks).

    :raises StoreInUseError: if another process has the store open
    """
    fd = os.open(os.path.join(path, _LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 0, os.SEEK_SET)
        except OSError as exc:
            raise StoreInUseError(path, _lock_holder(fd)) from exc
        yield
    finally:
        os.close(fd)


def compact_store(path: str) -> tuple[int, int]:
    """Rewrite the store at ``path`` compacted, which only works while no other process has
    it open; return the sizes of its data file before and after.

    The compacted copy is written beside the store, checked, then renamed over the data
    file; should anything fail before that rename, the store is left as it was.

    :raises StoreInUseError: if another process has the store open
    :raises LMDBStoreError: if the compacted copy does not hold what the store holds
    """
    path = os.path.realpath(path)
    open_store(path).shutdown()  # refuses what is not a store, with why
    data_file = os.path.join(path, _DATA_FILE)
    before = os.path.getsize(data_file)
    with exclusive_use(path):
        work = tempfile.mkdtemp(prefix=".compact-", dir=os.path.dirname(path))
        try:
            # Without LMDB's lock file: its lock is ours already, and closing this
            # environment must not release it.
            with _lmdb_errors(path):
                env = lmdb.open(path, readonly=True, lock=False, max_dbs=MAX_DBS)
                try:
                    with env.begin() as txn:
                        env.copy(work, compact=True, txn=txn)
                        counts = _entry_counts(env, txn)
                finally:
                    env.close()
            _check_copy(path, work, counts)
            os.replace(os.path.join(work, _DATA_FILE), data_file)
            _fsync_path(path)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return before, os.path.getsize(data_file)
