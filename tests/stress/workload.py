"""The jobs and operations of the crash and concurrency runs, and the model they are
checked against.

A job's *fingerprint* is what a write set: its next run time, a token unique to the write
and the size of its payload. The model maps job ids to fingerprints; a store holds what it
should when its contents equal the model.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from typing import Any, TypeAlias

from apscheduler.job import Job
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger

from lmdbstore import LMDBJobStore

JOB_FUNC = "builtins:dict"
"""The callable of every job: importable by any process, whatever its ``sys.path``, and
it accepts the keyword arguments the jobs carry."""

Fingerprint: TypeAlias = tuple[datetime | None, str, int]
Model: TypeAlias = dict[str, Fingerprint]
Operation: TypeAlias = dict[str, Any]
"""A write as JSON can carry it: ``{"kind": ..., ...}``, see :func:`random_operation`."""

_EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)
_SPAN_US = 40 * 365 * 86_400 * 1_000_000
_LARGE_PAYLOAD = (20_000, 200_000)


def make_scheduler() -> BackgroundScheduler:
    """A scheduler that is never started: jobs only need it for its time zone."""
    return BackgroundScheduler(timezone=timezone.utc)


def make_job(
    scheduler: BackgroundScheduler,
    job_id: str,
    run_time: datetime | None,
    token: str,
    size: int = 0,
) -> Job:
    """A job whose fingerprint is ``(run_time, token, size)``; ``None`` pauses it."""
    return Job(
        scheduler,
        id=job_id,
        func=JOB_FUNC,
        trigger=DateTrigger(run_time or _EPOCH, timezone.utc),
        executor="default",
        args=(),
        kwargs={"token": token, "payload": bytes(size)},
        name=job_id,
        misfire_grace_time=None,
        coalesce=True,
        max_instances=1,
        next_run_time=run_time,
    )


def fingerprint(job: Job) -> Fingerprint:
    return job.next_run_time, job.kwargs["token"], len(job.kwargs["payload"])


def contents(store: LMDBJobStore) -> Model:
    """What ``store`` holds, as a model."""
    return {job.id: fingerprint(job) for job in store.get_all_jobs()}


def populate(store: LMDBJobStore, count: int, prefix: str = "job-") -> Model:
    """Add ``count`` jobs (ids ``prefix`` + number, seeded run times) in one call, and
    return what the store then holds."""
    scheduler = make_scheduler()
    rng = random.Random(count)
    store.add_jobs(
        [
            make_job(scheduler, f"{prefix}{n}", random_run_time(rng), f"{prefix}{n}", 100)
            for n in range(count)
        ]
    )
    return contents(store)


def random_run_time(rng: random.Random) -> datetime:
    return _EPOCH + timedelta(microseconds=rng.randrange(_SPAN_US))


def random_size(rng: random.Random) -> int:
    """A payload size: mostly small, one in ten large enough to make the map grow."""
    return rng.randrange(*_LARGE_PAYLOAD) if rng.random() < 0.1 else rng.randrange(200)


def _encode_time(run_time: datetime | None) -> str | None:
    return None if run_time is None else run_time.isoformat()


def _decode_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def random_operation(rng: random.Random, model: Model, prefix: str, number: int) -> Operation:
    """A write to apply to a store that holds ``model``: new job ids start with ``prefix``
    and tokens name ``prefix`` and ``number``, so that every write leaves its own trace.

    Kinds: ``add`` (one job, ``add_job``), ``add_jobs`` (several, in one call),
    ``update`` (``update_job``), ``wakeup`` (what a scheduler wakeup does: under the
    scheduler's lock, ``get_due_jobs``, then ``update_job`` or ``remove_job`` for each due
    job, then ``get_next_run_time``), ``pause`` (``lookup_job`` then ``update_job``, as
    the scheduler pauses), ``reschedule`` (``set_next_run_time``), ``remove``,
    ``remove_all``.
    """
    token = f"{prefix}{number}"
    ids = sorted(model)
    roll = rng.random()
    if not ids or roll < 0.28 or (roll < 0.40 and len(ids) < 300):
        return {"kind": "add", "jobs": [_new_job(rng, token, token)]}
    if roll < 0.48:
        count = rng.randrange(2, 20)
        jobs = [_new_job(rng, f"{token}.{index}", token) for index in range(count)]
        return {"kind": "add_jobs", "jobs": jobs}
    job_id = rng.choice(ids)
    if roll < 0.60:
        job = [job_id, _encode_time(random_run_time(rng)), token, random_size(rng)]
        return {"kind": "update", "job": job}
    if roll < 0.68:
        return _wakeup(rng, model)
    if roll < 0.74:
        return {"kind": "pause", "id": job_id}
    if roll < 0.80:
        return {"kind": "reschedule", "id": job_id, "run_time": _encode_time(random_run_time(rng))}
    if roll < 0.985:
        return {"kind": "remove", "id": job_id}
    return {"kind": "remove_all"}


def _wakeup(rng: random.Random, model: Model) -> Operation:
    """A wakeup at a time when up to seven jobs are due; each due job gets a new run
    time, or is removed (its last run)."""
    scheduled = sorted(
        (run_time, job_id) for job_id, (run_time, _, _) in model.items() if run_time
    )
    if not scheduled:
        return {"kind": "wakeup", "now": _encode_time(_EPOCH), "changes": {}}
    now = scheduled[min(rng.randrange(7), len(scheduled) - 1)][0]
    changes = {
        job_id: None if rng.random() < 0.2 else _encode_time(random_run_time(rng))
        for run_time, job_id in scheduled
        if run_time <= now
    }
    return {"kind": "wakeup", "now": _encode_time(now), "changes": changes}


def _new_job(rng: random.Random, job_id: str, token: str) -> list[Any]:
    return [job_id, _encode_time(random_run_time(rng)), token, random_size(rng)]


def _jobs(scheduler: BackgroundScheduler, specs: Iterable[list[Any]]) -> list[Job]:
    return [
        make_job(scheduler, job_id, _decode_time(run_time), token, size)
        for job_id, run_time, token, size in specs
    ]


def apply_to_store(
    store: LMDBJobStore,
    scheduler: BackgroundScheduler,
    op: Operation,
    announce: Callable[[Operation], None],
) -> None:
    """Perform ``op`` on ``store``; it returns once the store acknowledged it.

    ``announce`` is called with the write just before it starts. For a wakeup that is
    once ``get_due_jobs`` has answered, with the changes of the jobs it returned: jobs
    due but leased by another scheduler (one killed in the middle of its wakeup) are not
    returned, and the wakeup does not change them.
    """
    kind = op["kind"]
    if kind == "wakeup":
        _wake_up(store, op, announce)
        return
    announce(op)
    if kind == "add":
        store.add_job(*_jobs(scheduler, op["jobs"]))
    elif kind == "add_jobs":
        store.add_jobs(_jobs(scheduler, op["jobs"]))
    elif kind == "update":
        store.update_job(*_jobs(scheduler, [op["job"]]))
    elif kind == "pause":
        job = store.lookup_job(op["id"])
        job._modify(next_run_time=None)
        store.update_job(job)
    elif kind == "reschedule":
        store.set_next_run_time(op["id"], _decode_time(op["run_time"]))
    elif kind == "remove":
        store.remove_job(op["id"])
    elif kind == "remove_all":
        store.remove_all_jobs()
    else:
        raise ValueError(f"unknown operation {kind!r}")


def _wake_up(store: LMDBJobStore, op: Operation, announce: Callable[[Operation], None]) -> None:
    plan = op["changes"]
    with store._scheduler._jobstores_lock:
        due = store.get_due_jobs(_decode_time(op["now"]))
        returned = {job.id for job in due}
        if not returned <= plan.keys():
            raise AssertionError(f"not due, yet returned: {sorted(returned - plan.keys())}")
        announce({**op, "changes": {job_id: plan[job_id] for job_id in sorted(returned)}})
        for job in due:
            run_time = plan[job.id]
            if run_time is None:
                store.remove_job(job.id)
            else:
                job._modify(next_run_time=_decode_time(run_time))
                store.update_job(job)
        store.get_next_run_time()


def apply_to_model(model: Model, op: Operation) -> None:
    """Change ``model`` as ``op`` changes a store."""
    kind = op["kind"]
    if kind in ("add", "add_jobs"):
        for job_id, run_time, token, size in op["jobs"]:
            model[job_id] = (_decode_time(run_time), token, size)
    elif kind == "update":
        job_id, run_time, token, size = op["job"]
        model[job_id] = (_decode_time(run_time), token, size)
    elif kind == "wakeup":
        for job_id, run_time in op["changes"].items():
            if run_time is None:
                del model[job_id]
            else:
                _, token, size = model[job_id]
                model[job_id] = (_decode_time(run_time), token, size)
    elif kind == "pause":
        _, token, size = model[op["id"]]
        model[op["id"]] = (None, token, size)
    elif kind == "reschedule":
        _, token, size = model[op["id"]]
        model[op["id"]] = (_decode_time(op["run_time"]), token, size)
    elif kind == "remove":
        del model[op["id"]]
    elif kind == "remove_all":
        model.clear()
    else:
        raise ValueError(f"unknown operation {kind!r}")
