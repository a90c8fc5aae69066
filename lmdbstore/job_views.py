"""How the command line shows jobs and stores: tables, fields, JSON-ready dictionaries.

Times are shown in the local time zone of the process (``TZ``) and in UTC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any

from .inspection import StoredJob, StoreStats, callable_reference

_NOT_READ = "?"


def local_time(moment: datetime | None) -> str:
    """A moment in the local time zone, to the second, with the zone's abbreviation."""
    return "paused" if moment is None else moment.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def utc_time(moment: datetime | None) -> str:
    """A moment in UTC, to the second."""
    if moment is None:
        return "paused"
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def iso_time(moment: datetime | None, utc: bool = True) -> str | None:
    """A moment in ISO 8601, in UTC or in the local time zone, for JSON."""
    if moment is None:
        return None
    return moment.astimezone(timezone.utc if utc else None).isoformat()


def byte_size(size: int) -> str:
    """A size in bytes, in binary units."""
    amount = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    raise AssertionError("unreachable")


def yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns as wide as their widest cell, two spaces apart."""
    widths = [max(map(len, column)) for column in zip(headers, *rows, strict=True)]
    lines = (
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in (headers, *rows)
    )
    return "\n".join(line.rstrip() for line in lines)


def fields(pairs: Sequence[tuple[str, object]]) -> str:
    """``name: value`` lines, the values aligned."""
    width = max(len(name) for name, _ in pairs) + 2
    return "\n".join(f"{name + ':':<{width}}{value}" for name, value in pairs)


JOB_HEADERS = (
    "ID",
    "NAME",
    "FUNC",
    "TRIGGER",
    "NEXT RUN (LOCAL)",
    "NEXT RUN (UTC)",
    "PAUSED",
    "QUARANTINED",
)


def _state_part(job: StoredJob, name: str) -> Any:
    return None if job.state is None else job.state.get(name)


def job_row(job: StoredJob) -> list[str]:
    """A job's row under :data:`JOB_HEADERS`."""
    state = job.state
    return [
        job.job_id,
        _NOT_READ if state is None else str(state.get("name")),
        _NOT_READ if state is None else callable_reference(state.get("func")),
        _NOT_READ if state is None else str(state.get("trigger")),
        local_time(job.next_run_time),
        utc_time(job.next_run_time),
        yes_no(job.next_run_time is None),
        yes_no(job.quarantine is not None),
    ]


def job_summary(job: StoredJob) -> dict[str, Any]:
    """What ``list --json`` tells of a job."""
    state = job.state
    return {
        "id": job.job_id,
        "name": None if state is None else str(state.get("name")),
        "func": None if state is None else callable_reference(state.get("func")),
        "trigger": None if state is None else str(state.get("trigger")),
        "next_run_time": iso_time(job.next_run_time),
        "next_run_time_local": iso_time(job.next_run_time, utc=False),
        "paused": job.next_run_time is None,
        "quarantined": job.quarantine is not None,
        "problem": job.problem or None,
    }


def job_details(job: StoredJob) -> dict[str, Any]:
    """What ``show --json`` tells of a job: its summary, every other field of its state,
    and its quarantine entry."""
    details = job_summary(job)
    for name in ("executor", "misfire_grace_time", "coalesce", "max_instances"):
        details[name] = _state_part(job, name)
    for name in ("args", "kwargs"):
        details[name] = None if job.state is None else repr(job.state.get(name))
    quarantine = job.quarantine
    details["quarantined_at"] = None if quarantine is None else iso_time(quarantine.quarantined_at)
    details["quarantine_error"] = None if quarantine is None else quarantine.error
    return details


def _stored_time(moment: datetime | None) -> str:
    """A moment as stored: in its own time zone, named."""
    return "paused" if moment is None else f"{moment.isoformat()} ({moment.tzinfo})"


def job_fields(job: StoredJob) -> str:
    """Every field of a job, one a line, for ``show``."""
    details = job_details(job)
    pairs: list[tuple[str, object]] = [
        ("id", job.job_id),
        ("name", details["name"]),
        ("func", details["func"]),
        ("trigger", details["trigger"]),
        ("next run time", None if job.state is None else _stored_time(job.state["next_run_time"])),
        ("next run (local)", local_time(job.next_run_time)),
        ("next run (UTC)", utc_time(job.next_run_time)),
        ("paused", yes_no(details["paused"])),
        ("executor", details["executor"]),
        ("args", details["args"]),
        ("kwargs", details["kwargs"]),
        ("misfire grace time", details["misfire_grace_time"]),
        ("coalesce", details["coalesce"]),
        ("max instances", details["max_instances"]),
        ("quarantined", yes_no(details["quarantined"])),
    ]
    if job.quarantine is not None:
        pairs.append(("quarantined at", utc_time(job.quarantine.quarantined_at) + " UTC"))
        pairs.append(("quarantine error", job.quarantine.error))
    if job.problem:
        pairs.append(("problem", f"its state cannot be read here: {job.problem}"))
    return fields([(name, _NOT_READ if value is None else value) for name, value in pairs])


QUARANTINE_HEADERS = ("ID", "QUARANTINED AT (UTC)", "FUNC", "ERROR")


def quarantine_row(job: StoredJob) -> list[str]:
    """A quarantined job's row under :data:`QUARANTINE_HEADERS`."""
    assert job.quarantine is not None
    return [
        job.job_id,
        utc_time(job.quarantine.quarantined_at),
        _NOT_READ if job.state is None else callable_reference(job.state.get("func")),
        job.quarantine.error,
    ]


def stats_fields(stats: StoreStats) -> str:
    """A store's counts and sizes, one a line, for ``stats``."""
    used = 100 * stats.map_used / stats.map_size
    next_run = (
        "none"
        if stats.jobs == stats.paused
        else f"{local_time(stats.next_run_time)} ({utc_time(stats.next_run_time)} UTC)"
    )
    return fields(
        [
            ("store", stats.path),
            ("format version", stats.format_version),
            ("serializer", stats.serializer),
            ("jobs", f"{stats.jobs} ({stats.paused} paused)"),
            ("quarantined", stats.quarantined),
            ("next run", next_run),
            ("map size", byte_size(stats.map_size)),
            ("map used", f"{byte_size(stats.map_used)} ({used:.1f}%)"),
            ("data file", byte_size(stats.file_size)),
        ]
    )


def stats_summary(stats: StoreStats) -> dict[str, Any]:
    """What ``stats --json`` tells."""
    return {**asdict(stats), "next_run_time": iso_time(stats.next_run_time)}
