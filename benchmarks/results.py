"""What the benchmark measures (the metrics), what it found (measurements), and where it
found it (the machine), as the JSON results hold them."""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import subprocess
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from .stores import redis_server_version
from .timing import median, percentile


@dataclass(frozen=True)
class Metric:
    """One thing measured, per store and N.

    :param key: its name in the results: the workload's name, with ``.warm`` or ``.cold``
        for the reads measured both ways
    :param workload: the ``--workloads`` name that measures it
    :param title: its name in the table
    :param per: what one sample is the cost of
    :param shown_in: the unit the report shows it in: ``"µs"`` or ``"ms"`` (samples in
        ns), ``"B"`` or ``"MiB"`` (samples in bytes)
    """

    key: str
    workload: str
    title: str
    per: str
    shown_in: str = "µs"

    @property
    def scale(self) -> float:
        """What one unit of :attr:`shown_in` is in the samples' unit."""
        return _SCALES[self.shown_in]


_SCALES = {"µs": 1e3, "ms": 1e6, "B": 1.0, "MiB": float(2**20)}


METRICS = [
    Metric("add_job", "add_job", "add_job", "op"),
    Metric("bulk_load", "bulk_load", "bulk load", "job"),
    Metric("lookup_job.warm", "lookup_job", "lookup_job, warm", "op"),
    Metric("lookup_job.cold", "lookup_job", "lookup_job, cold", "op"),
    Metric("get_all_jobs.warm", "get_all_jobs", "get_all_jobs, warm", "returned job"),
    Metric("get_all_jobs.cold", "get_all_jobs", "get_all_jobs, cold", "returned job"),
    Metric("get_due_jobs.warm", "get_due_jobs", "get_due_jobs, warm", "returned job"),
    Metric("get_due_jobs.cold", "get_due_jobs", "get_due_jobs, cold", "returned job"),
    Metric("update_job", "update_job", "update_job, alone (of a due job)", "op"),
    Metric("wakeup.warm", "wakeup", "wakeup, warm", "due job"),
    Metric("wakeup.cold", "wakeup", "wakeup, cold", "due job"),
    Metric("idle_wakeup", "idle_wakeup", "idle wakeup (nothing due)", "wakeup"),
    Metric(
        "idle_wakeup.store",
        "idle_wakeup",
        "idle wakeup, the store's calls (get_due_jobs, get_next_run_time)",
        "wakeup",
    ),
    Metric("get_next_run_time", "get_next_run_time", "get_next_run_time", "op"),
    Metric("remove_job", "remove_job", "remove_job", "op"),
    Metric("cold_start", "cold_start", "cold start (open + get_next_run_time)", "start", "ms"),
    Metric("cold_start_rss", "cold_start", "cold start, peak RSS", "process", "MiB"),
    Metric("peak_rss", "peak_rss", "peak RSS (open, one wakeup)", "process", "MiB"),
    Metric(
        "peak_rss.private",
        "peak_rss",
        "RSS after that wakeup, private (no mapped file pages)",
        "process",
        "MiB",
    ),
    Metric("disk", "disk", "bytes on disk", "job", "B"),
]
METRIC = {metric.key: metric for metric in METRICS}
WORKLOADS = list(dict.fromkeys(metric.workload for metric in METRICS))


@dataclass(frozen=True)
class Measurement:
    """The samples of one metric of one store at one N, summed up."""

    store: str
    size: int
    metric: str
    median: float
    p99: float
    samples: int

    @classmethod
    def of(cls, store: str, size: int, metric: str, samples: list[float]) -> Measurement:
        if not samples:
            raise ValueError(f"no samples of {metric} for {store} at N={size}")
        return cls(store, size, metric, median(samples), percentile(samples, 0.99), len(samples))


@dataclass
class Results:
    """Everything one run found."""

    machine: dict[str, Any]
    settings: dict[str, Any]
    stores: dict[str, str]
    measurements: list[Measurement]

    def get(self, store: str, size: int, metric: str) -> Measurement | None:
        for measurement in self.measurements:
            if (measurement.store, measurement.size, measurement.metric) == (store, size, metric):
                return measurement
        return None

    @property
    def sizes(self) -> list[int]:
        return sorted({measurement.size for measurement in self.measurements})

    def write_json(self, path: Path, targets: list[dict[str, Any]]) -> None:
        document = {
            "machine": self.machine,
            "settings": self.settings,
            "stores": self.stores,
            "units": "medians and p99 per metric's 'per': in ns, or in bytes for B and MiB",
            "metrics": [asdict(metric) for metric in METRICS],
            "measurements": [asdict(measurement) for measurement in self.measurements],
            "targets": targets,
        }
        path.write_text(json.dumps(document, indent=1) + "\n")


def machine_info() -> dict[str, Any]:
    """The machine, software and code the results come from, and when."""
    import psutil

    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": {
            name: _version(name)
            for name in ("lmdbstore", "apscheduler", "lmdb", "sqlalchemy", "redis")
        },
        "lmdb_engine": _lmdb_engine(),
        "sqlite": sqlite3.sqlite_version,
        "redis_server": redis_server_version(),
        "commit": _commit(),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _lmdb_engine() -> str:
    import lmdb

    return ".".join(map(str, lmdb.version()))


def _commit() -> str | None:
    """The lmdbstore commit measured, marked ``+dirty`` if its files have changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changes = subprocess.run(
            ["git", "status", "--porcelain", "--", "lmdbstore"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{commit}+dirty" if changes else commit
