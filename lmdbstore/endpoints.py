"""The two ends of a copy of jobs, and the two that are ours: an lmdbstore store, and a
file in APScheduler's job export format. (APScheduler's own stores are in
:mod:`lmdbstore.job_stores_by_url`.)

Every end is read and written as job *states*: reading never imports a job's callable and
never deletes a job.
"""

from __future__ import annotations

import os
import sys
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

from apscheduler.job import Job
from apscheduler.jobstores.base import BaseJobStore, ConflictingIdError

from .export_format import decode_value, encode_job, read_export, write_export
from .inspection import load_state, open_store, read_records
from .keys import encode_job_id, job_key
from .records import JobRecord
from .store import LMDBJobStore

JobState = dict[str, Any]
Outcome = Literal["copied", "replaced", "existing"]
"""What adding a job did: stored it anew, replaced one of its id, or left that one alone."""
STANDARD_STREAM = "-"
"""The name of standard input or output, for an export file."""


class EndpointError(Exception):
    """An end of a copy cannot be opened or reached; the message names it."""


class RawJob(NamedTuple):
    """A job as an end holds it, not yet decoded."""

    job_id: str
    data: Any


def _not_imported() -> None:
    """Stands in for the callable of a job built only to be stored."""


_NOT_IMPORTED_REF = f"{__name__}:{_not_imported.__name__}"


def job_for_storing(state: JobState) -> Job:
    """Build a job from its state without importing its callable: good for storing it
    (its state stays as given), not for running it.

    :raises ValueError: if the state is of a newer job format (as ``Job.__setstate__``)
    """
    func = state["func"]
    job = Job.__new__(Job)
    job.__setstate__({**state, "func": _NOT_IMPORTED_REF})
    if isinstance(func, str):
        job.func_ref = func
    else:  # a callable stored by value (cloudpickle)
        job.func, job.func_ref = func, None
    return job


def by_reference(state: JobState, destination: Endpoint) -> JobState:
    """Refuse a state whose callable is stored by value where only references are held."""
    if not isinstance(state["func"], str):
        raise ValueError(
            f"its callable is stored by value (cloudpickle), and {destination} holds only "
            "textual references (module:function)"
        )
    return state


def checked_state(state: object) -> JobState:
    """Return ``state`` if it is a job's state (a dict with an id), or else raise."""
    if not isinstance(state, dict) or not isinstance(state.get("id"), str):
        raise ValueError("it is not a job's state")
    return state


class Endpoint(ABC):
    """A place jobs are copied from or to."""

    description: str

    def __str__(self) -> str:
        return self.description

    @abstractmethod
    def raw_jobs(self) -> list[RawJob]:
        """Return every job, undecoded, read at once."""

    @abstractmethod
    def decode(self, data: Any) -> JobState:
        """Decode a :class:`RawJob`'s data into a job state, next run time included.

        :raises Exception: whatever decoding raises
        """

    @abstractmethod
    def contains(self, job_id: str) -> bool:
        """Whether a job of that id is stored here."""

    def prepare(self) -> None:  # noqa: B027 -- a hook, empty by default
        """Get ready to be written to: connect, create what is missing."""

    @abstractmethod
    def add(self, state: JobState, replace_existing: bool) -> Outcome:
        """Store a job, replacing one of the same id only if ``replace_existing``.

        :raises Exception: whatever storing the job raises
        """

    def add_many(
        self, states: Sequence[JobState], replace_existing: bool
    ) -> list[Outcome | Exception]:
        """Store jobs as :meth:`add` does; return what became of each: its outcome, or the
        exception storing it raised."""
        results: list[Outcome | Exception] = []
        for state in states:
            try:
                results.append(self.add(state, replace_existing))
            except Exception as exc:
                results.append(exc)
        return results

    def finish(self) -> None:  # noqa: B027 -- a hook, empty by default
        """Make what was added durable (a file is written here)."""

    def close(self) -> None:  # noqa: B027 -- a hook, empty by default
        """Let go of connections and files."""


def add_to_store(store: BaseJobStore, state: JobState, replace_existing: bool) -> Outcome:
    """Store a job through a job store's own ``add_job``, or ``update_job`` to replace one."""
    job = job_for_storing(state)
    try:
        store.add_job(job)
    except ConflictingIdError:
        if not replace_existing:
            return "existing"
        store.update_job(job)
        return "replaced"
    return "copied"


