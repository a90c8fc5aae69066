"""The compact forms of APScheduler's built-in triggers: what has one, and that restoring
it gives what pickle gives: a trigger of the same class with an equal state."""

from __future__ import annotations

import io
import pickle
import struct
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytz
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from older_formats import in_wall_clock_form

from lmdbstore import triggers
from lmdbstore.triggers import compact_state, restored_state, restored_trigger, slots_known

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
# 01:30 happens twice in New York on 2024-11-03: fold=1 is the second time.
SECOND_1_30 = datetime(2024, 11, 3, 1, 30, 0, 123456, NEW_YORK, fold=1)


class LoudInterval(IntervalTrigger):
    """A user's subclass: its own class must survive, so it keeps plain pickling."""


COMPACT = {
    "interval in a zone": IntervalTrigger(hours=2, timezone=BERLIN),
    "interval with start, end and jitter": IntervalTrigger(
        minutes=5,
        seconds=3,
        start_date=SECOND_1_30,
        end_date=datetime(9999, 12, 31, tzinfo=timezone.utc),
        jitter=7,
        timezone=NEW_YORK,
    ),
    "interval of microseconds, float jitter": IntervalTrigger(
        seconds=1, start_date=datetime(1, 1, 1, 0, 0, 0, 1, timezone.utc), jitter=0.5
    ),
    "cron": CronTrigger(hour="*/3", minute=15, day_of_week="mon-fri", timezone=BERLIN),
    "cron from a crontab": CronTrigger.from_crontab("0 9 1-7 * 1", timezone=NEW_YORK),
    "cron with start, end and jitter": CronTrigger(
        second="*/10",
        start_date=SECOND_1_30,
        end_date=datetime(2030, 1, 1, tzinfo=BERLIN),
        jitter=3,
        timezone=timezone.utc,
    ),
    "date": DateTrigger(SECOND_1_30),
    "date in UTC, before 1970": DateTrigger(datetime(1900, 2, 28, 23, 59, tzinfo=timezone.utc)),
    "interval in a pytz zone (APScheduler makes it a zoneinfo zone)": IntervalTrigger(
        hours=1, timezone=pytz.timezone("Europe/Berlin")
    ),
}

PLAIN = {
    "a date in a pytz zone": DateTrigger(
        pytz.timezone("Europe/Berlin").localize(datetime(2030, 1, 1))
    ),
    "a fixed offset": DateTrigger(datetime(2030, 1, 1, tzinfo=timezone(timedelta(hours=2)))),
    "a zone outside zoneinfo's cache": IntervalTrigger(
        hours=1, timezone=ZoneInfo.no_cache("Europe/Berlin")
    ),
    "a subclass": LoudInterval(hours=1, timezone=BERLIN),
    "a combining trigger": OrTrigger([IntervalTrigger(hours=1, timezone=BERLIN)]),
}


def stored(state: dict[str, Any]) -> dict[str, Any]:
    return restored_state(pickle.loads(pickle.dumps(compact_state(state))))


def pickled(trigger: BaseTrigger) -> BaseTrigger:
    """What pickle makes of ``trigger``: what the compact form must restore."""
    return pickle.loads(pickle.dumps(trigger))  # type: ignore[no-any-return]


def parts(trigger: BaseTrigger) -> dict[str, Any]:
    """What must survive: the trigger's state, and of its datetimes the zone object and fold."""
    state = trigger.__getstate__()  # type: ignore[attr-defined]
    moments = {
        key: (value.tzinfo, value.fold)
        for key, value in state.items()
        if isinstance(value, datetime)
    }
    return {"state": state, "moments": moments, "text": str(trigger)}


@pytest.mark.parametrize("trigger", COMPACT.values(), ids=COMPACT.keys())
def test_a_built_in_trigger_in_zoneinfo_zones_or_utc_has_a_compact_form(
    trigger: BaseTrigger,
) -> None:
    compact = compact_state({"id": "a", "trigger": trigger})
    assert type(compact["trigger"]) is tuple
    assert type(trigger).__name__.encode() not in pickle.dumps(compact)


@pytest.mark.parametrize("trigger", COMPACT.values(), ids=COMPACT.keys())
def test_a_compact_form_restores_the_same_class_with_an_equal_state(
    trigger: BaseTrigger,
) -> None:
    restored = stored({"id": "a", "trigger": trigger})["trigger"]
    assert type(restored) is type(trigger)
    assert parts(restored) == parts(pickled(trigger))


