"""The benchmark harness runs end to end at a tiny N and writes its outputs (never checks
timings)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_benchmarks(
    *arguments: str, module: str = "benchmarks"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_tiny_run_writes_table_results_and_chart(tmp_path: Path) -> None:
    for module in ("matplotlib", "psutil"):
        pytest.importorskip(module, reason="the benchmark's own dependencies (extra: bench)")
    done = run_benchmarks(
        "--sizes", "50", "--stores", "lmdb,memory", "--due", "10", "--budget", "0.01",
        "--out", str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr

    table = (tmp_path / "results.md").read_text()
    assert done.stdout.startswith(table)
    assert "| metric | LMDBJobStore | p99 | MemoryJobStore | p99 | x ours |" in table
    assert "| wakeup, warm (µs/due job) |" in table
    assert "**PASS**" in table or "**FAIL**" in table

    results = json.loads((tmp_path / "results.json").read_text())
    assert results["machine"]["python"]
    measured = {(m["store"], m["metric"]) for m in results["measurements"]}
    for store in ("lmdb", "memory"):
        assert {(store, "bulk_load"), (store, "wakeup.warm"), (store, "peak_rss")} <= measured
    assert ("lmdb", "lookup_job.cold") in measured
    assert ("lmdb", "cold_start") in measured
    assert ("memory", "lookup_job.cold") not in measured

    assert (tmp_path / "cost-per-op.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_unknown_store_is_refused(tmp_path: Path) -> None:
    done = run_benchmarks("--stores", "lmdb,nosuchstore", "--out", str(tmp_path))
    assert done.returncode == 2
    assert "nosuchstore" in done.stderr
    assert not (tmp_path / "results.md").exists()


def test_the_commit_floor_run_writes_its_table(tmp_path: Path) -> None:
    pytest.importorskip("psutil", reason="the benchmark's own dependencies (extra: bench)")
    out = tmp_path / "commit-floor.md"
    done = run_benchmarks(
        "--size", "50", "--budget", "0.01", "--out", str(out), module="benchmarks.commit_floor"
    )
    assert done.returncode == 0, done.stderr

    table = out.read_text()
    assert done.stdout == table
    rows = [line for line in table.splitlines() if line.startswith("| ") and "µs" not in line]
    assert [row.split(" | ")[0] for row in rows] == [
        "| disk: 1 page, fdatasync, a 120-byte O_DSYNC write",
        "| disk: 9 pages all over it, fdatasync, a 120-byte O_DSYNC write",
        "| disk: 9 adjacent pages, fdatasync, a 120-byte O_DSYNC write",
        "| bare py-lmdb: a record and its index entry, one commit",
        "| LMDBJobStore.add_job",
        "| SQLAlchemyJobStore.add_job (SQLite)",
    ]
    assert rows[-1].endswith("| 1.00x |")


def test_the_commit_floor_run_refuses_a_size_below_one(tmp_path: Path) -> None:
    done = run_benchmarks(
        "--size", "0", "--out", str(tmp_path / "floor.md"), module="benchmarks.commit_floor"
    )
    assert done.returncode == 2
    assert "--size must be at least 1" in done.stderr
    assert not (tmp_path / "floor.md").exists()
