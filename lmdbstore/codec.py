"""Between a :class:`~apscheduler.job.Job` and its record: serializing, and rebuilding
through the decoded-state cache."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from apscheduler.job import Job

from .cache import (
    CachedState,
    CallableReferences,
    StateCache,
    build_job,
    cache_entry,
    found_callable,
    job_of_parts,
    unchanged,
)
from .errors import JobSerializationError, SerializerMismatchError
from .keys import MAX_JOB_ID_KEY_SIZE, encode_job_id, encode_run_time
from .records import (
    JobRecord,
    decode_next_run_time,
    encode_next_run_time,
    move_run_time,
    new_stamp,
    record_stamp,
)
from .serializers import SERIALIZER_NAMES, Serializer, parts_of_state
from .table import Row

_new_tuple = tuple.__new__


class EncodedJob(NamedTuple):
    """A job ready to be written, and what the decoded-state cache may keep of it."""

    job_id: str
    id_key: bytes
    parts: JobRecord
    """Its record's parts (:meth:`record` joins them)."""
    new_entry: CachedState | None
    """What the cache may keep of it, if its body is new."""
    base: CachedState | None
    """The cache entry of the record this one differs from in its run time alone, if any:
    while that record is stored, the job may be moved instead (see table.py)."""
    move: bytes
    """The job's run time, as a move (:func:`~.records.encode_move`)."""
    next_run_time: Any

    def record(self) -> bytes:
        """The record to write."""
        return self.parts.encode()

    def cache_entry(self) -> CachedState | None:
        """What the cache may keep of the job, once its record is written."""
        base = self.base
        if base is None:
            return self.new_entry
        return base._replace(stamp=self.parts.stamp, next_run_time=self.next_run_time)


