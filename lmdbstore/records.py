"""The byte layout of what the store keeps: job records and quarantine entries.

A job record is a fixed header followed by the serialized job::

    offset  size  field
    0       4     CRC-32 of everything after it
    4       1     record format (RECORD_FORMAT)
    5       1     serializer tag
    6       8     run time key (keys.encode_run_time of the job's next run time)
    14      8     stamp: random bytes, new at every write; equal stamps mean equal records
    22      4     length of the full id (0 unless the key had to abbreviate the id)
    26      4     length of the body
    30      ...   full id (UTF-8), body (the job's state without its next run time),
                  then the next run time (encode_next_run_time)

The next run time is apart from the rest so that a write that changes only it can reuse
the serialized body. A scheduler wakeup does not even rewrite the record: it moves the job
(see table.py), and the move carries the job's run time (:func:`encode_move`).
"""

from __future__ import annotations

import itertools
import os
import pickle
import struct
import zlib
from collections.abc import Iterator
from datetime import datetime, tzinfo
from typing import NamedTuple

from .keys import RUN_TIME_SIZE, decode_run_time, encode_run_time

RECORD_FORMAT = 2
_HEADER = struct.Struct(">IBB8s8sII")
_CRC = struct.Struct(">I")


class CorruptRecordError(ValueError):
    """A record's bytes are not what the store wrote."""


_WALL_CLOCK = struct.Struct(">HBBBBBIB")
# Pickled time zones both ways: a process meets few of them, and pickling one costs more
# than all the rest of a wakeup's write.
_zone_bytes: dict[tzinfo, bytes] = {}
_zones: dict[bytes, tzinfo] = {}
_ZONES_KEPT = 256


def encode_next_run_time(run_time: datetime | None) -> bytes:
    """Encode a job's next run time exactly: wall clock fields, ``fold`` and time zone
    object (pickled), so that :func:`decode_next_run_time` gives back an equal datetime in
    the same zone, whichever time zone library made it."""
    if run_time is None:
        return b""
    zone = run_time.tzinfo
    assert zone is not None
    zone_bytes = _zone_bytes.get(zone)
    if zone_bytes is None:
        if len(_zone_bytes) >= _ZONES_KEPT:
            _zone_bytes.clear()
        zone_bytes = _zone_bytes[zone] = pickle.dumps(zone, 4)
    wall_clock = _WALL_CLOCK.pack(
        run_time.year,
        run_time.month,
        run_time.day,
        run_time.hour,
        run_time.minute,
        run_time.second,
        run_time.microsecond,
        run_time.fold,
    )
    return wall_clock + zone_bytes


def decode_next_run_time(data: bytes) -> datetime | None:
    """Decode what :func:`encode_next_run_time` made."""
    if not data:
        return None
    year, month, day, hour, minute, second, microsecond, fold = _WALL_CLOCK.unpack_from(data)
    zone_bytes = data[_WALL_CLOCK.size :]
    zone = _zones.get(zone_bytes)
    if zone is None:
        if len(_zones) >= _ZONES_KEPT:
            _zones.clear()
        zone = _zones[zone_bytes] = pickle.loads(zone_bytes)
    if fold:  # a keyword argument costs more than all the others
        return datetime(year, month, day, hour, minute, second, microsecond, zone, fold=1)
    return datetime(year, month, day, hour, minute, second, microsecond, zone)


def _stamp_counter() -> Iterator[int]:
    return itertools.count(int.from_bytes(os.urandom(8), "big"))


_stamps = _stamp_counter()
_U64 = struct.Struct(">Q")


def _reseed_stamps_after_fork() -> None:
    global _stamps
    _stamps = _stamp_counter()


os.register_at_fork(after_in_child=_reseed_stamps_after_fork)


def new_stamp() -> bytes:
    """Return a stamp for a record being written: unique across writes and processes
    (each process counts from its own random start)."""
    return _U64.pack(next(_stamps) & 0xFFFF_FFFF_FFFF_FFFF)


_new_tuple = tuple.__new__


