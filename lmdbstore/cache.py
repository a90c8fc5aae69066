"""A cache of decoded job states, so that a record unchanged since this process last read
or wrote it is not unpickled (nor, when only its run time changed, pickled) again.

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
from typing import Any, NamedTuple

from apscheduler.job import Job

_ATOMS = frozenset({type(None), bool, int, float, str, bytes})
_SHARED_PARTS = frozenset({"trigger", "args", "kwargs"})
_TRIGGER_MODULE = "apscheduler.triggers."
_STATE_SLOTS = tuple(
    name
    for name in Job.__slots__
    if name not in {"__weakref__", "_scheduler", "_jobstore_alias", "next_run_time"}
)
Attributes = tuple[tuple[str, Any], ...]


class CachedState(NamedTuple):
    """A decoded record: its stamp, its serialized body, the state that body holds, the
    attributes of a job rebuilt from it, and the job's next run time."""

    stamp: bytes
    body: bytes
    state: dict[str, Any]
    attributes: Attributes
    next_run_time: Any
    args_mutable: bool
    """Whether the arguments hold lists or dicts, which each job gets copies of."""
    func: Any
    """The callable its textual reference named when it was decoded."""
    module: str
    """The module of that reference."""
    path: tuple[str, ...]
    """The names leading from the module to the callable."""

    def is_current(self) -> bool:
        """Whether the reference still names the same callable, as a decode now would
        find (it fails if the callable was removed, and differs if it was reloaded)."""
        obj = sys.modules.get(self.module)
        for name in self.path:
            obj = getattr(obj, name, None)
        return obj is self.func


def job_attributes(job: Job) -> Attributes:
    """The attributes of ``job`` that its state sets (all but its next run time)."""
    return tuple((name, getattr(job, name)) for name in _STATE_SLOTS if hasattr(job, name))


def cache_entry(stamp: bytes, body: bytes, state: dict[str, Any], job: Job) -> CachedState | None:
    """The entry for ``job``, written as (or decoded from) ``body`` from ``state``, or
    ``None`` if its parts cannot be kept (see the module's documentation)."""
    if not shareable(state) or job.args is not state["args"] or job.func_ref != state["func"]:
        return None
    own = {**state, "args": fresh(state["args"]), "kwargs": fresh(state["kwargs"])}
    attributes = tuple(
        (name, own[name] if name in ("args", "kwargs") else value)
        for name, value in job_attributes(job)
    )
    module, _, path = job.func_ref.partition(":")
    return CachedState(
        stamp,
        body,
        own,
        attributes,
        job.next_run_time,
        _mutable(own["args"]),
        job.func,
        module,
        tuple(path.split(".")),
    )


def build_job(cached: CachedState) -> Job:
    """A new job equal to the one ``cached`` was decoded from, independent of it wherever
    a job may change it."""
    job = Job.__new__(Job)
    for name, value in cached.attributes:
        setattr(job, name, value)
    if cached.args_mutable:
        job.args = fresh(job.args)
    job.kwargs = fresh(job.kwargs)
    job.next_run_time = cached.next_run_time
    return job


def _plain(value: Any) -> bool:
    kind = type(value)
    if kind in _ATOMS:
        return True
    if kind is tuple or kind is list:
        return all(map(_plain, value))
    if kind is dict:
        return all(type(key) in _ATOMS for key in value) and all(map(_plain, value.values()))
    return False


def _mutable(value: Any) -> bool:
    """Whether plain ``value`` holds a list or a dict."""
    kind = type(value)
    if kind is list or kind is dict:
        return True
    return kind is tuple and any(map(_mutable, value))


def fresh(value: Any) -> Any:
    """A copy of plain ``value`` that shares none of its lists and dicts."""
    kind = type(value)
    if kind is dict:
        return {key: fresh(item) for key, item in value.items()}
    if kind is list:
        return [fresh(item) for item in value]
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
        return len(a) == len(b) and all(map(same, a, b))
    if kind is dict:
        return len(a) == len(b) and all(
            same(key, other_key) and same(item, other_item)
            for (key, item), (other_key, other_item) in zip(a.items(), b.items(), strict=True)
        )
    return kind in _ATOMS and bool(a == b)


def shareable(state: dict[str, Any]) -> bool:
    """Whether jobs built from ``state`` (without its next run time) may share its parts,
    given their own copies of its lists and dicts."""
    return (
        type(state.get("kwargs")) is dict
        and type(state.get("args")) is tuple
        and type(state.get("trigger")).__module__.startswith(_TRIGGER_MODULE)
        and _plain(state["args"])
        and _plain(state["kwargs"])
        and all(type(v) in _ATOMS for k, v in state.items() if k not in _SHARED_PARTS)
    )


def same_body(state: dict[str, Any], cached: dict[str, Any]) -> bool:
    """Whether ``state`` (without its next run time) serializes to the body ``cached`` was
    decoded from, so that body can be written again as it is."""
    if state.keys() != cached.keys() or state["trigger"] is not cached["trigger"]:
        return False
    return all(
        value is cached[key] or same(value, cached[key])
        for key, value in state.items()
        if key != "trigger"
    )


class StateCache:
    """Decoded states by encoded job id, at most ``capacity`` of them (the oldest written
    go first). Safe to share between threads."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: dict[bytes, CachedState] = {}

    def get(self, id_key: bytes, stamp: bytes) -> CachedState | None:
        """The entry of ``id_key`` if it was decoded from the record stamped ``stamp`` and
        its callable is still the one its reference names."""
        entry = self._entries.get(id_key)
        if entry is None or entry.stamp != stamp or not entry.is_current():
            return None
        return entry

    def latest(self, id_key: bytes) -> CachedState | None:
        """The entry of ``id_key`` whatever its stamp (to reuse its serialized body)."""
        return self._entries.get(id_key)

    def put(self, id_key: bytes, entry: CachedState) -> None:
        """Keep ``entry``; its state and attributes must be :func:`shareable`, and no
        longer changed by anyone (copy a caller's keyword arguments first)."""
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

    def clear(self) -> None:
        self._entries.clear()
