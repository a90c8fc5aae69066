"""How older versions of lmdbstore wrote what tests of reading it need."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

_MOMENTS = {1: (2, 3), 2: (2, 3), 3: (1,)}
"""Where the datetimes are in each compact trigger form (interval, cron, date)."""


def in_wall_clock_form(compact: tuple[Any, ...]) -> tuple[Any, ...]:
    """A compact trigger as store formats 2 to 4 kept it: each datetime as its wall clock
    fields, ``fold`` and zone, not its pickled state and zone."""
    at = _MOMENTS[compact[0]]
    return tuple(
        _wall_clock(item) if place in at and item is not None else item
        for place, item in enumerate(compact)
    )


def _wall_clock(moment: tuple[bytes, str | None]) -> tuple[Any, ...]:
    state, zone = moment
    naive = cast(Any, datetime)(state)  # datetime's pickled state, without its zone
    return (
        naive.year,
        naive.month,
        naive.day,
        naive.hour,
        naive.minute,
        naive.second,
        naive.microsecond,
        naive.fold,
        zone,
    )