class JobRecord(NamedTuple):
    """A job as stored, its parts still serialized."""

    serializer_tag: int
    run_key: bytes
    stamp: bytes
    body: bytes
    next_run_time: bytes
    full_id: bytes = b""

    def encode(self) -> bytes:
        """Return the record's bytes."""
        rest = _HEADER.pack(
            0,
            RECORD_FORMAT,
            self.serializer_tag,
            self.run_key,
            self.stamp,
            len(self.full_id),
            len(self.body),
        )[_CRC.size :]
        data = b"".join((rest, self.full_id, self.body, self.next_run_time))
        return _CRC.pack(zlib.crc32(data)) + data

    @classmethod
    def decode(cls, data: bytes) -> JobRecord:
        """Split a record's bytes into its parts.

        :raises CorruptRecordError: if the bytes fail their checksum or are not a record
        """
        if len(data) < _HEADER.size:
            raise CorruptRecordError(f"record of {len(data)} bytes is shorter than its header")
        crc, fmt, tag, run_key, stamp, id_length, body_length = _HEADER.unpack_from(data)
        if zlib.crc32(data[_CRC.size :]) != crc:
            raise CorruptRecordError("record fails its checksum: its bytes were damaged")
        if fmt != RECORD_FORMAT:
            raise CorruptRecordError(f"record format {fmt} is unknown")
        body_start = _HEADER.size + id_length
        body_end = body_start + body_length
        parts = (
            tag,
            run_key,
            stamp,
            data[body_start:body_end],
            data[body_end:],
            data[_HEADER.size : body_start],
        )
        return _new_tuple(cls, parts)  # as cls(*parts), without its argument handling


def encode_move(run_time: datetime | None) -> bytes:
    """Encode where a wakeup moved a job: its run time key, then its exact next run time
    (:func:`encode_next_run_time`)."""
    return encode_run_time(run_time) + encode_next_run_time(run_time)


def move_run_time(move: bytes) -> datetime | None:
    """The next run time of a job moved by ``move`` (:func:`encode_move`)."""
    return decode_next_run_time(move[RUN_TIME_SIZE:])


def moved_record(data: bytes, move: bytes) -> bytes:
    """Record ``data`` as it reads after ``move`` (:func:`encode_move`): its run time that
    of the move, all else the same, its stamp included (so never for the decoded-state
    cache, which takes equal stamps for equal records). For reading and copying jobs.

    :raises CorruptRecordError: if ``data`` is not a record
    """
    if not move:
        return data
    record = JobRecord.decode(data)._replace(
        run_key=move[:RUN_TIME_SIZE], next_run_time=move[RUN_TIME_SIZE:]
    )
    return record.encode()


def record_job_id(id_key: bytes, data: bytes) -> str:
    """The id of the job a record holds, even when the record does not decode."""
    try:
        full_id = JobRecord.decode(data).full_id
    except CorruptRecordError:
        full_id = b""
    if full_id:
        return full_id.decode("utf-8", "surrogatepass")
    try:
        return id_key.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:  # an abbreviated id whose record lost its full id
        return id_key.decode("utf-8", "replace")


def record_stamp(data: bytes) -> bytes:
    """The stamp of a record, read without checking the rest of it."""
    return data[14:22]


def record_run_key(data: bytes) -> bytes:
    """The run time key of a record, read without checking the rest of it."""
    return data[6:14]


class QuarantineEntry(NamedTuple):
    """A job record that could not be restored, kept with why and when."""

    job_id: str
    error: str
    quarantined_at: datetime
    record: bytes

    def encode(self) -> bytes:
        """Return the entry's bytes."""
        job_id = self.job_id.encode("utf-8", "surrogatepass")
        error = self.error.encode("utf-8", "replace")
        head = _QUARANTINE_HEADER.pack(
            encode_run_time(self.quarantined_at), len(job_id), len(error)
        )
        return b"".join((head, job_id, error, self.record))

    @classmethod
    def decode(cls, data: bytes) -> QuarantineEntry:
        """Read an entry made by :meth:`encode`."""
        at_key, id_length, error_length = _QUARANTINE_HEADER.unpack_from(data)
        start = _QUARANTINE_HEADER.size
        job_id = data[start : start + id_length].decode("utf-8", "surrogatepass")
        start += id_length
        error = data[start : start + error_length].decode("utf-8")
        at = decode_run_time(at_key)
        if at is None:
            raise CorruptRecordError("quarantine entry has no time")
        return cls(job_id, error, at, data[start + error_length :])


_QUARANTINE_HEADER = struct.Struct(">8sII")
