"""A cache of decoded job states, so that a record unchanged since this process wrote it
or read it is not unpickled (nor, when only its run time changed, pickled) again. A record
only read is kept from its second read on, unless it is read as due (see
:meth:`StateCache.read_before`).

An entry is valid for one record stamp only: a reader compares it with the stamp of the
record it just read in its own transaction, so a write by any process is never missed.

Jobs built from an entry must stay independent of each other and of the entry, so only
states made of plain parts are kept: arguments and keyword arguments made of ``None``,
booleans, numbers, strings, bytes, and tuples, lists and dicts of those (each job gets its
own copies of the lists and dicts), a textual reference to the callable, and one of
APScheduler's own triggers (shared between jobs: APScheduler never changes a trigger in
place, it replaces it).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from operator import is_
from types import MethodType
from typing import Any, NamedTuple

from apscheduler.job import Job
from apscheduler.util import ref_to_obj

from .records import move_run_time

_ATOMS = frozenset({type(None), bool, int, float, str, bytes})
_TRIGGER_MODULE = "apscheduler.triggers."
_trigger_classes: set[type] = set()
"""The classes of APScheduler's own triggers met so far."""

_new_tuple = tuple.__new__
_new_job = Job.__new__
_FIELDS = 8  # the job parts (serializers.JOB_PARTS) before its arguments
_TRIGGER_FIELD = 2
_modules = sys.modules


class CachedState(NamedTuple):
    """A decoded record: its stamp, its serialized body, the parts of the state that body
    holds (kept by the cache alone), the job's next run time and its callable."""

    stamp: bytes
    body: bytes
    fields: tuple[Any, ...]
    """The job's parts before its arguments (``serializers.JOB_PARTS``), which its jobs
    share."""
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    next_run_time: Any
    args_mutable: bool
    """Whether the arguments hold lists or dicts, which each job gets copies of."""
    kwargs_lists: tuple[str, ...] | None
    """The keyword arguments that are lists of atoms, if all the others are atoms and
    the keys strings (a job's copy of them is then quick to make); else ``None``."""
    func: Any
    """The callable its textual reference named when it was decoded."""
    module: str
    """The module of that reference."""
    path: tuple[str, ...]
    """The names leading from the module to the callable."""


def cache_entry(
    stamp: bytes,
    body: bytes,
    parts: tuple[Any, ...],
    next_run_time: Any,
    callable_found: tuple[Any, str, tuple[str, ...]],
    copy: bool = False,
) -> CachedState | None:
    """The entry for a job of ``parts`` (``serializers.JOB_PARTS``, its trigger restored)
    with this next run time, and whose callable, module and attribute path are
    ``callable_found``; ``None`` unless jobs built from it may share its parts (given their
    own copies of its lists and dicts). The entry keeps the arguments and keyword arguments
    of ``parts`` themselves unless ``copy``: nobody else may hold them then."""
    job_id, _ref, trigger, executor, name, grace_time, coalesce, most, args, kwargs = parts
    if not (
        type(job_id) is str
        and type(executor) is str
        and type(name) is str
        and type(grace_time) in _ATOMS
        and type(coalesce) is bool
        and type(most) is int
        and type(args) is tuple
        and type(kwargs) is dict
        and (type(trigger) in _trigger_classes or _own_trigger(type(trigger)))
    ):
        return None
    if _ATOMS.issuperset(map(type, args)):
        args_mutable = False
    elif _plain_items(args):
        args_mutable = _mutable(args)
    else:
        return None
    lists = _flat_lists(kwargs)
    if lists is None and not _plain(kwargs):
        return None
    if copy:
        args = fresh(args) if args_mutable else args
        kwargs = fresh(kwargs)
    func, module, path = callable_found
    entry = (
        stamp,
        body,
        parts[:_FIELDS],
        args,
        kwargs,
        next_run_time,
        args_mutable,
        lists,
        func,
        module,
        path,
    )
    return _new_tuple(CachedState, entry)  # as CachedState(*entry), without its argument handling