class JobCodec:
    """Serializes jobs into records and rebuilds them, keeping the decoded states of the
    records this process wrote or read (``cache_size`` of them; see :meth:`decode`).

    :param path: the store's path, for error messages
    """

    def __init__(self, serializer: Serializer, cache_size: int, path: str) -> None:
        self.serializer = serializer
        self.cache = StateCache(cache_size)
        self._references = CallableReferences()
        self._path = path

    def encode(self, job: Job, keep: bool = True) -> EncodedJob:
        """Serialize ``job``, or raise an error naming what is wrong with it; unless
        ``keep`` is false, with what the cache is to keep of it once it is written.

        :raises TypeError: if its id is not a ``str``, or its next run time no datetime
        :raises ValueError: if its next run time is naive
        :raises JobSerializationError: if it cannot be serialized
        """
        id_key = encode_job_id(job.id)
        next_run_time = getattr(job, "next_run_time", None)
        if next_run_time is not None and not isinstance(next_run_time, datetime):
            raise TypeError(
                f"job {job.id!r} has a next_run_time that is not a datetime: {next_run_time!r}"
            )
        if next_run_time is not None and next_run_time.utcoffset() is None:
            raise ValueError(
                f"job {job.id!r} has a naive next_run_time ({next_run_time}): it needs a time zone"
            )
        serializer = self.serializer
        try:
            cached = self.cache.latest(id_key)
            if cached is not None and not unchanged(job, cached):
                cached = None
            if cached is None:
                state = serializer.job_state(job)
                del state["next_run_time"]
                body = serializer.dumps(state)
            else:
                body = cached.body
            next_run_time_bytes = encode_next_run_time(next_run_time)
        except Exception as exc:
            raise JobSerializationError(job.id, exc) from exc
        full_id = job.id.encode("utf-8", "surrogatepass")
        stamp = new_stamp()
        run_key = encode_run_time(next_run_time)
        record = JobRecord(
            serializer.tag,
            run_key,
            stamp,
            body,
            next_run_time_bytes,
            full_id if len(full_id) > MAX_JOB_ID_KEY_SIZE else b"",
        )
        entry: CachedState | None = None
        # Not for a bound method, whose instance joins the args in the state.
        if cached is None and keep and self.cache.capacity and job.args is state["args"]:
            parts = parts_of_state(state)
            if parts is not None and parts[1] == job.func_ref:
                found = found_callable(job.func, job.func_ref)
                entry = cache_entry(stamp, body, parts, next_run_time, found, copy=True)
        move = run_key + next_run_time_bytes
        return _new_tuple(EncodedJob, (job.id, id_key, record, entry, cached, move, next_run_time))

    def remember(self, written: Iterable[EncodedJob]) -> None:
        """Keep in the cache the state of jobs this process just wrote."""
        for job in written:
            entry = job.cache_entry()
            if entry is None:
                self.cache.discard(job.id_key)
            else:
                self.cache.put(job.id_key, entry)

    def remember_moved(self, moved: Iterable[EncodedJob]) -> None:
        """Keep in the cache the state of jobs this process just moved: their records'."""
        for job in moved:
            if job.base is not None:
                self.cache.put(job.id_key, job.base)

    def restore(self, id_key: bytes, data: bytes, move: bytes) -> Job:
        """Rebuild the job of record ``data`` moved by ``move`` (if not empty): from the
        cache if it holds that record, else by decoding it (and keeping it in the cache).

        :raises Exception: whatever decoding raises: a damaged record, a callable or a
            class that cannot be imported, a record of another serializer
        """
        cached = self.cache.get(id_key, record_stamp(data))
        job = build_job(cached) if cached is not None else self.decode(id_key, data)
        if move:
            job.next_run_time = move_run_time(move)
        return job

    def restore_all(
        self,
        found: Sequence[Job | Row],
        scheduler: Any,
        alias: str | None,
        at_once: bool = True,
    ) -> tuple[list[Job], list[tuple[bytes, bytes, bytes, Exception]]]:
        """Rebuild the jobs of ``found`` (of :func:`~.table.scan`: jobs built from the
        cache, and rows) in order, each owned by ``scheduler`` under ``alias``, by decoding
        the record of each row; return them and the rows that failed, with why. The cache
        keeps what it decodes at once, or only on a second read unless ``at_once`` (see
        :meth:`decode`); but not the rows of a read of more jobs than it holds: they would
        only push out of it the jobs a scheduler reads again and again."""
        jobs = []
        failed = []
        keep = len(found) <= self.cache.capacity
        for item in found:
            if type(item) is not tuple:
                jobs.append(item)
                continue
            id_key, _run_key, _stamp, move, record = item
            data = b"" if record is None else record  # no record: it fails to decode
            try:
                job = self.decode(id_key, data, keep, at_once)
                if move:
                    job.next_run_time = move_run_time(move)
            except Exception as exc:
                self.cache.discard(id_key)
                failed.append((id_key, data, move, exc))
                continue
            job._scheduler = scheduler
            job._jobstore_alias = alias
            jobs.append(job)
        return jobs, failed

    def decode(self, id_key: bytes, data: bytes, keep: bool = True, at_once: bool = True) -> Job:
        """Rebuild the job of record ``data`` (as its record has it, not moved), and keep
        its decoded state in the cache unless ``keep`` is false: at once, or if not
        ``at_once``, when this process reads that record for the second time.

        :raises Exception: as :meth:`restore`
        """
        serializer = self.serializer
        tag, _run_key, stamp, body, next_run_time_bytes, _full_id = JobRecord.decode(data)
        if tag != serializer.tag:
            written = SERIALIZER_NAMES.get(tag, f"#{tag}")
            raise SerializerMismatchError(self._path, written, serializer.name)
        parts = serializer.load_parts(body)
        next_run_time = decode_next_run_time(next_run_time_bytes)
        if isinstance(parts, dict):
            return serializer.build_job({**parts, "next_run_time": next_run_time})
        found = self._references.resolve(parts[1])
        cache = self.cache
        if keep and cache.capacity and (at_once or cache.read_before(id_key, stamp)):
            entry = cache_entry(stamp, body, parts, next_run_time, found)
            if entry is not None:
                cache.put(id_key, entry)
                return build_job(entry)
        return job_of_parts(parts, found[0], next_run_time)  # nobody else has these parts
