"""Fixtures shared by the whole suite: stores on ``tmp_path``, time zones, job factories."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytz
from apscheduler.job import Job
from apscheduler.jobstores.base import BaseJobStore
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger

from lmdbstore import LMDBJobStore

TESTS = Path(__file__).parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))  # so that spawned processes import tests' helpers


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slow", action="store_true", help="also run the long crash and stress runs")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: a long crash or stress run (needs --slow)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="a long run: pass --slow to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=["zoneinfo", "pytz"])
def timezone(request: pytest.FixtureRequest) -> tzinfo:
    """A time zone with daylight saving, from each of the two libraries users have."""
    if request.param == "pytz":
        return pytz.timezone("Europe/Berlin")
    return ZoneInfo("Europe/Berlin")


def localize(zone: tzinfo, naive: datetime) -> datetime:
    """Attach ``zone`` to a naive datetime the right way for both pytz and zoneinfo."""
    localize = getattr(zone, "localize", None)
    return localize(naive) if localize else naive.replace(tzinfo=zone)


@pytest.fixture
def scheduler(timezone: tzinfo) -> BackgroundScheduler:
    """A scheduler that is never started: stores only need it as the owner of their jobs."""
    return BackgroundScheduler(timezone=timezone)


def make_lmdb(path: Path) -> LMDBJobStore:
    return LMDBJobStore(path / "jobs.lmdb")


def make_memory(path: Path) -> MemoryJobStore:
    return MemoryJobStore()


def make_sqlalchemy(path: Path) -> SQLAlchemyJobStore:
    return SQLAlchemyJobStore(url=f"sqlite:///{path / 'jobs.sqlite'}")


STORE_FACTORIES: dict[str, Callable[[Path], BaseJobStore]] = {
    "lmdb": make_lmdb,
    "memory": make_memory,
    "sqlalchemy": make_sqlalchemy,
}


@pytest.fixture(params=list(STORE_FACTORIES))
def store(
    request: pytest.FixtureRequest, tmp_path: Path, scheduler: BackgroundScheduler
) -> Iterator[BaseJobStore]:
    """Each job store the contract is checked against, started under the alias "store"."""
    store = STORE_FACTORIES[request.param](tmp_path)
    store.start(scheduler, "store")
    yield store
    store.shutdown()


@pytest.fixture
def lmdb_store(tmp_path: Path, scheduler: BackgroundScheduler) -> Iterator[LMDBJobStore]:
    store = LMDBJobStore(tmp_path / "jobs.lmdb")
    store.start(scheduler, "store")
    yield store
    store.shutdown()


def dummy_job(*args: Any, **kwargs: Any) -> None:
    """The callable of most test jobs: it does nothing."""


@pytest.fixture
def make_job(scheduler: BackgroundScheduler, timezone: tzinfo) -> Callable[..., Job]:
    """Build a job (not yet stored) running ``dummy_job`` at ``run_time``.

    ``run_time`` may be naive (taken in the test time zone), aware, or ``None`` (paused).
    """

    def make(
        id: str = "job",
        run_time: datetime | None = datetime(2999, 1, 1),
        func: Any = dummy_job,
        **changes: Any,
    ) -> Job:
        if run_time is not None and run_time.tzinfo is None:
            run_time = localize(timezone, run_time)
        trigger = DateTrigger(run_time or datetime(2999, 1, 1), timezone)
        job = Job(
            scheduler,
            id=id,
            func=func,
            trigger=trigger,
            executor="default",
            args=(),
            kwargs={},
            name=changes.pop("name", id),
            misfire_grace_time=1,
            coalesce=False,
            max_instances=1,
            next_run_time=run_time,
        )
        if changes:
            job._modify(**changes)
        return job

    return make