def _own_trigger(cls: type) -> bool:
    """Whether ``cls`` is one of APScheduler's own triggers (which never change in place)."""
    if not cls.__module__.startswith(_TRIGGER_MODULE):
        return False
    _trigger_classes.add(cls)
    return True


def _flat_lists(kwargs: dict[str, Any]) -> tuple[str, ...] | None:
    """The keys of the values of ``kwargs`` that are lists of atoms, if all its other
    values are atoms and its keys strings; else ``None``."""
    lists = []
    for key, value in kwargs.items():
        kind = type(value)
        if type(key) is not str:
            return None
        if kind in _ATOMS:
            continue
        if kind is not list:
            return None
        for item in value:  # a loop: quicker than all() over a generator
            if type(item) not in _ATOMS:
                return None
        lists.append(key)
    return tuple(lists)


def found_callable(func: Any, ref: str) -> tuple[Any, str, tuple[str, ...]]:
    """``func`` with the module and attribute path of its textual reference ``ref``."""
    return (func, *_split(ref))


def _split(ref: str) -> tuple[str, tuple[str, ...]]:
    """The module and the attribute path of a textual reference ``module:a.b``."""
    module, _, path = ref.partition(":")
    return module, tuple(path.split("."))


def _named(module: str, path: tuple[str, ...]) -> Any:
    """What ``module`` and ``path`` name now, among imported modules (``None``: nothing)."""
    obj = _modules.get(module)
    for name in path:
        obj = getattr(obj, name, None)
    return obj


def build_job(cached: CachedState) -> Job:
    """A new job equal to the one ``cached`` was decoded from (what ``Job.__setstate__``
    makes of the state), independent of it wherever a job may change it."""
    args = fresh(cached.args) if cached.args_mutable else cached.args
    lists = cached.kwargs_lists
    if lists is None:
        kwargs = fresh(cached.kwargs)
    else:
        kwargs = cached.kwargs.copy()
        for key in lists:
            kwargs[key] = kwargs[key][:]
    return _job(cached.fields, cached.func, cached.next_run_time, args, kwargs)


def job_builder(scheduler: Any, alias: str | None) -> Callable[[CachedState, bytes], Job | None]:
    """A function for one read of many jobs that builds the job of an entry as
    :func:`build_job` does, moved by a move (if not empty), owned by ``scheduler`` under
    ``alias``; or gives ``None`` if the entry's callable is no longer the one its reference
    names (the job's record must be decoded anew)."""
    checked = None  # the last callable found current in this read: jobs share a few

    def build(entry: CachedState, move: bytes) -> Job | None:
        nonlocal checked
        func = entry.func
        if func is not checked:
            if _named(entry.module, entry.path) is not func:
                return None
            checked = func
        job = build_job(entry)
        if move:
            job.next_run_time = move_run_time(move)
        job._scheduler = scheduler
        job._jobstore_alias = alias
        return job

    return build


def job_of_parts(parts: tuple[Any, ...], func: Any, next_run_time: Any) -> Job:
    """The job ``Job.__setstate__`` makes of the state of ``parts``
    (``serializers.JOB_PARTS``, its trigger restored), with its callable ``func`` and this
    next run time; the job takes the arguments and keyword arguments of ``parts``."""
    return _job(parts[:_FIELDS], func, next_run_time, parts[_FIELDS], parts[_FIELDS + 1])


def _job(fields: tuple[Any, ...], func: Any, next_run_time: Any, args: Any, kwargs: Any) -> Job:
    job = _new_job(Job)
    (
        job.id,
        job.func_ref,
        job.trigger,
        job.executor,
        job.name,
        job.misfire_grace_time,
        job.coalesce,
        job.max_instances,
    ) = fields
    job.func = func
    job.args = args
    job.kwargs = kwargs
    job.next_run_time = next_run_time
    return job


