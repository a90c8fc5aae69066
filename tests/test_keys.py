"""The key encoding: the byte order of index keys is the scheduler's order.

An index key is ``encode_run_time(next_run_time) + encode_job_id(job_id)``; LMDB keeps keys
in byte order, so the store's order is right exactly when byte order is (instant, id) order.
"""

from __future__ import annotations

from contextlib import suppress
from datetime import datetime, timedelta, timezone
from itertools import combinations
from zoneinfo import ZoneInfo

import pytest
import pytz
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra.pytz import timezones as pytz_timezones

from lmdbstore.keys import (
    MAX_JOB_ID_KEY_SIZE,
    decode_run_time,
    encode_job_id,
    encode_run_time,
    index_key,
)

DAY = timedelta(days=1)
MICROSECOND = timedelta(microseconds=1)
LATEST_EAST = timezone(DAY - MICROSECOND)
LATEST_WEST = timezone(MICROSECOND - DAY)
BERLIN = ZoneInfo("Europe/Berlin")
FIRST_OF_REPEATED_HOUR = datetime(2024, 10, 27, 2, 30, tzinfo=BERLIN)

fixed_offsets = st.timedeltas(min_value=MICROSECOND - DAY, max_value=DAY - MICROSECOND).map(
    timezone
)
zones = st.one_of(fixed_offsets, st.timezones(), pytz_timezones())
run_times = st.datetimes(min_value=datetime.min, max_value=datetime.max, timezones=zones)
# Hypothesis leaves lone surrogates out of text unless asked; a job id may hold them.
characters = st.one_of(st.characters(), st.integers(0xD800, 0xDFFF).map(chr))
# At most 100 characters, so at most 400 UTF-8 bytes: never abbreviated.
short_ids = st.text(characters, max_size=100)


def instant(run_time: datetime) -> timedelta:
    """The instant a run time names, as its distance from 0001-01-01T00:00Z.

    Python compares two datetimes that share a ``tzinfo`` by wall time, ignoring ``fold``
    and the UTC offset; this never does.
    """
    offset = run_time.utcoffset()
    assert offset is not None
    return run_time.replace(tzinfo=None) - datetime.min - offset


def scheduler_order(run_time: datetime | None, job_id: str) -> tuple[bool, timedelta, str]:
    """Where the scheduler wants a job: by instant, then id; paused jobs last, by id."""
    return (run_time is None, instant(run_time) if run_time else timedelta(0), job_id)


def key_of(run_time: datetime | None, job_id: str) -> bytes:
    return index_key(encode_run_time(run_time), encode_job_id(job_id))


def utf8(job_id: str) -> bytes:
    return job_id.encode("utf-8", "surrogatepass")


@st.composite
def neighbours(draw: st.DrawFn) -> list[datetime | None]:
    """A run time with others close to it: 1 µs either side, the same instant in another
    zone, and paused, so that ties and near-ties come up in every example."""
    run_time = draw(run_times)
    other_zone = draw(zones)
    times: list[datetime | None] = [run_time, None]
    for near in (
        lambda: run_time + MICROSECOND,
        lambda: run_time - MICROSECOND,
        lambda: run_time.astimezone(other_zone),
    ):
        with suppress(OverflowError):  # past the end of the calendar
            times.append(near())
    return times


@st.composite
def index_entries(draw: st.DrawFn) -> list[tuple[datetime | None, str]]:
    """Entries drawn from a few run times and ids, so that equal ones are frequent."""
    times = draw(neighbours()) + draw(st.lists(run_times, max_size=3))
    job_ids = draw(st.lists(short_ids, min_size=1, max_size=4))
    return draw(st.lists(st.tuples(st.sampled_from(times), st.sampled_from(job_ids)), min_size=2))


@given(index_entries())
def test_byte_order_of_index_keys_is_run_time_then_id_order(
    entries: list[tuple[datetime | None, str]],
) -> None:
    for first, second in combinations(entries, 2):
        first_key, second_key = key_of(*first), key_of(*second)
        first_place, second_place = scheduler_order(*first), scheduler_order(*second)
        assert (first_key < second_key) == (first_place < second_place)
        assert (first_key == second_key) == (first_place == second_place)


