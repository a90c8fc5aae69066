"""The Markdown report of one run: where it ran, the targets, and a table for each N."""

from __future__ import annotations

from typing import Any

from .results import METRICS, Measurement, Metric, Results
from .stores import OURS, STORES


def number(value: float) -> str:
    """``value`` to about three significant digits, without an exponent."""
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def ratio(value: float) -> str:
    if value >= 10:
        return f"{value:,.0f}x"
    return f"{value:.2f}x" if value >= 0.1 else f"{value:.2g}x"


def markdown(results: Results, targets: list[dict[str, Any]]) -> str:
    lines = [
        "# lmdbstore benchmark: LMDBJobStore and APScheduler's job stores",
        "",
        machine_line(results.machine),
        "",
        settings_line(results.settings),
        "",
    ]
    if OURS in results.stores:
        lines += [
            f"## Targets ({STORES[OURS].label})",
            "",
            "At N = 100,000 unless the target names its N; a run without that N checks it "
            "at its largest (column N). Ratios are of medians.",
            "",
            "| target | N | measured | required | result |",
            "|---|---|---|---|---|",
            *(
                f"| {t['target']} | {t['size']} | {t['measured']} | {t['required']} "
                f"| **{t['result']}** |"
                for t in targets
            ),
            "",
        ]
    for size in results.sizes:
        lines += size_table(results, size)
    lines += [
        "## Notes",
        "",
        "- *Warm*: the record was read or written by this process before and has not "
        "changed since, as in a long-running scheduler. *Cold*: the first read of the record "
        "in a fresh process, each sample on a store object opened for it. The memory store "
        "has no cold state (its cold targets compare with its only figures).",
        "- *wakeup*: the real scheduler's `_process_jobs()` with k jobs due (executor: a "
        "no-op), per due job; warm: the same jobs made due again after each wakeup. *idle "
        "wakeup*: the same with nothing due.",
        "- *bulk load*: `add_jobs` for LMDBJobStore (one transaction), a loop of `add_job` "
        "for the others (they have nothing faster).",
        '- Durability: LMDBJobStore `durability="full"` and SQLite (default '
        "`synchronous=FULL`) are on disk when a call returns. Redis runs with persistence "
        "off (no snapshots, no append-only file); its bytes on disk are the snapshot `SAVE` "
        "writes, its RSS that of the scheduler's process only.",
        "- p99 of fast calls is that of batches of calls (about 20 µs each); a metric with "
        "one sample has no p99.",
        "",
    ]
    return "\n".join(lines)


def machine_line(machine: dict[str, Any]) -> str:
    versions = machine["versions"]
    return (
        f"Measured {machine['date']} on {machine['cpu']} ({machine['logical_cores']} logical "
        f"cores, {machine['physical_cores']} physical, {machine['memory_gb']} GiB), "
        f"{machine['os']}, Python {machine['python']}; APScheduler {versions['apscheduler']}, "
        f"py-lmdb {versions['lmdb']} (LMDB {machine['lmdb_engine']}), SQLAlchemy "
        f"{versions['sqlalchemy']} (SQLite {machine['sqlite']}), redis-py {versions['redis']} "
        f"({machine['redis_server'] or 'no redis-server'}); lmdbstore {versions['lmdbstore']} "
        f"at commit {machine['commit']}."
    )


def settings_line(settings: dict[str, Any]) -> str:
    return (
        f"Command: `{settings['command']}`. Sizes N = "
        f"{', '.join(f'{size:,}' for size in settings['sizes'])}; k = {settings['due']:,} "
        f"due jobs (at most N); {settings['budget']:g} s of sampling per workload, store "
        "and N (past the minimum samples)."
    )


def size_table(results: Results, size: int) -> list[str]:
    stores = [name for name in results.stores if name != OURS]
    ours_present = OURS in results.stores
    header = ["metric"]
    if ours_present:
        header += [f"{STORES[OURS].label}", "p99"]
    for name in stores:
        header += [STORES[name].label, "p99"] + (["x ours"] if ours_present else [])
    lines = [
        f"## N = {size:,}",
        "",
        "Median and p99 of each store's cost per unit; x ours: its median over "
        f"{STORES[OURS].label}'s (above 1: slower)."
        if ours_present
        else "Median and p99 of each store's cost per unit.",
        "",
        "| " + " | ".join(header) + " |",
        "|---|" + "---:|" * (len(header) - 1),
    ]
    for metric in METRICS:
        found = {name: results.get(name, size, metric.key) for name in results.stores}
        if not any(found.values()):
            continue
        ours = found.get(OURS)
        cells = [f"{metric.title} ({metric.shown_in}/{metric.per})"]
        if ours_present:
            cells += _cells(metric, ours)
        for name in stores:
            cells += _cells(metric, found[name])
            if ours_present:
                theirs = found[name]
                cells.append(
                    ratio(theirs.median / ours.median)
                    if ours is not None and theirs is not None and ours.median
                    else "—"
                )
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def _cells(metric: Metric, measurement: Measurement | None) -> list[str]:
    if measurement is None:
        return ["—", "—"]
    p99 = number(measurement.p99 / metric.scale) if measurement.samples > 1 else "—"
    return [number(measurement.median / metric.scale), p99]