def _plain(value: Any) -> bool:
    kind = type(value)
    if kind in _ATOMS:
        return True
    if kind is dict:
        for key, item in value.items():
            if type(key) not in _ATOMS or (type(item) not in _ATOMS and not _plain(item)):
                return False
        return True
    return (kind is tuple or kind is list) and _plain_items(value)


def _plain_items(items: Iterable[Any]) -> bool:
    for item in items:  # noqa: SIM110 (a loop: twice as fast as all() over a generator)
        if type(item) not in _ATOMS and not _plain(item):
            return False
    return True


def _mutable(value: Any) -> bool:
    """Whether plain ``value`` holds a list or a dict."""
    kind = type(value)
    if kind is list or kind is dict:
        return True
    return kind is tuple and not _ATOMS.issuperset(map(type, value)) and any(map(_mutable, value))


def fresh(value: Any) -> Any:
    """A copy of plain ``value`` that shares none of its lists and dicts."""
    kind = type(value)
    if kind is dict:
        return {key: item if type(item) in _ATOMS else fresh(item) for key, item in value.items()}
    if kind is list:
        return [item if type(item) in _ATOMS else fresh(item) for item in value]
    if kind is tuple and _mutable(value):
        return tuple(map(fresh, value))
    return value


def same(a: Any, b: Any) -> bool:
    """Whether plain ``a`` and ``b`` are equal and serialize identically."""
    kind = type(a)
    if kind is not type(b):
        return False
    if kind is float:
        return bool(a.hex() == b.hex())
    if kind is tuple or kind is list:
        return len(a) == len(b) and _alike(a, b)
    if kind is dict:
        return len(a) == len(b) and _alike(a, b) and _alike(a.values(), b.values())
    return kind in _ATOMS and bool(a == b)


def _alike(a: Iterable[Any], b: Iterable[Any]) -> bool:
    """Whether the items of ``a`` and ``b`` (as many) are the same, pair by pair (mostly
    the very same objects: a job built from the cache shares them)."""
    return all(map(is_, a, b)) or all(map(_is_or_same, a, b))


def _is_or_same(a: Any, b: Any) -> bool:
    return a is b or same(a, b)


def unchanged(job: Job, cached: CachedState) -> bool:
    """Whether ``job``, less its next run time, serializes to the body ``cached`` was
    decoded from, so that body can be written again as it is: found without making the
    job's state (``Job.__getstate__``)."""
    func = job.func
    if func is not cached.func or type(func) is MethodType:
        return False  # Job.__getstate__ puts the instance of a bound method in the args
    if job.trigger is not cached.fields[_TRIGGER_FIELD]:
        return False
    ours = (
        job.id,
        job.func_ref,
        job.trigger,
        job.executor,
        job.name,
        job.misfire_grace_time,
        job.coalesce,
        job.max_instances,
    )
    fields = cached.fields
    if not all(map(is_, ours, fields)):  # jobs built from the cache share its objects
        for value, kept in zip(ours, fields, strict=True):
            if value is not kept and not same(value, kept):
                return False
    args, kwargs = job.args, job.kwargs
    return (args is cached.args or same(args, cached.args)) and (
        kwargs is cached.kwargs or same(kwargs, cached.kwargs)
    )


class CallableReferences:
    """Callables by textual reference, as ``apscheduler.util.ref_to_obj`` finds them, each
    checked again on use (so a removed or reloaded callable is found anew)."""

    def __init__(self) -> None:
        self._found: dict[str, tuple[Any, str, tuple[str, ...]]] = {}

    def resolve(self, ref: str) -> tuple[Any, str, tuple[str, ...]]:
        """The callable ``ref`` names, with its module and attribute path; raises as
        ``ref_to_obj`` does if there is none."""
        found = self._found.get(ref)
        if found is not None and _named(found[1], found[2]) is found[0]:
            return found
        found = self._found[ref] = found_callable(ref_to_obj(ref), ref)
        return found


