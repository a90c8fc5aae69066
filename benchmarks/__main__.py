"""``python -m benchmarks``: run the benchmark, write its table, results and chart."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from .chart import draw
from .report import markdown
from .results import WORKLOADS
from .run import Options, run
from .stores import OPT_IN, STORES, redis_server_path
from .targets import check_targets

DEFAULT_SIZES = "1000,10000,100000"
MILLION = 1_000_000
RESULTS = Path(__file__).resolve().parent / "results"


def _names(text: str, known: list[str], what: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown {what} {', '.join(unknown) or '(none given)'}; known: {', '.join(known)}"
        )
    return names


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(size.replace("_", "")) for size in text.split(",") if size.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"sizes must be integers: {text!r}") from exc
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"sizes must be at least 1: {text!r}")
    return sizes


def parse_options(arguments: list[str]) -> tuple[Options, Path]:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark LMDBJobStore against APScheduler's MemoryJobStore, "
        "SQLAlchemyJobStore (SQLite file) and RedisJobStore (if redis-server is on the PATH).",
    )
    parser.add_argument(
        "--sizes",
        type=_sizes,
        default=_sizes(DEFAULT_SIZES),
        help=f"numbers of jobs N, comma-separated (default {DEFAULT_SIZES})",
    )
    parser.add_argument("--include-1m", action="store_true", help="also run N = 1,000,000")
    parser.add_argument(
        "--stores",
        type=lambda text: _names(text, list(STORES), "store"),
        help=f"stores to run, comma-separated, from {','.join(STORES)} (default: all but "
        f"{','.join(sorted(OPT_IN))}, redis if redis-server is on the PATH)",
    )
    parser.add_argument(
        "--workloads",
        type=lambda text: _names(text, WORKLOADS, "workload"),
        default=WORKLOADS,
        help=f"workloads to run (default: all): {','.join(WORKLOADS)}; the bulk load "
        "always runs, as it fills the stores",
    )
    parser.add_argument(
        "--due", type=int, default=1000, help="jobs due in a wakeup, k (default 1000)"
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=1.0,
        help="seconds of sampling per workload, store and N past the minimum samples "
        "(default 1.0)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS,
        help="directory for results.md, results.json and cost-per-op.png "
        "(default benchmarks/results)",
    )
    namespace = parser.parse_args(arguments)
    stores = namespace.stores
    if stores is None:
        stores = [
            name
            for name in STORES
            if name not in OPT_IN and (name != "redis" or redis_server_path())
        ]
    elif "redis" in stores and not redis_server_path():
        parser.error("--stores names redis, but redis-server is not on the PATH")
    sizes = sorted(set(namespace.sizes) | ({MILLION} if namespace.include_1m else set()))
    if namespace.due < 1:
        parser.error("--due must be at least 1")
    command = " ".join(["python -m benchmarks", shlex.join(arguments)]).strip()
    options = Options(sizes, stores, namespace.workloads, namespace.due, namespace.budget, command)
    return options, namespace.out


def main(arguments: list[str] | None = None) -> None:
    options, out = parse_options(sys.argv[1:] if arguments is None else arguments)
    results = run(options)
    targets = check_targets(results)
    out.mkdir(parents=True, exist_ok=True)
    report = markdown(results, targets)
    (out / "results.md").write_text(report)
    results.write_json(out / "results.json", targets)
    draw(results, out / "cost-per-op.png")
    print(report)


if __name__ == "__main__":
    main()
