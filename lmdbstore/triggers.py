"""Compact forms of APScheduler's built-in triggers, for job states to serialize.

Pickle restores a trigger by looking up each class it names (the trigger's, its time
zone's, ``datetime``, ``timedelta``), which costs most of the time it takes to restore a
job. A trigger made of parts the store can name more briefly (an interval, cron or date
trigger whose time zones are ``zoneinfo`` zones or UTC) is kept in a job's serialized
state as a tuple of plain numbers, strings and bytes instead, which pickle restores with
no lookup. Restoring that tuple gives a trigger of the same class with an equal state.

These tuples are part of the record format (since store format 2; their datetimes have
their present form since format 5, and the older form is still read).
"""

from __future__ import annotations

import pickle
from datetime import datetime, timedelta, timezone
from typing import Any, cast
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

_Zone = str | None
"""A time zone: the key of a ``zoneinfo`` zone, or ``None`` for UTC."""
_Moment = tuple[bytes, _Zone]
"""An aware datetime: its own pickled state (wall clock fields and ``fold``, ten bytes),
and its time zone. Stores of format 2 to 4 have the older form :data:`_WallClock`."""
_WallClock = tuple[int, int, int, int, int, int, int, int, _Zone]
"""An aware datetime: its wall clock fields, ``fold`` and time zone."""
_from_state: Any = datetime
"""``datetime``, which makes ``datetime(state, zone)`` of a pickled state (as pickle does;
typeshed does not know that form)."""


class _Unencodable(Exception):
    """A trigger part the compact forms cannot name."""


_INTERVAL, _CRON, _DATE = 1, 2, 3