def test_a_compact_form_keeps_each_datetime_as_its_pickled_state_and_zone() -> None:
    trigger = COMPACT["interval with start, end and jitter"]
    compact = compact_state({"trigger": trigger})["trigger"]
    assert compact[2:4] == (
        (SECOND_1_30.__reduce_ex__(4)[1][0], "America/New_York"),  # type: ignore[index]
        (datetime(9999, 12, 31).__reduce_ex__(4)[1][0], None),  # type: ignore[index]
    )


@pytest.mark.parametrize("trigger", COMPACT.values(), ids=COMPACT.keys())
def test_a_compact_form_of_store_formats_2_to_4_restores_the_same_class_with_an_equal_state(
    trigger: BaseTrigger,
) -> None:
    """Their datetimes are wall clock fields, fold and zone."""
    compact = compact_state({"trigger": trigger})["trigger"]
    older = pickle.loads(pickle.dumps(in_wall_clock_form(compact)))
    assert (older != compact) == bool(parts(trigger)["moments"])
    restored = restored_trigger(older)
    assert type(restored) is type(trigger)
    assert parts(restored) == parts(pickled(trigger))


def slot_values(trigger: BaseTrigger) -> dict[str, Any]:
    """Every attribute of ``trigger``, and of its datetimes the zone object and fold."""
    names = type(trigger).__slots__
    values = {
        name: getattr(trigger, name) for name in ([names] if isinstance(names, str) else names)
    }
    for name, value in list(values.items()):
        if isinstance(value, datetime):
            values[f"{name} zone, fold"] = (value.tzinfo, value.fold)
    return values


@pytest.mark.parametrize("direct", [True, False], ids=["slots set directly", "__setstate__"])
@pytest.mark.parametrize("trigger", COMPACT.values(), ids=COMPACT.keys())
def test_a_compact_form_restores_every_attribute_pickle_restores(
    trigger: BaseTrigger, direct: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Set directly (while APScheduler's classes have the slots the store knows) or
    through ``__setstate__`` (if a version of APScheduler changes them)."""
    monkeypatch.setattr(triggers, "_DIRECT", direct)
    restored = stored({"id": "a", "trigger": trigger})["trigger"]
    assert slot_values(restored) == slot_values(pickled(trigger))


def test_the_slots_are_set_directly_only_while_they_are_those_the_store_knows() -> None:
    class Wider(IntervalTrigger):
        __slots__ = ("extra",)

    names = ("timezone", "start_date", "end_date", "interval", "interval_length", "jitter")
    assert slots_known(IntervalTrigger, names)
    assert not slots_known(IntervalTrigger, names[:-1])
    assert not slots_known(Wider, ("extra",))
    assert slots_known(DateTrigger, ("run_date",))
    assert triggers._DIRECT  # APScheduler 3.11's triggers


@pytest.mark.parametrize("trigger", PLAIN.values(), ids=PLAIN.keys())
def test_any_other_trigger_is_pickled_as_it_is(trigger: BaseTrigger) -> None:
    state = {"id": "a", "trigger": trigger}
    assert compact_state(state) is state
    restored = stored(state)["trigger"]
    assert type(restored) is type(trigger)
    assert pickle.dumps(restored) == pickle.dumps(pickled(trigger))


def test_a_zone_read_from_a_file_has_no_compact_form() -> None:
    """Its key names no zone (pickle refuses it too: the store's error names the job)."""
    utc_file = (
        b"TZif" + bytes(16) + struct.pack(">6l", 0, 0, 0, 0, 1, 4) + struct.pack(">lBB", 0, 0, 0)
    )
    zone = ZoneInfo.from_file(io.BytesIO(utc_file + b"UTC\0"), key="Mars/Olympus")
    state = {"id": "a", "trigger": IntervalTrigger(hours=1, timezone=zone)}
    assert compact_state(state) is state


def test_compacting_leaves_the_given_state_alone() -> None:
    trigger = COMPACT["cron"]
    state = {"id": "a", "trigger": trigger}
    compact_state(state)
    assert state == {"id": "a", "trigger": trigger}


def test_jobs_of_one_cron_schedule_share_its_fields() -> None:
    first = stored({"trigger": CronTrigger(hour=3, timezone=BERLIN)})["trigger"]
    second = stored({"trigger": CronTrigger(hour=3, timezone=BERLIN)})["trigger"]
    assert first.fields is second.fields


def test_an_unknown_compact_form_is_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown compact trigger form \(99,\)"):
        restored_state({"trigger": (99, "Europe/Berlin")})
