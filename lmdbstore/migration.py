"""Copying jobs from one end to another: what ``migrate``, ``export`` and ``import`` do.

A copy reads and decodes every job of the source first; only if all of them can be read
(or the broken ones are to be skipped) does it write anything to the destination.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from .endpoints import Endpoint, EndpointError, JobState, LMDBEndpoint, RawJob

T = TypeVar("T")
BATCH_SIZE = 500
"""How many jobs are handed to a destination at once (an lmdbstore store adds the new
ones among them in one transaction)."""


class Progress(Protocol):
    """Wraps the items of a long step, to show how far it has gone."""

    def __call__(self, items: Sequence[T], description: str) -> Iterable[T]: ...


def no_progress(items: Sequence[T], description: str) -> Iterable[T]:
    """Shows nothing."""
    return items


class BrokenJobsError(Exception):
    """Some jobs of the source cannot be read, so nothing was written."""

    def __init__(self, source: Endpoint, broken: list[tuple[str, str]]) -> None:
        lines = "".join(f"\n  job {job_id!r}: {error}" for job_id, error in broken)
        super().__init__(
            f"{len(broken)} job(s) of {source} cannot be read, so nothing was written "
            f"(skip them with --skip-broken; add import paths with --path):{lines}"
        )
        self.broken = broken


@dataclass
class CopySummary:
    """What a copy did, or, for a dry run, would do."""

    source: str
    destination: str
    dry_run: bool
    read: int = 0
    copied: int = 0
    replaced: int = 0
    existing: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    """The id of each job that was not copied because of an error, and the error."""
    quarantined: int = 0
    """Jobs in the source's quarantine, which are not copied."""

    def count(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)

    @property
    def ok(self) -> bool:
        """Whether every job read was copied or deliberately left alone."""
        return not self.failed

    def __str__(self) -> str:
        verb = "would copy" if self.dry_run else "copied"
        lines = [
            f"{verb} jobs from {self.source} to {self.destination}",
            f"  read:     {self.read}",
            f"  copied:   {self.copied}",
            f"  replaced: {self.replaced}",
            f"  skipped:  {self.existing} (a job of that id is there already)",
            f"  failed:   {len(self.failed)}",
            *(f"    job {job_id!r}: {error}" for job_id, error in self.failed),
        ]
        if self.quarantined:
            lines.append(f"  not copied: {self.quarantined} quarantined job(s)")
        if self.dry_run:
            lines.append("dry run: nothing was written")
        return "\n".join(lines)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def read_jobs(
    source: Endpoint, progress: Progress = no_progress
) -> tuple[list[JobState], list[tuple[str, str]]]:
    """Read and decode every job of ``source``; return the states, and the id and error of
    each job that cannot be decoded.

    :raises EndpointError: if the source cannot be read at all
    """
    try:
        raw = source.raw_jobs()
    except EndpointError:
        raise
    except Exception as exc:
        raise EndpointError(f"cannot read jobs from {source}: {exc}") from exc
    states = []
    broken = []
    job: RawJob
    for job in progress(raw, "reading"):
        try:
            states.append(source.decode(job.data))
        except Exception as exc:
            broken.append((job.job_id, _describe(exc)))
    return states, broken


def copy_jobs(
    source: Endpoint,
    destination: Endpoint,
    *,
    replace_existing: bool = False,
    skip_broken: bool = False,
    dry_run: bool = False,
    progress: Progress = no_progress,
) -> CopySummary:
    """Copy every job of ``source`` to ``destination``; never import a job's callable.

    :param replace_existing: replace a job of the same id in the destination (else it is
        left alone, and counted as skipped)
    :param skip_broken: copy the jobs that can be read even if some cannot (those count
        as failed); else nothing is written if one cannot be read
    :param dry_run: read both ends and count, but write nothing
    :raises BrokenJobsError: if a job cannot be read and ``skip_broken`` is false
    :raises EndpointError: if an end cannot be read or written at all
    """
    states, broken = read_jobs(source, progress)
    if broken and not skip_broken:
        raise BrokenJobsError(source, broken)
    summary = CopySummary(str(source), str(destination), dry_run, read=len(states) + len(broken))
    summary.failed.extend(broken)
    if isinstance(source, LMDBEndpoint):
        summary.quarantined = source.quarantined
    if dry_run:
        _count_dry_run(states, destination, replace_existing, summary)
        return summary
    destination.prepare()
    batch: list[JobState] = []
    for state in progress(states, "copying"):
        batch.append(state)
        if len(batch) == BATCH_SIZE:
            _add_batch(batch, destination, replace_existing, summary)
    _add_batch(batch, destination, replace_existing, summary)
    destination.finish()
    return summary


def _add_batch(
    batch: list[JobState], destination: Endpoint, replace_existing: bool, summary: CopySummary
) -> None:
    results = destination.add_many(batch, replace_existing)
    for state, result in zip(batch, results, strict=True):
        if isinstance(result, Exception):
            summary.failed.append((state["id"], _describe(result)))
        else:
            summary.count(result)
    batch.clear()


def _count_dry_run(
    states: Sequence[dict[str, Any]],
    destination: Endpoint,
    replace_existing: bool,
    summary: CopySummary,
) -> None:
    try:
        for state in states:
            if not destination.contains(state["id"]):
                summary.copied += 1
            elif replace_existing:
                summary.replaced += 1
            else:
                summary.existing += 1
    except Exception as exc:
        raise EndpointError(f"cannot read {destination}: {exc}") from exc