def compact_state(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` (a job's) with its trigger in compact form, if it has one; else ``state``."""
    trigger: Any = state.get("trigger")
    encode = _ENCODERS.get(type(trigger))
    if encode is None:
        return state
    try:
        compact = encode(trigger.__getstate__())
    except _Unencodable:
        return state
    return {**state, "trigger": compact}


def restored_trigger(trigger: Any) -> Any:
    """``trigger`` restored, if it is in compact form (serialized and restored); else
    ``trigger`` itself.

    :raises ValueError: if it is a compact form this module does not make
    """
    if type(trigger) is not tuple:
        return trigger
    restore = _RESTORERS.get(trigger[0]) if trigger else None
    if restore is None:
        raise ValueError(f"unknown compact trigger form {trigger[:1]!r}")
    return restore(*trigger[1:])


def restored_state(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` (made by :func:`compact_state`, then serialized and restored) with its
    trigger restored, changed in place.

    :raises ValueError: if its compact trigger is not one this module makes
    """
    compact = state.get("trigger")
    if type(compact) is tuple:
        state["trigger"] = restored_trigger(compact)
    return state


def _zone(zone: Any) -> _Zone:
    if zone is timezone.utc:
        return None
    if type(zone) is ZoneInfo and zone.key is not None:
        try:
            named = ZoneInfo(zone.key)
        except (KeyError, ValueError, OSError):  # a zone read from a file, its key no name
            raise _Unencodable from None
        if named is zone:
            return zone.key
    raise _Unencodable


def _moment(value: Any) -> _Moment | None:
    if value is None:
        return None
    if type(value) is not datetime:
        raise _Unencodable
    state = cast(tuple[Any, ...], value.__reduce_ex__(4))[1][0]  # (datetime, (state, zone))
    return state, _zone(value.tzinfo)


def _jitter(value: Any) -> int | float | None:
    if value is None or type(value) is int or type(value) is float:
        return value
    raise _Unencodable


def _check(state: dict[str, Any], version: int, keys: frozenset[str]) -> None:
    if state.get("version") != version or state.keys() != keys:
        raise _Unencodable


_INTERVAL_KEYS = frozenset(("version", "timezone", "start_date", "end_date", "interval", "jitter"))
_CRON_KEYS = frozenset(("version", "timezone", "start_date", "end_date", "fields", "jitter"))
_DATE_KEYS = frozenset(("version", "run_date"))


def _encode_interval(state: dict[str, Any]) -> tuple[Any, ...]:
    _check(state, 2, _INTERVAL_KEYS)
    interval = state["interval"]
    if type(interval) is not timedelta:
        raise _Unencodable
    return (
        _INTERVAL,
        _zone(state["timezone"]),
        _moment(state["start_date"]),
        _moment(state["end_date"]),
        interval.days,
        interval.seconds,
        interval.microseconds,
        _jitter(state["jitter"]),
    )


def _encode_cron(state: dict[str, Any]) -> tuple[Any, ...]:
    _check(state, 2, _CRON_KEYS)
    return (
        _CRON,
        _zone(state["timezone"]),
        _moment(state["start_date"]),
        _moment(state["end_date"]),
        pickle.dumps(state["fields"], pickle.HIGHEST_PROTOCOL),
        _jitter(state["jitter"]),
    )


def _encode_date(state: dict[str, Any]) -> tuple[Any, ...]:
    _check(state, 1, _DATE_KEYS)
    return (_DATE, _moment(state["run_date"]))


_ENCODERS = {
    IntervalTrigger: _encode_interval,
    CronTrigger: _encode_cron,
    DateTrigger: _encode_date,
}


_restored_zones: dict[str, Any] = {}
_ZONES_KEPT = 256


def _restored_zone(key: _Zone) -> Any:
    if key is None:
        return timezone.utc
    zone = _restored_zones.get(key)
    if zone is None:
        if len(_restored_zones) >= _ZONES_KEPT:
            _restored_zones.clear()
        zone = _restored_zones[key] = ZoneInfo(key)
    return zone


def _restored_moment(moment: _Moment | _WallClock | None) -> datetime | None:
    if moment is None:
        return None
    if len(moment) == 2:
        state, zone = moment
        return _from_state(state, _restored_zone(zone))  # type: ignore[no-any-return]
    year, month, day, hour, minute, second, microsecond, fold, zone = moment
    if fold:
        return datetime(
            year, month, day, hour, minute, second, microsecond, _restored_zone(zone), fold=1
        )
    return datetime(year, month, day, hour, minute, second, microsecond, _restored_zone(zone))


_intervals: dict[tuple[int, int, int], tuple[timedelta, float]] = {}
_INTERVALS_KEPT = 1024


def _interval(days: int, seconds: int, microseconds: int) -> tuple[timedelta, float]:
    # Jobs of one interval share it (timedeltas never change): making one costs more than
    # restoring the trigger's datetimes.
    key = (days, seconds, microseconds)
    found = _intervals.get(key)
    if found is None:
        if len(_intervals) >= _INTERVALS_KEPT:
            _intervals.clear()
        interval = timedelta(days, seconds, microseconds)
        found = _intervals[key] = (interval, interval.total_seconds())
    return found


_fields: dict[bytes, Any] = {}
_FIELDS_KEPT = 1024


def _restored_fields(data: bytes) -> Any:
    # Jobs of one cron schedule share its fields, as jobs share a trigger: APScheduler never
    # changes a trigger's fields in place.
    fields = _fields.get(data)
    if fields is None:
        if len(_fields) >= _FIELDS_KEPT:
            _fields.clear()
        fields = _fields[data] = pickle.loads(data)
    return fields


def _restored(cls: Any, state: dict[str, Any]) -> BaseTrigger:
    trigger = cls.__new__(cls)
    trigger.__setstate__(state)
    return trigger


def slots_known(cls: Any, names: tuple[str, ...]) -> bool:
    """Whether ``cls`` has exactly the slots ``names``, and its bases none."""
    slots = cls.__dict__.get("__slots__", ("__dict__",))
    return set((slots,) if isinstance(slots, str) else slots) == set(names) and all(
        base.__dict__.get("__slots__", ("__dict__",)) == () for base in cls.__mro__[1:-1]
    )


# While APScheduler's built-in triggers have the slots their __setstate__ sets (as in
# 3.11), a compact form sets them directly: twice as fast as building their state.
_INTERVAL_SLOTS = ("timezone", "start_date", "end_date", "interval", "interval_length", "jitter")
_CRON_SLOTS = ("timezone", "start_date", "end_date", "fields", "jitter")
_DIRECT = (
    slots_known(IntervalTrigger, _INTERVAL_SLOTS)
    and slots_known(CronTrigger, _CRON_SLOTS)
    and slots_known(DateTrigger, ("run_date",))
)
_new_interval = IntervalTrigger.__new__
_new_cron = CronTrigger.__new__
_new_date = DateTrigger.__new__


def _restore_interval(
    zone: _Zone,
    start: _Moment | _WallClock | None,
    end: _Moment | _WallClock | None,
    days: int,
    seconds: int,
    microseconds: int,
    jitter: int | float | None,
) -> BaseTrigger:
    interval, length = _interval(days, seconds, microseconds)
    if not _DIRECT:
        return _restored(
            IntervalTrigger,
            {
                "version": 2,
                "timezone": _restored_zone(zone),
                "start_date": _restored_moment(start),
                "end_date": _restored_moment(end),
                "interval": interval,
                "jitter": jitter,
            },
        )
    trigger = _new_interval(IntervalTrigger)
    trigger.timezone = _restored_zone(zone)
    trigger.start_date = _restored_moment(start)
    trigger.end_date = _restored_moment(end)
    trigger.interval = interval
    trigger.interval_length = length
    trigger.jitter = jitter
    return trigger


def _restore_cron(
    zone: _Zone,
    start: _Moment | _WallClock | None,
    end: _Moment | _WallClock | None,
    fields: bytes,
    jitter: int | float | None,
) -> BaseTrigger:
    if not _DIRECT:
        return _restored(
            CronTrigger,
            {
                "version": 2,
                "timezone": _restored_zone(zone),
                "start_date": _restored_moment(start),
                "end_date": _restored_moment(end),
                "fields": _restored_fields(fields),
                "jitter": jitter,
            },
        )
    trigger = _new_cron(CronTrigger)
    trigger.timezone = _restored_zone(zone)
    trigger.start_date = _restored_moment(start)
    trigger.end_date = _restored_moment(end)
    trigger.fields = _restored_fields(fields)
    trigger.jitter = jitter
    return trigger


def _restore_date(run_date: _Moment | _WallClock | None) -> BaseTrigger:
    if not _DIRECT:
        return _restored(DateTrigger, {"version": 1, "run_date": _restored_moment(run_date)})
    trigger = _new_date(DateTrigger)
    trigger.run_date = _restored_moment(run_date)
    return trigger


_RESTORERS: dict[Any, Any] = {
    _INTERVAL: _restore_interval,
    _CRON: _restore_cron,
    _DATE: _restore_date,
}
