"""The LMDB environment behind a store: opened once per file per process, grown on
demand, safe across threads and ``fork()``.

LMDB rules this module keeps so that the store does not have to:

- one ``lmdb.Environment`` per data file per process (opening it twice is refused), so
  every store on a path shares one :class:`StoreEnvironment`;
- ``set_mapsize`` invalidates every transaction of the process, so it waits until none
  is open (the :class:`_Gate`);
- a forked child must not use the parent's environment, and closing it there while a
  transaction object is alive releases the parent's reader slots; so ``fork()`` waits
  until no transaction is open, and the child closes the inherited environment (then
  harmless) and opens its own on first use;
- LMDB's exceptions are translated here, and only here, into lmdbstore's.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, NamedTuple, TypeAlias, TypeVar

import lmdb

from .errors import (
    LMDBStoreError,
    NewerFormatError,
    ReadOnlyStoreError,
    SerializerMismatchError,
    StorageError,
    StorePathError,
)

T = TypeVar("T")
# py-lmdb's stubs type every value read as ``bytes | memoryview``; the store never asks
# for buffers, so it reads only bytes, and types its transactions loosely.
Transaction: TypeAlias = Any
Durability = Literal["full", "relaxed"]

FORMAT_VERSION = 5
"""The store format this version of lmdbstore writes and reads. Format 5 keeps the
datetimes of compact triggers as their own pickled state (see triggers.py); format 4
serializes job states as tuples (see serializers.py); format 3 added the move entries of
rescheduled jobs and the values of index entries (see table.py). A store of format 2 to 4
is read as it is, and upgraded when first opened for writing (its records stay as they
are until rewritten).
Format 1 was that of development versions before 0.1.0 (next run times and triggers in
slower encodings)."""
_OLDEST_READ_FORMAT = 2

DEFAULT_MAP_SIZE = 64 * 1024 * 1024
_NEARLY_FULL = 1024 * 1024
MAX_DBS = 8
_DB_NAMES = (b"jobs", b"index", b"meta", b"quarantine", b"moves")  # moves last
_MIN_ROOM = 256 * 1024
_MAX_ROOM = 4 * 1024 * 1024  # a commit that makes room waits for its zeros to be flushed
_ZEROS = memoryview(bytes(_MIN_ROOM))
_READ_IN_CHUNK = 1024 * 1024
_FORMAT_KEY = b"format"
_SERIALIZER_KEY = b"serializer"
_logger = logging.getLogger(__name__)


class _Gate:
    """Lets any number of threads in at once, until one asks to be alone: then it waits
    for those inside to leave and keeps the others out until it is done. Entering and
    leaving take no lock while nobody asks to be alone."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._inside: deque[None] = deque()  # one item per thread inside (atomic appends)
        self._closed = False

    def enter(self) -> None:
        self._inside.append(None)
        if self._closed:  # went in as the gate closed: step out and wait for it to open
            self.leave()
            with self._cond:
                while self._closed:
                    self._cond.wait()
                self._inside.append(None)

    def leave(self) -> None:
        self._inside.pop()
        if self._closed:
            with self._cond:
                self._cond.notify_all()

    def close(self) -> None:
        """Wait until nobody is inside, then keep everyone out until :meth:`reopen`."""
        with self._cond:
            while self._closed:
                self._cond.wait()
            self._closed = True
            while self._inside:
                self._cond.wait()

    def reopen(self) -> None:
        with self._cond:
            self._closed = False
            self._cond.notify_all()

    @contextmanager
    def alone(self) -> Iterator[None]:
        self.close()
        try:
            yield
        finally:
            self.reopen()


class MapFigures(NamedTuple):
    """What an environment's map holds."""

    map_size: int
    used: int
    """Bytes of the pages in use."""
    last_commit: int
    """The id of the last committed transaction."""


