"""Order-preserving byte keys for run times and job ids.

An index key is ``encode_run_time(next_run_time) + encode_job_id(job_id)``, so LMDB's
byte order is the scheduler's order: by run time, ties by id, paused jobs last.
"""

from __future__ import annotations

import hashlib
import struct
from datetime import datetime, timedelta, timezone

RUN_TIME_SIZE = 8
"""Bytes taken by an encoded run time at the start of every index key."""

PAUSED = b"\xff" * RUN_TIME_SIZE
"""The run time key of a paused job: above every real run time."""

MAX_KEY_SIZE = 511
"""LMDB's key size limit (the 0.9 engine's default)."""

MAX_JOB_ID_KEY_SIZE = MAX_KEY_SIZE - RUN_TIME_SIZE
"""Longest encoded job id, so that run time plus id fits in one LMDB key."""

_DIGEST_SIZE = 32
_KEPT_PREFIX = MAX_JOB_ID_KEY_SIZE - _DIGEST_SIZE
_EMPTY_ID_KEY = b"\xff"  # 0xFF never occurs in UTF-8, so it cannot clash with a real id

# Run times count microseconds of UTC from 0000-12-31T00:00 (proleptic Gregorian), so
# that instants of year 1 in time zones east of UTC (before 0001-01-01T00:00Z) stay positive.
_DAY_US = 86_400_000_000
_UTC_START = datetime(1, 1, 1, tzinfo=timezone.utc)
_CALENDAR_START = datetime(1, 1, 1)
_U64 = struct.Struct(">Q")
_LATEST_OFFSET = timedelta(hours=24) - timedelta(microseconds=1)


def wall_clock_microseconds(moment: datetime) -> int:
    """Microseconds from 0000-12-31T00:00 to the wall clock time of ``moment`` (its time
    zone ignored)."""
    seconds = moment.toordinal() * 86_400 + moment.hour * 3600 + moment.minute * 60
    return (seconds + moment.second) * 1_000_000 + moment.microsecond


def encode_run_time(run_time: datetime | None) -> bytes:
    """Encode an aware datetime (or ``None`` for a paused job) as 8 bytes whose byte order
    is the order of the instants they name, at microsecond precision.

    :raises ValueError: if ``run_time`` is naive
    """
    if run_time is None:
        return PAUSED
    offset = run_time.utcoffset()
    if offset is None:
        raise ValueError(f"run time {run_time!r} is naive: it needs a time zone")
    seconds = (
        run_time.toordinal() * 86_400
        + run_time.hour * 3600
        + run_time.minute * 60
        + run_time.second
        - offset.days * 86_400
        - offset.seconds
    )
    return _U64.pack(seconds * 1_000_000 + run_time.microsecond - offset.microseconds)


_UNIX_EPOCH_US = wall_clock_microseconds(datetime(1970, 1, 1))


def encode_timestamp(seconds: float) -> bytes:
    """Encode a POSIX timestamp (``time.time()``) as :func:`encode_run_time` would."""
    return _U64.pack(_UNIX_EPOCH_US + round(seconds * 1_000_000))


def decode_run_time(key: bytes) -> datetime | None:
    """Return the instant an :func:`encode_run_time` key names, as an aware datetime
    (UTC where the calendar allows), or ``None`` for a paused job."""
    global _last_decoded
    encoded = key[:RUN_TIME_SIZE]
    last = _last_decoded
    if encoded == last[0]:
        return last[1]  # a scheduler asks for the same next run time again and again
    if encoded == PAUSED:
        return None
    delta = timedelta(microseconds=_U64.unpack(encoded)[0] - _DAY_US)
    try:
        moment = _UTC_START + delta
    except OverflowError:
        # The first and last hours of the calendar exist in UTC only as other offsets.
        zone = timezone(_LATEST_OFFSET if delta.days < 0 else -_LATEST_OFFSET)
        moment = (_CALENDAR_START + (delta + zone.utcoffset(None))).replace(tzinfo=zone)
    _last_decoded = (encoded, moment)
    return moment


_last_decoded: tuple[bytes, datetime | None] = (PAUSED, None)


def encode_job_id(job_id: str) -> bytes:
    """Encode a job id so that byte order is ``str`` order, in at most
    :data:`MAX_JOB_ID_KEY_SIZE` bytes.

    Ids longer than that keep their first bytes and end in a SHA-256 digest of the whole
    id: they stay distinct, and keep their order wherever they differ early enough.

    :raises TypeError: if ``job_id`` is not a ``str``
    """
    if not isinstance(job_id, str):
        raise TypeError(f"job id must be a str, not {type(job_id).__name__}: {job_id!r}")
    # UTF-8 (surrogates included) preserves code point order, which is str order.
    encoded = job_id.encode("utf-8", "surrogatepass")
    if len(encoded) <= MAX_JOB_ID_KEY_SIZE:
        return encoded
    return encoded[:_KEPT_PREFIX] + hashlib.sha256(encoded).digest()


def job_key(id_key: bytes) -> bytes:
    """The key of a job record: its encoded id, never empty (LMDB refuses empty keys)."""
    return id_key or _EMPTY_ID_KEY


def id_key_of_job_key(key: bytes) -> bytes:
    """The encoded id a job record's key holds: the inverse of :func:`job_key`."""
    return b"" if key == _EMPTY_ID_KEY else key


def index_key(run_time_key: bytes, id_key: bytes) -> bytes:
    """The index key of a job: run time first, then id."""
    return run_time_key + id_key