class StateCache:
    """Decoded states by encoded job id, at most ``capacity`` of them (the oldest written
    go first). Safe to share between threads."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: dict[bytes, CachedState] = {}
        self._read_once: dict[bytes, bytes] = {}
        """The stamps of records read once and not kept yet, by encoded id."""
        self._seen: tuple[int, dict[bytes, tuple[CachedState, bytes]]] = (-1, {})
        """The commit that reads found the entries of these jobs current at, and their
        moves (see :meth:`seen`)."""

    @property
    def entries(self) -> Mapping[bytes, CachedState]:
        """The entries by encoded job id, whatever their stamps and callables (see
        :meth:`get`); not to be changed."""
        return self._entries

    def get(self, id_key: bytes, stamp: bytes) -> CachedState | None:
        """The entry of ``id_key`` if it was decoded from the record stamped ``stamp`` and
        its callable is still the one its reference names."""
        entry = self._entries.get(id_key)
        if entry is None or entry.stamp != stamp:
            return None
        # A decode now would fail if the callable was removed, and differ if it was reloaded.
        named = _modules.get(entry.module)  # as _named(), inline: this is every warm read
        for name in entry.path:
            named = getattr(named, name, None)
        return entry if named is entry.func else None

    def read_before(self, id_key: bytes, stamp: bytes) -> bool:
        """Whether the record stamped ``stamp`` of ``id_key`` was read before (since this
        was last asked of it); it is noted as read now.

        What a lookup or a listing of all jobs decodes is kept from its second read on: a
        record read once is often never read again, and keeping it costs a third of
        its decoding, and some 2 KB."""
        once = self._read_once
        if once.pop(id_key, None) == stamp:
            return True
        if len(once) >= self.capacity:
            once.clear()
        once[id_key] = stamp
        return False

    def seen(self, commit: int, id_key: bytes) -> tuple[CachedState, bytes] | None:
        """The entry and the move of ``id_key``, if a read of the store as of commit
        ``commit`` (a transaction id) found them (:meth:`see`) and the entry is still one
        :meth:`get` gives: a read at that same commit sees the same record and move."""
        at, found = self._seen
        hit = found.get(id_key) if at == commit else None
        if hit is None or self.get(id_key, hit[0].stamp) is not hit[0]:
            return None
        return hit

    def see(self, commit: int, id_key: bytes, entry: CachedState, move: bytes) -> None:
        """Note that the store as of commit ``commit`` holds the record of ``entry``
        (from :meth:`get`) for job ``id_key``, moved by ``move``."""
        at, found = self._seen
        if at != commit or len(found) >= max(self.capacity, 1):
            found = {}
            self._seen = (commit, found)
        found[id_key] = (entry, move)

    def forget_seen(self) -> None:
        """Forget what :meth:`see` noted (before the store's file is opened anew)."""
        self._seen = (-1, {})

    def latest(self, id_key: bytes) -> CachedState | None:
        """The entry of ``id_key`` whatever its stamp (to reuse its serialized body)."""
        return self._entries.get(id_key)

    def put(self, id_key: bytes, entry: CachedState) -> None:
        """Keep ``entry`` (of :func:`cache_entry`); its parts must no longer be changed by
        anyone."""
        if not self.capacity:
            return
        entries = self._entries
        entries.pop(id_key, None)
        entries[id_key] = entry
        while len(entries) > self.capacity:
            try:
                entries.pop(next(iter(entries)), None)
            except (StopIteration, RuntimeError):  # emptied or changed by another thread
                break

    def discard(self, id_key: bytes) -> None:
        self._entries.pop(id_key, None)
        self._seen[1].pop(id_key, None)

    def clear(self) -> None:
        self._entries.clear()
        self._read_once.clear()
        self.forget_seen()