@given(run_times, short_ids, short_ids)
def test_paused_jobs_sort_after_every_run_time(
    run_time: datetime, paused_id: str, job_id: str
) -> None:
    assert key_of(None, paused_id) > key_of(run_time, job_id)


@given(run_times)
@example(datetime.min.replace(tzinfo=LATEST_EAST))
@example(datetime.min.replace(tzinfo=LATEST_WEST))
@example(datetime.max.replace(tzinfo=LATEST_EAST))
@example(datetime.max.replace(tzinfo=LATEST_WEST))
@example(datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc))
@example(FIRST_OF_REPEATED_HOUR.replace(fold=1))
@example(datetime(2024, 3, 31, 2, 30, tzinfo=BERLIN))  # a skipped wall time
def test_a_run_time_decodes_to_the_instant_it_encodes(run_time: datetime) -> None:
    """Compared as instants: Python's ``==`` between datetimes of different zones is always
    False for a wall time that repeats or is skipped."""
    decoded = decode_run_time(encode_run_time(run_time))
    assert decoded is not None
    assert decoded.utcoffset() is not None
    assert instant(decoded) == instant(run_time)


def test_a_repeated_wall_time_sorts_by_its_occurrence() -> None:
    second_zoneinfo = FIRST_OF_REPEATED_HOUR.replace(fold=1)
    first_pytz, second_pytz = (
        pytz.timezone("Europe/Berlin").localize(datetime(2024, 10, 27, 2, 30), is_dst=is_dst)
        for is_dst in (True, False)
    )
    for first, second in [(FIRST_OF_REPEATED_HOUR, second_zoneinfo), (first_pytz, second_pytz)]:
        assert key_of(first, "b") < key_of(second, "a")


def test_a_paused_run_time_decodes_to_none() -> None:
    assert decode_run_time(encode_run_time(None)) is None


@given(run_times)
def test_a_run_time_encodes_in_eight_bytes(run_time: datetime) -> None:
    assert len(encode_run_time(run_time)) == 8


@given(st.text(characters, min_size=504, max_size=700), characters, characters)
@example("x" * 100_000, "a", "b")
@example("é" * 300, "", "z")
def test_long_ids_that_differ_only_at_their_end_stay_distinct(
    common: str, first_end: str, second_end: str
) -> None:
    first, second = common + first_end, common + second_end
    if first != second:
        assert encode_job_id(first) != encode_job_id(second)
    else:
        assert encode_job_id(first) == encode_job_id(second)


@given(
    st.text(characters, max_size=99),
    st.lists(characters, min_size=2, max_size=2, unique=True),
    st.text(characters, max_size=700),
    st.text(characters, min_size=504, max_size=700),
)
def test_long_ids_keep_their_order_when_they_differ_in_their_first_400_bytes(
    common: str, differing: list[str], first_end: str, second_end: str
) -> None:
    first = common + differing[0] + first_end
    second = common + differing[1] + second_end
    assert len(utf8(second)) > MAX_JOB_ID_KEY_SIZE
    assert utf8(first)[:400] != utf8(second)[:400]
    assert (encode_job_id(first) < encode_job_id(second)) == (first < second)


@given(st.text(characters, max_size=1000))
@example("")
@example("\ud800")
def test_an_encoded_id_fits_in_a_key_beside_a_run_time(job_id: str) -> None:
    assert len(encode_job_id(job_id)) <= MAX_JOB_ID_KEY_SIZE
    assert len(key_of(None, job_id)) <= 511


@given(short_ids, short_ids)
def test_id_byte_order_is_str_order(first: str, second: str) -> None:
    assert (encode_job_id(first) < encode_job_id(second)) == (first < second)
    assert (encode_job_id(first) == encode_job_id(second)) == (first == second)


@pytest.mark.parametrize("job_id", [b"job", 42, None, ("job",)])
def test_a_job_id_that_is_not_a_str_is_refused(job_id: object) -> None:
    with pytest.raises(TypeError, match=f"job id must be a str, not {type(job_id).__name__}"):
        encode_job_id(job_id)  # type: ignore[arg-type]


@given(st.datetimes())
def test_a_naive_run_time_is_refused(run_time: datetime) -> None:
    with pytest.raises(ValueError, match="naive"):
        encode_run_time(run_time)