class LMDBEndpoint(Endpoint):
    """An lmdbstore store, read record by record; created on the first write if missing.

    :param new_serializer: the serializer of a store created here
    """

    def __init__(self, path: str, new_serializer: str = "pickle") -> None:
        self.description = f"lmdbstore store {path}"
        self.path = path
        self.new_serializer = new_serializer
        self._store: LMDBJobStore | None = None
        if os.path.exists(os.path.join(path, "data.mdb")):
            self._store = open_store(path, new_serializer=new_serializer)

    def raw_jobs(self) -> list[RawJob]:
        if self._store is None:
            raise EndpointError(f"{self.path!r} holds no lmdbstore store")
        return [RawJob(*row) for row in read_records(self._store.environment)]

    def decode(self, data: Any) -> JobState:
        assert self._store is not None
        return load_state(JobRecord.decode(data), self._store.serializer)

    def contains(self, job_id: str) -> bool:
        if self._store is None:
            return False
        env = self._store.environment
        key = job_key(encode_job_id(job_id))
        return env.read(lambda txn: txn.get(key, db=env.jobs)) is not None

    def prepare(self) -> None:
        if self._store is None:
            self._store = open_store(self.path, new_serializer=self.new_serializer)

    def add(self, state: JobState, replace_existing: bool) -> Outcome:
        assert self._store is not None, "prepare() first"
        return add_to_store(self._store, state, replace_existing)

    def add_many(
        self, states: Sequence[JobState], replace_existing: bool
    ) -> list[Outcome | Exception]:
        """Add the jobs that are new in one transaction (one flush to disk, not one per
        job); the others, or all of them if that transaction fails, one by one."""
        store = self._store
        assert store is not None, "prepare() first"
        env = store.environment
        keys = [job_key(encode_job_id(state["id"])) for state in states]
        stored = env.read(lambda txn: [txn.get(key, db=env.jobs) is not None for key in keys])
        fresh = [state for state, there in zip(states, stored, strict=True) if not there]
        try:
            store.add_jobs([job_for_storing(state) for state in fresh])
        except Exception:
            return super().add_many(states, replace_existing)
        return [
            self.add(state, replace_existing) if there else "copied"
            for state, there in zip(states, stored, strict=True)
        ]

    def close(self) -> None:
        if self._store is not None:
            self._store.shutdown()

    @property
    def serializer_name(self) -> str | None:
        """The serializer of the store, if it exists."""
        return self._store.serializer.name if self._store else None

    @property
    def quarantined(self) -> int:
        """How many jobs of this store are in its quarantine (and are not copied)."""
        return len(self._store.get_quarantined_jobs()) if self._store else 0


class ExportFileEndpoint(Endpoint):
    """A file in APScheduler's job export format (``-``: standard input or output).

    Written to, it is a new file: it holds the jobs added, and replaces any file of that
    name once they are all added.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.description = "standard stream" if path == STANDARD_STREAM else f"file {path}"
        self._encoded: dict[str, str] = {}

    def raw_jobs(self) -> list[RawJob]:
        try:
            if self.path == STANDARD_STREAM:
                jobs = read_export(sys.stdin)
            else:
                with open(self.path, encoding="utf-8") as file:
                    jobs = read_export(file)
        except (OSError, ValueError) as exc:
            raise EndpointError(f"cannot read {self}: {exc}") from exc
        return [RawJob(_exported_id(job, number), job) for number, job in enumerate(jobs, 1)]

    def decode(self, data: Any) -> JobState:
        state = checked_state(decode_value(data))
        # JSON turns the tuple of arguments into a list; a Job holds a tuple.
        state["args"] = tuple(state["args"])
        return state

    def contains(self, job_id: str) -> bool:
        return job_id in self._encoded

    def add(self, state: JobState, replace_existing: bool) -> Outcome:
        job_id = state["id"]
        outcome: Outcome = "replaced" if job_id in self._encoded else "copied"
        if outcome == "replaced" and not replace_existing:
            return "existing"
        self._encoded[job_id] = encode_job(by_reference(state, self))
        return outcome

    def finish(self) -> None:
        if self.path == STANDARD_STREAM:
            write_export(self._encoded.values(), sys.stdout)
            sys.stdout.write("\n")
            return
        directory = os.path.dirname(os.path.abspath(self.path))
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=directory, prefix=".export-", delete=False
        ) as file:
            try:
                write_export(self._encoded.values(), file)
                file.flush()
                os.fsync(file.fileno())
            except BaseException:
                os.unlink(file.name)
                raise
        os.replace(file.name, self.path)


def _exported_id(job: Any, number: int) -> str:
    job_id = job.get("id") if isinstance(job, dict) else None
    return job_id if isinstance(job_id, str) else f"(job #{number} of the file, without id)"
