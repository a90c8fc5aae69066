"""The job store contract (``apscheduler.jobstores.base.BaseJobStore``), as a specification.

Every test runs on each store of the ``store`` fixture (LMDBJobStore, APScheduler's
MemoryJobStore, SQLAlchemyJobStore on SQLite) and with each time zone library, so that the
same assertions show the same behaviour. Where a store truly behaves otherwise, the test is
restricted with :func:`on_stores` and the skipped stores say why.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta, tzinfo
from datetime import timezone as fixed_timezone
from typing import Any

import pytest
from apscheduler.job import Job
from apscheduler.jobstores.base import BaseJobStore, ConflictingIdError, JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from conftest import STORE_FACTORIES, dummy_job, localize

MakeJob = Callable[..., Job]

MORNING = datetime(2024, 7, 1, 9)
NOON = datetime(2024, 7, 1, 12)
EVENING = datetime(2024, 7, 1, 18)
NEXT_DAY = datetime(2024, 7, 2, 9)
MICROSECOND = timedelta(microseconds=1)


def on_stores(*names: str, reason: str) -> pytest.MarkDecorator:
    """Run a test on the named stores only; the others are reported as skipped, with why."""
    return pytest.mark.parametrize(
        "store",
        [
            pytest.param(
                name, marks=() if name in names else pytest.mark.skip(reason=f"{name}: {reason}")
            )
            for name in STORE_FACTORIES
        ],
        indirect=True,
    )


persistent_stores = on_stores(
    "lmdb",
    "sqlalchemy",
    reason="MemoryJobStore keeps the job objects it is given: it never serializes them",
)


def ids(jobs: list[Job]) -> list[str]:
    return [job.id for job in jobs]


def add_jobs(store: BaseJobStore, make_job: MakeJob, *jobs: tuple[str, datetime | None]) -> None:
    """Add a job running at each given (naive: in the test time zone) time; None: paused."""
    for job_id, run_time in jobs:
        store.add_job(make_job(job_id, run_time))


def fields(job: Job) -> dict[str, Any]:
    """Everything a job is made of, comparable with ``==`` (triggers by their state)."""
    return {
        "id": job.id,
        "name": job.name,
        "func": job.func,
        "func_ref": job.func_ref,
        "args": job.args,
        "kwargs": job.kwargs,
        "trigger": (type(job.trigger), job.trigger.__getstate__()),
        "executor": job.executor,
        "misfire_grace_time": job.misfire_grace_time,
        "coalesce": job.coalesce,
        "max_instances": job.max_instances,
        "next_run_time": job.next_run_time,
    }


# -- add_job and lookup_job ------------------------------------------------------------------


def test_added_job_is_looked_up_with_every_field_kept(
    store: BaseJobStore, make_job: MakeJob, timezone: tzinfo
) -> None:
    trigger = IntervalTrigger(
        minutes=90, start_date=localize(timezone, datetime(2024, 7, 1, 10, 30)), timezone=timezone
    )
    job = make_job(
        "every-field",
        datetime(2024, 7, 1, 12, 0, 0, 123456),
        trigger=trigger,
        name="A job with every field set",
        args=(1, "two", [3.0]),
        kwargs={"four": {"five": 5}},
        executor="other",
        misfire_grace_time=30,
        coalesce=True,
        max_instances=3,
    )
    store.add_job(job)

    restored = store.lookup_job("every-field")

    assert fields(restored) == fields(job)
    assert restored.func is dummy_job
    assert restored.next_run_time.tzinfo == job.next_run_time.tzinfo
    assert restored.next_run_time.isoformat() == "2024-07-01T12:00:00.123456+02:00"


def test_a_paused_job_is_looked_up_paused(store: BaseJobStore, make_job: MakeJob) -> None:
    add_jobs(store, make_job, ("paused", None))

    assert store.lookup_job("paused").next_run_time is None


def test_lookup_of_a_missing_id_returns_none(store: BaseJobStore, make_job: MakeJob) -> None:
    add_jobs(store, make_job, ("present", NOON))

    assert store.lookup_job("missing") is None


def test_duplicate_id_is_refused_and_stored_job_is_kept(
    store: BaseJobStore, make_job: MakeJob, timezone: tzinfo
) -> None:
    store.add_job(make_job("twice", NOON, name="first"))

    with pytest.raises(ConflictingIdError, match=r"Job identifier \(twice\) conflicts"):
        store.add_job(make_job("twice", MORNING, name="second"))

    kept = store.lookup_job("twice")
    assert (kept.name, kept.next_run_time) == ("first", localize(timezone, NOON))
    assert ids(store.get_all_jobs()) == ["twice"]
    assert store.get_next_run_time() == kept.next_run_time


# -- update_job ------------------------------------------------------------------------------


def test_update_of_a_missing_id_raises_job_lookup_error_and_adds_nothing(
    store: BaseJobStore, make_job: MakeJob, timezone: tzinfo
) -> None:
    add_jobs(store, make_job, ("present", NOON))

    with pytest.raises(JobLookupError, match="No job by the id of missing was found"):
        store.update_job(make_job("missing", MORNING))

    assert store.lookup_job("missing") is None
    assert ids(store.get_all_jobs()) == ["present"]
    assert store.get_next_run_time() == localize(timezone, NOON)


def test_update_replaces_the_stored_job(store: BaseJobStore, make_job: MakeJob) -> None:
    add_jobs(store, make_job, ("changing", NOON))

    store.update_job(make_job("changing", NOON, name="renamed", args=(1, 2), max_instances=5))

    changed = store.lookup_job("changing")
    assert (changed.name, changed.args, changed.max_instances) == ("renamed", (1, 2), 5)


def test_a_returned_job_changed_and_updated_is_stored_changed(
    store: BaseJobStore, make_job: MakeJob, timezone: tzinfo
) -> None:
    """What the scheduler does at each wakeup and in ``modify_job``: it changes the very
    job object the store returned, then gives it back."""
    add_jobs(store, make_job, ("a", MORNING), ("b", NOON))
    [due] = store.get_due_jobs(localize(timezone, MORNING))

    due._modify(next_run_time=localize(timezone, EVENING), name="changed")
    store.update_job(due)

    assert ids(store.get_all_jobs()) == ["b", "a"]
    assert store.lookup_job("a").name == "changed"
    assert store.get_next_run_time() == localize(timezone, NOON)


def test_update_that_changes_the_run_time_reorders_the_jobs(
    store: BaseJobStore, make_job: MakeJob, timezone: tzinfo
) -> None:
    add_jobs(store, make_job, ("a", MORNING), ("b", NOON), ("c", EVENING))

    store.update_job(make_job("a", NEXT_DAY))

    assert ids(store.get_all_jobs()) == ["b", "c", "a"]
    assert store.get_next_run_time() == localize(timezone, NOON)
    assert ids(store.get_due_jobs(localize(timezone, EVENING))) == ["b", "c"]
    assert store.lookup_job("a").next_run_time == localize(timezone, NEXT_DAY)


def test_pausing_through_update_moves_the_job_last(
    store: BaseJobStore, make_job: MakeJob, timezone: tzinfo
) -> None:
    add_jobs(store, make_job, ("a", MORNING), ("b", NOON), ("c", EVENING))

    store.update_job(make_job("a", None))

    assert ids(store.get_all_jobs()) == ["b", "c", "a"]
    assert store.lookup_job("a").next_run_time is None
    assert store.get_next_run_time() == localize(timezone, NOON)
    assert ids(store.get_due_jobs(localize(timezone, NEXT_DAY))) == ["b", "c"]


def test_resuming_through_update_puts_the_job_back_in_run_time_order(
    store: BaseJobStore, make_job: MakeJob, timezone: tzinfo
) -> None:
    add_jobs(store, make_job, ("a", None), ("b", NOON), ("c", EVENING))

    store.update_job(make_job("a", MORNING))

    assert ids(store.get_all_jobs()) == ["a", "b", "c"]
    assert store.get_next_run_time() == localize(timezone, MORNING)


# -- remove_job and remove_all_jobs ----------------------------------------------------------


def test_remove_job_removes_that_job_only(
    store: BaseJobStore, make_job: MakeJob, timezone: tzinfo
) -> None:
    add_jobs(store, make_job, ("a", MORNING), ("b", NOON), ("c", None))

    store.remove_job("a")

    assert store.lookup_job("a") is None
    assert ids(store.get_all_jobs()) == ["b", "c"]
    assert store.get_next_run_time() == localize(timezone, NOON)


def test_remove_of_a_missing_id_raises_job_lookup_error_and_keeps_the_jobs(
    store: BaseJobStore, make_job: MakeJob
) -> None:
    add_jobs(store, make_job, ("present", NOON))

    with pytest.raises(JobLookupError, match="No job by the id of missing was found"):
        store.remove_job("missing")

    assert ids(store.get_all_jobs()) == ["present"]


def test_a_removed_id_can_be_added_again(
    store: BaseJobStore, make_job: MakeJob, timezone: tzinfo
) -> None:
    add_jobs(store, make_job, ("again", NOON))
    store.remove_job("again")

    store.add_job(make_job("again", MORNING))

    assert store.lookup_job("again").next_run_time == localize(timezone, MORNING)


def test_remove_all_jobs_empties_the_store(
    store: BaseJobStore, make_job: MakeJob, timezone: tzinfo
) -> None:
    add_jobs(store, make_job, ("a", MORNING), ("b", NOON), ("c", None))

    store.remove_all_jobs()

    assert store.get_all_jobs() == []
    assert store.lookup_job("a") is None
    assert store.get_due_jobs(localize(timezone, NEXT_DAY)) == []
    assert store.get_next_run_time() is None
    add_jobs(store, make_job, ("a", NOON))
    assert ids(store.get_all_jobs()) == ["a"]


# -- order -----------------------------------------------------------------------------------


def test_jobs_are_ordered_by_next_run_time_with_paused_jobs_last(
    store: BaseJobStore, make_job: MakeJob
) -> None:
    add_jobs(
        store,
        make_job,
        ("noon", NOON),
        ("paused-1", None),
        ("next-day", NEXT_DAY),
        ("morning", MORNING),
        ("paused-2", None),
        ("evening", EVENING),
    )

    all_ids = ids(store.get_all_jobs())

    assert all_ids[:4] == ["morning", "noon", "evening", "next-day"]
    assert sorted(all_ids[4:]) == ["paused-1", "paused-2"]


@on_stores(
    "lmdb",
    "memory",
    reason="SQLAlchemyJobStore orders equal run times and paused jobs by insertion (SQLite "
    "rowid), not by id",
)
def test_jobs_with_equal_run_times_and_paused_jobs_are_ordered_by_id(
    store: BaseJobStore, make_job: MakeJob, timezone: tzinfo
) -> None:
    noon_in_utc = localize(timezone, NOON).astimezone(fixed_timezone.utc)
    add_jobs(store, make_job, ("z-paused", None), ("c", NOON), ("a-paused", None))
    store.add_job(make_job("a", noon_in_utc))
    add_jobs(store, make_job, ("b", NOON), ("m-paused", None), ("0-morning", MORNING))

    assert ids(store.get_all_jobs()) == [
        "0-morning",
        "a",
        "b",
        "c",
        "a-paused",
        "m-paused",
        "z-paused",
    ]
    assert ids(store.get_due_jobs(noon_in_utc)) == ["0-morning", "a", "b", "c"]


def test_jobs_one_microsecond_apart_keep_their_order(
    store: BaseJobStore, make_job: MakeJob, timezone: tzinfo
) -> None:
    earlier = datetime(2024, 7, 1, 12, 0, 0, 1)
    later = earlier + MICROSECOND
    add_jobs(store, make_job, ("a-later", later), ("b-earlier", earlier))
    earlier_aware = localize(timezone, earlier)

    assert ids(store.get_all_jobs()) == ["b-earlier", "a-later"]
    assert ids(store.get_due_jobs(earlier_aware)) == ["b-earlier"]
    assert store.get_next_run_time() == earlier_aware


@on_stores(
    "lmdb",
    reason="it keeps run times as float seconds since 1970, too coarse far from 1970 to tell "
    "1 µs apart",
)
@pytest.mark.parametrize(
    "earlier",
    [
        datetime(1, 6, 1, 12, 0, 0, 1),
        datetime(1000, 6, 1, 12, 0, 0, 1),
        datetime(2999, 6, 1, 12, 0, 0, 1),
        datetime(9999, 12, 30, 23, 59, 59, 999998),
    ],
    ids=lambda earlier: f"year-{earlier.year}",
)
def test_jobs_one_microsecond_apart_keep_their_order_far_from_1970(
    store: BaseJobStore, make_job: MakeJob, earlier: datetime, timezone: tzinfo
) -> None:
    add_jobs(store, make_job, ("a-later", earlier + MICROSECOND), ("b-earlier", earlier))
    earlier_aware = localize(timezone, earlier)

    assert ids(store.get_all_jobs()) == ["b-earlier", "a-later"]
    assert ids(store.get_due_jobs(earlier_aware)) == ["b-earlier"]
    assert store.get_next_run_time() == earlier_aware


# -- get_due_jobs and get_next_run_time ------------------------------------------------------


def test_due_jobs_include_a_job_due_exactly_now_and_exclude_later_and_paused_ones(
    store: BaseJobStore, make_job: MakeJob, timezone: tzinfo
) -> None:
    add_jobs(
        store,
        make_job,
        ("later", NOON + MICROSECOND),
        ("paused", None),
        ("now", NOON),
        ("past", MORNING),
    )
    now = localize(timezone, NOON).astimezone(fixed_timezone.utc)

    assert ids(store.get_due_jobs(now)) == ["past", "now"]


def test_no_jobs_are_due_before_the_earliest(
    store: BaseJobStore, make_job: MakeJob, timezone: tzinfo
) -> None:
    add_jobs(store, make_job, ("noon", NOON), ("paused", None))

    assert store.get_due_jobs(localize(timezone, NOON - MICROSECOND)) == []


def test_next_run_time_is_the_earliest_as_an_aware_datetime(
    store: BaseJobStore, make_job: MakeJob, timezone: tzinfo
) -> None:
    add_jobs(store, make_job, ("paused", None), ("noon", NOON), ("morning", MORNING))

    next_run_time = store.get_next_run_time()

    assert next_run_time is not None
    assert next_run_time.utcoffset() is not None
    assert next_run_time == localize(timezone, MORNING)


def test_next_run_time_is_none_when_the_store_is_empty(store: BaseJobStore) -> None:
    assert store.get_next_run_time() is None


def test_next_run_time_is_none_when_every_job_is_paused(
    store: BaseJobStore, make_job: MakeJob
) -> None:
    add_jobs(store, make_job, ("paused-1", None), ("paused-2", None))

    assert store.get_next_run_time() is None


# -- what returned jobs carry ----------------------------------------------------------------


@on_stores(
    "lmdb",
    "sqlalchemy",
    reason="MemoryJobStore returns the job objects it was given: the scheduler, not the store, "
    "sets their alias before adding them",
)
def test_every_returned_job_has_the_scheduler_and_the_store_alias(
    store: BaseJobStore, make_job: MakeJob, scheduler: BackgroundScheduler, timezone: tzinfo
) -> None:
    add_jobs(store, make_job, ("due", MORNING), ("later", EVENING), ("paused", None))
    returned = [
        *store.get_all_jobs(),
        *store.get_due_jobs(localize(timezone, NOON)),
        store.lookup_job("paused"),
    ]

    assert [(job._scheduler, job._jobstore_alias) for job in returned] == [
        (scheduler, "store")
    ] * 5


# -- start and shutdown ----------------------------------------------------------------------


@on_stores("lmdb", "sqlalchemy", reason="MemoryJobStore forgets its jobs at shutdown()")
def test_a_store_shut_down_and_started_again_still_holds_its_jobs(
    store: BaseJobStore, make_job: MakeJob, scheduler: BackgroundScheduler, timezone: tzinfo
) -> None:
    add_jobs(store, make_job, ("noon", NOON), ("paused", None))

    store.shutdown()
    store.start(scheduler, "again")

    jobs = store.get_all_jobs()
    assert [(job.id, job.next_run_time) for job in jobs] == [
        ("noon", localize(timezone, NOON)),
        ("paused", None),
    ]
    assert [job._jobstore_alias for job in jobs] == ["again", "again"]


# -- jobs that cannot be stored --------------------------------------------------------------

unserializable = pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param(
            {"func": lambda: None}, "the reference to its callable .* could not", id="lambda"
        ),
        pytest.param(
            {"args": (threading.Lock(),)},
            "cannot pickle '_thread.lock' object",
            id="lock-argument",
        ),
    ],
)


@persistent_stores
@unserializable
def test_a_job_that_cannot_be_serialized_is_not_added(
    store: BaseJobStore, make_job: MakeJob, changes: dict[str, Any], message: str, timezone: tzinfo
) -> None:
    add_jobs(store, make_job, ("kept", NOON))

    with pytest.raises((TypeError, ValueError), match=message):
        store.add_job(make_job("unserializable", MORNING, **changes))

    assert store.lookup_job("unserializable") is None
    assert ids(store.get_all_jobs()) == ["kept"]
    assert store.get_next_run_time() == localize(timezone, NOON)


@persistent_stores
@unserializable
def test_a_job_that_cannot_be_serialized_does_not_replace_the_stored_one(
    store: BaseJobStore, make_job: MakeJob, changes: dict[str, Any], message: str, timezone: tzinfo
) -> None:
    store.add_job(make_job("kept", NOON, name="stored"))

    with pytest.raises((TypeError, ValueError), match=message):
        store.update_job(make_job("kept", MORNING, name="unserializable", **changes))

    kept = store.lookup_job("kept")
    assert (kept.name, kept.func, kept.args) == ("stored", dummy_job, ())
    assert store.get_next_run_time() == localize(timezone, NOON)