class StoreEnvironment:
    """One open LMDB environment holding a store's sub-databases.

    Get one with :func:`open_environment`; give it back with :meth:`release`.
    """

    def __init__(self, path: str, map_size: int, durability: Durability, readonly: bool) -> None:
        self.path = path
        self.durability = durability
        self.readonly = readonly
        self.serializer_name = ""
        self.format_version = FORMAT_VERSION
        """The format version of the store, as its file records it."""
        self._map_size = map_size
        self._page_size = 4096
        self._file_end = 0
        """The length of data.mdb, as last seen."""
        self._gate = _Gate()
        self._env: lmdb.Environment | None = None
        self._pid = os.getpid()
        self._users = 0
        self._fork_unsafe = False
        self._inherited_in_use = False
        self.jobs: lmdb._Database
        self.index: lmdb._Database
        self.meta: lmdb._Database
        self.quarantine: lmdb._Database
        self.moves: lmdb._Database | None
        """The move entries (see table.py); ``None`` in a format 2 store opened read-only."""

    def __repr__(self) -> str:
        return f"<StoreEnvironment {self.path!r}>"

    @property
    def env(self) -> lmdb.Environment:
        """The ``lmdb.Environment`` of this process (opened again after a fork)."""
        if self._env is None:
            self.open()
        assert self._env is not None
        return self._env

    def read(self, operation: Callable[[Transaction], T]) -> T:
        """Run ``operation`` in a read transaction and return what it returns."""
        env, gate = self._env, self._gate
        if env is None:
            return self._run(operation, write=False)
        gate.enter()
        try:
            txn = env.begin()
            try:
                return operation(txn)
            finally:
                txn.abort()
        except lmdb.MapResizedError:
            pass  # another process grew the map: adopt its size and read again
        except lmdb.Error as exc:
            raise self._translate(exc) from exc
        finally:
            gate.leave()
        return self._run(operation, write=False)

    def read_in(self) -> None:
        """Read the data file through once, so that the operating system holds its pages
        in memory before a read of most of them; costs about 1 ms per 10 MB when they are
        in memory already."""
        # The map, its readahead off for a scheduler's random reads, would wait for the
        # disk at the first touch of each page: a first get_all_jobs of 100,000 jobs
        # after the file left memory took 2.6 s, and 1.1 s read in first (ext4, virtio).
        try:
            fd = os.open(os.path.join(self.path, "data.mdb"), os.O_RDONLY)
        except OSError:
            return  # the read itself will meet the problem and say it
        try:
            buffer = [bytearray(_READ_IN_CHUNK)]
            offset = 0
            while read := os.preadv(fd, buffer, offset):
                offset += read
        except OSError as exc:
            _logger.debug("Could not read %r in: %s", self.path, exc)
        finally:
            os.close(fd)

    def figures(self) -> MapFigures:
        """The map's size and use, and the id of the last commit."""
        env = self._env or self.env
        gate = self._gate
        # In the gate, as every LMDB call: a fork waits for calls in flight, for a child
        # inheriting one could never close the environment (py-lmdb waits for it).
        gate.enter()
        try:
            info = env.info()
            page_size = env.stat()["psize"]
        finally:
            gate.leave()
        return MapFigures(
            info["map_size"], (info["last_pgno"] + 1) * page_size, info["last_txnid"]
        )

    def commits(self) -> tuple[int, int]:
        """The id of the last commit that a read transaction begun now sees, and of the last
        commit in the file: the second is ahead while a commit is finishing."""
        return self.read(lambda txn: int(txn.id())), self.figures().last_commit

    def write(self, operation: Callable[[Transaction], T]) -> T:
        """Run ``operation`` in one write transaction, commit it durably (as the
        durability setting promises) and return what it returns.

        If the map is full, the map grows and ``operation`` runs again from the start.
        An exception from ``operation`` aborts the transaction: nothing is written.
        """
        if self.readonly:
            raise ReadOnlyStoreError(self.path)
        return self._run(operation, write=True)

    def _run(self, operation: Callable[[Transaction], T], write: bool) -> T:
        while True:
            env = self._env or self.env
            gate = self._gate
            gate.enter()
            try:
                with env.begin(write=write) as txn:
                    result = operation(txn)
                    if write:
                        self._keep_room(env)
                    return result
            except lmdb.MapFullError:
                grow = True
            except lmdb.MapResizedError:
                grow = False
            except lmdb.Error as exc:
                raise self._translate(exc) from exc
            finally:
                gate.leave()
            self._resize(grow)

    def _keep_room(self, env: lmdb.Environment) -> None:
        """Keep written space in data.mdb past the pages in use, for the pages of coming
        commits: a durable commit that makes the file longer costs a journal commit of the
        file system more (a third of an add's time on ext4). Called in a write
        transaction, so no other commit writes past the pages in use meanwhile."""
        used = (env.info()["last_pgno"] + 1) * self._page_size
        room = min(max(_MIN_ROOM, used // 32), _MAX_ROOM)
        if used + room // 2 <= self._file_end:
            return
        data = os.path.join(self.path, "data.mdb")
        try:
            fd = os.open(data, os.O_WRONLY)
        except OSError:
            return  # the commit will meet the problem and say it
        end = self._file_end
        try:
            end = os.fstat(fd).st_size
            while end < used + room:
                end += os.pwrite(fd, _ZEROS[: used + room - end], end)
        except OSError as exc:
            _logger.debug("Could not make room in %r: %s", data, exc)  # e.g. a full disk
        finally:
            os.close(fd)
        self._file_end = end

    def _resize(self, grow: bool) -> None:
        with self._gate.alone():
            env = self.env
            if grow:
                size = env.info()["map_size"] * 2
                _logger.info("Growing the map of store %r to %d bytes", self.path, size)
                env.set_mapsize(size)
            else:
                env.set_mapsize(0)

    def _translate(self, exc: lmdb.Error) -> LMDBStoreError:
        if isinstance(exc, lmdb.ReadonlyError):
            return ReadOnlyStoreError(self.path)
        message = str(exc)
        free = shutil.disk_usage(self.path).free
        # LMDB reports a write cut short by a full disk as an I/O error.
        if "No space left" in message or ("Input/output" in message and free < _NEARLY_FULL):
            return StorageError(
                f"the store at {self.path!r} cannot be written: the disk is full ({free} bytes "
                f"free); nothing of this call was stored ({message})"
            )
        return StorageError(f"the store at {self.path!r} failed: {message}")

    def open(self) -> None:
        """Open the environment for this process, unless it is open already."""
        if self._env is not None:
            return
        if self._inherited_in_use:
            raise StorePathError(
                self.path,
                "was inherited through fork() while the parent had a transaction of its own "
                "open on it (outside lmdbstore): this process cannot use it; start it with "
                "spawn, or fork when no such transaction is open",
            )
        try:
            env = self._open_lmdb(lock=True)
        except StorePathError:
            if not self.readonly:
                raise
            # A read-only directory may not let us write LMDB's lock file either.
            _logger.warning("The store at %r is opened without LMDB's lock file", self.path)
            env = self._open_lmdb(lock=False)
        try:
            env.reader_check()
            self._check_size(env)
            self._page_size = env.stat()["psize"]
            while True:
                try:
                    self._open_databases(env)
                    break
                except lmdb.MapResizedError:  # another process grew the map meanwhile
                    env.set_mapsize(0)
                except lmdb.Error as exc:
                    raise self._translate(exc) from exc
        except BaseException:
            env.close()
            raise
        self._env = env

    def _check_size(self, env: lmdb.Environment) -> None:
        """Refuse a data file shorter than its pages: reading them would crash (SIGBUS)."""
        needed = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
        size = os.path.getsize(os.path.join(self.path, "data.mdb"))
        if size < needed:
            raise StorePathError(
                self.path, f"holds a truncated data.mdb ({size} of its {needed} bytes)"
            )

    def _open_lmdb(self, lock: bool) -> lmdb.Environment:
        try:
            return lmdb.open(
                self.path,
                map_size=self._map_size,
                max_dbs=MAX_DBS,
                readonly=self.readonly,
                lock=lock,
                metasync=self.durability == "full",
                sync=True,
                readahead=False,
                max_spare_txns=0,
                create=not self.readonly,
            )
        except lmdb.InvalidError as exc:
            raise StorePathError(
                self.path, f"holds a data.mdb that is not an LMDB file ({exc})"
            ) from exc
        except lmdb.VersionMismatchError as exc:
            raise StorePathError(self.path, f"was written by another LMDB engine ({exc})") from exc
        except lmdb.Error as exc:
            if "already open" in str(exc):
                raise StorePathError(
                    self.path, "is already open in this process outside lmdbstore"
                ) from exc
            raise StorePathError(self.path, f"cannot be opened: {exc}") from exc

    def _open_databases(self, env: lmdb.Environment) -> None:
        with env.begin() as txn:
            names = {key for key, _ in txn.cursor()}
        foreign = names - set(_DB_NAMES)
        if foreign:
            raise StorePathError(
                self.path, "is an LMDB environment of another program, not an lmdbstore store"
            )
        if b"meta" not in names and self.readonly:
            raise StorePathError(self.path, "holds no lmdbstore store yet")
        if self.readonly:
            # Handles opened inside a read-only transaction die with it: open them alone.
            # A format 2 store has no move entries, nor their database.
            dbs = [env.open_db(name, create=False) for name in _DB_NAMES[:-1]]
            moves = env.open_db(b"moves", create=False) if b"moves" in names else None
        with env.begin(write=not self.readonly) as txn:
            if not self.readonly:
                dbs = [env.open_db(name, txn=txn) for name in _DB_NAMES[:-1]]
                moves = env.open_db(b"moves", txn=txn)
            meta = dbs[2]
            found = txn.get(_FORMAT_KEY, db=meta)
            if found is None:
                if names & {b"jobs", b"index"}:
                    raise StorePathError(self.path, "lacks its format record: it is damaged")
                txn.put(_FORMAT_KEY, str(FORMAT_VERSION).encode(), db=meta)
                found = str(FORMAT_VERSION).encode()
            if not found.isdigit():
                raise StorePathError(self.path, f"has a damaged format record: {found!r}")
            self.format_version = int(found)
            if self.format_version > FORMAT_VERSION:
                raise NewerFormatError(self.path, self.format_version, FORMAT_VERSION)
            if self.format_version < _OLDEST_READ_FORMAT:
                raise StorePathError(
                    self.path,
                    f"has format version {self.format_version}, that of a development "
                    f"version before lmdbstore 0.1.0, which this version does not read",
                )
            if self.format_version < FORMAT_VERSION and not self.readonly:
                if self.format_version == _OLDEST_READ_FORMAT:
                    from .table import stamp_index  # the table's layout: needs this module

                    stamp_index(txn, dbs[0], dbs[1])
                txn.put(_FORMAT_KEY, str(FORMAT_VERSION).encode(), db=meta)
                self.format_version = FORMAT_VERSION
            serializer = txn.get(_SERIALIZER_KEY, db=meta)
            self.serializer_name = serializer.decode() if serializer else ""
        self.jobs, self.index, self.meta, self.quarantine = dbs
        self.moves = moves

    def claim_serializer(self, name: str) -> None:
        """Record ``name`` as the store's serializer, or check that it is the one recorded.

        :raises SerializerMismatchError: if the store was written with another serializer
        """
        self.open()  # the serializer recorded is known once the environment is open
        if self.serializer_name == name:
            return
        if self.serializer_name:
            raise SerializerMismatchError(self.path, self.serializer_name, name)
        if not self.readonly:
            self.write(lambda txn: txn.put(_SERIALIZER_KEY, name.encode(), db=self.meta))
        self.serializer_name = name

    def release(self) -> None:
        """Give back one use of this environment; the last one closes it."""
        with _registry_lock:
            self._users -= 1
            if self._users:
                return
            del _registry[self.path]
        if self._env is not None and self._pid == os.getpid():
            with self._gate.alone():
                self._env.close()
                self._env = None

    def _before_fork(self) -> None:
        self._gate.close()
        self._fork_unsafe = self._env is not None and _has_open_reads(self._env)

    def _after_fork_in_parent(self) -> None:
        self._gate.reopen()

    def _after_fork_in_child(self) -> None:
        self._gate = _Gate()
        self._pid = os.getpid()
        if self._env is None:
            return
        if self._fork_unsafe:
            # Closing it would end the parent's transactions: keep it open for good.
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(self._env))
            self._inherited_in_use = True
        else:
            # Safe only because no transaction is open: _before_fork waited for that.
            self._env.close()
        self._env = None


_registry: dict[str, StoreEnvironment] = {}
_registry_lock = threading.Lock()


def open_environment(
    path: str | os.PathLike[str],
    *,
    map_size: int = DEFAULT_MAP_SIZE,
    durability: Durability = "full",
    readonly: bool = False,
) -> StoreEnvironment:
    """Return the environment of the store at ``path``, opening (and creating) it if this
    process has not yet; every call must be matched by a :meth:`StoreEnvironment.release`.

    :raises StorePathError: if ``path`` cannot hold a store
    :raises NewerFormatError: if the store was written by a newer lmdbstore
    :raises ValueError: if the store is already open here with another durability
    """
    real = os.path.realpath(os.fspath(path))
    with _registry_lock:
        shared = _registry.get(real)
        if shared is None:
            readonly = readonly or _check_path(real)
            shared = StoreEnvironment(real, map_size, durability, readonly)
            shared.open()  # now, so that a bad path fails here
            _registry[real] = shared
        elif shared.durability != durability:
            raise ValueError(
                f"the store at {real!r} is already open in this process with "
                f"durability={shared.durability!r}, not {durability!r}"
            )
        elif shared.readonly and not readonly:
            raise ReadOnlyStoreError(real)
        shared._users += 1
        return shared


def _has_open_reads(env: lmdb.Environment) -> bool:
    """Whether this process has a transaction open on ``env`` (LMDB's reader table)."""
    pid = str(os.getpid())
    for line in env.readers().splitlines()[1:]:
        fields = line.split()
        if len(fields) == 3 and fields[0] == pid and fields[2] != "-":
            return True
    return False


_LMDB_FILES = frozenset({"lock.mdb", "data.mdb"})
"""The files LMDB makes in a store's directory; while another process creates the store,
the directory holds its lock.mdb alone for a moment."""


def _check_path(path: str) -> bool:
    """Refuse a path that cannot hold a store; return whether it can only be read."""
    if not os.path.exists(path):
        parent = os.path.dirname(path) or "."
        if not os.path.isdir(parent):
            raise StorePathError(path, f"cannot be created: {parent!r} is not a directory")
        if not os.access(parent, os.W_OK):
            raise StorePathError(path, f"cannot be created: {parent!r} is not writable")
        return False
    if not os.path.isdir(path):
        raise StorePathError(path, "is a file, not a store directory")
    try:
        entries = set(os.listdir(path))
    except PermissionError as exc:
        raise StorePathError(path, "cannot be read (permission denied)") from exc
    has_data = "data.mdb" in entries
    if not has_data and not entries <= _LMDB_FILES:
        raise StorePathError(path, "is a directory of something else: it holds no data.mdb")
    data = os.path.join(path, "data.mdb")
    if has_data and not os.access(data, os.R_OK):
        raise StorePathError(path, "cannot be read (permission denied)")
    writable = os.access(path, os.W_OK) and (not has_data or os.access(data, os.W_OK))
    if not writable:
        _logger.warning("The store at %r is read-only: it opens for reading only", path)
    return not writable


def _before_fork() -> None:
    _registry_lock.acquire()
    for shared in _registry.values():
        shared._before_fork()


def _after_fork_in_parent() -> None:
    for shared in _registry.values():
        shared._after_fork_in_parent()
    _registry_lock.release()


def _after_fork_in_child() -> None:
    global _registry_lock
    _registry_lock = threading.Lock()
    for shared in _registry.values():
        shared._after_fork_in_child()


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)
