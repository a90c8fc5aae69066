"""Jobs come from a cache of decoded states when their record is unchanged, yet every job
returned is independent, and a change made anywhere else is always seen."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import jobfuncs
import pytest
from apscheduler.job import Job
from hypothesis import example, given
from hypothesis import strategies as st
from jobfuncs import vanishing_job

from lmdbstore import LMDBJobStore
from lmdbstore.cache import same

ROOT = Path(__file__).parent.parent


@pytest.fixture(params=[10_000, 0], ids=["cached", "uncached"])
def store(request: pytest.FixtureRequest, tmp_path: Path, scheduler: object) -> LMDBJobStore:
    store = LMDBJobStore(tmp_path / "jobs.lmdb", cache_size=request.param)
    store.start(scheduler, "store")
    return store


def test_changing_a_returned_job_changes_neither_the_store_nor_other_callers_jobs(
    store: LMDBJobStore, make_job: Callable[..., Job]
) -> None:
    store.add_job(make_job("job", args=(1, "a"), kwargs={"key": "value"}))
    first = store.lookup_job("job")
    second = store.lookup_job("job")
    assert first is not None and second is not None

    first.kwargs["key"] = "changed"
    first.kwargs["new"] = 1
    first._modify(name="renamed", args=(2,), next_run_time=None)

    for job in (second, store.lookup_job("job"), store.get_all_jobs()[0]):
        assert job is not None
        assert job.kwargs == {"key": "value"}
        assert job.args == (1, "a")
        assert job.name == "job"
        assert job.next_run_time is not None


def test_mutable_arguments_are_never_shared_between_returned_jobs(
    store: LMDBJobStore, make_job: Callable[..., Job]
) -> None:
    store.add_job(make_job("job", args=([1, 2],), kwargs={"items": {"a": [1]}}))
    first = store.lookup_job("job")
    assert first is not None

    first.args[0].append(3)
    first.kwargs["items"]["a"].append(2)

    again = store.lookup_job("job")
    assert again is not None
    assert again.args == ([1, 2],)
    assert again.kwargs == {"items": {"a": [1]}}


def test_a_job_updated_by_another_process_is_read_as_updated(
    store: LMDBJobStore, make_job: Callable[..., Job]
) -> None:
    store.add_job(make_job("job", datetime(2030, 1, 1)))
    assert store.lookup_job("job") is not None  # now in this process's cache

    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from lmdbstore import LMDBJobStore\n"
            "store = LMDBJobStore(sys.argv[1])\n"
            "job = store.lookup_job('job')\n"
            "job._modify(name='renamed elsewhere', kwargs={'by': 'other'})\n"
            "store.update_job(job)\n",
            store.path,
        ],
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}"},
    )

    job = store.lookup_job("job")
    assert job is not None
    assert job.name == "renamed elsewhere"
    assert job.kwargs == {"by": "other"}
    assert store.get_all_jobs()[0].name == "renamed elsewhere"


def test_rescheduling_keeps_every_other_field(
    store: LMDBJobStore, make_job: Callable[..., Job]
) -> None:
    store.add_job(make_job("job", datetime(2030, 1, 1), args=(1, 2.5, None), kwargs={"k": b"v"}))
    for days in range(1, 4):
        job = store.lookup_job("job")
        assert job is not None
        job._modify(next_run_time=job.next_run_time + timedelta(days=days))
        store.update_job(job)

    reopened = LMDBJobStore(store.path, cache_size=0)
    job = reopened.lookup_job("job")
    assert job is not None
    assert job.next_run_time == make_job("x", datetime(2030, 1, 7)).next_run_time
    assert (job.args, job.kwargs, job.name) == ((1, 2.5, None), {"k": b"v"}, "job")


def test_a_changed_argument_of_equal_value_but_other_type_is_stored(
    store: LMDBJobStore, make_job: Callable[..., Job]
) -> None:
    store.add_job(make_job("job", args=(1,), kwargs={"zero": 0.0}))
    job = store.lookup_job("job")
    assert job is not None
    job._modify(args=(1.0,), kwargs={"zero": -0.0})
    store.update_job(job)

    stored = LMDBJobStore(store.path, cache_size=0).lookup_job("job")
    assert stored is not None
    assert type(stored.args[0]) is float
    assert str(stored.kwargs["zero"]) == "-0.0"


def _change_args_in_place(job: Job) -> None:
    job.args[0].append(3)


def _change_kwargs_in_place(job: Job) -> None:
    job.kwargs["to"].append("b")


def _add_a_keyword_argument(job: Job) -> None:
    job.kwargs["new"] = None


CHANGES: dict[str, Callable[[Job], None]] = {
    "name": lambda job: job._modify(name="renamed"),
    "executor": lambda job: job._modify(executor="other"),
    "misfire grace time": lambda job: job._modify(misfire_grace_time=None),
    "coalesce": lambda job: job._modify(coalesce=True),
    "max instances": lambda job: job._modify(max_instances=2),
    "callable": lambda job: job._modify(func=vanishing_job),
    "arguments replaced": lambda job: job._modify(args=([1, 2], 3)),
    "an argument changed in place": _change_args_in_place,
    "a keyword argument changed in place": _change_kwargs_in_place,
    "a keyword argument added": _add_a_keyword_argument,
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
def test_every_change_to_a_returned_job_is_stored_by_update_job(
    store: LMDBJobStore, make_job: Callable[..., Job], change: Callable[[Job], None]
) -> None:
    """update_job writes the serialized body it read again when the job is unchanged but
    for its next run time: any other change must be seen as one."""
    store.add_job(make_job("job", args=([1, 2],), kwargs={"to": ["a"]}))
    job = store.lookup_job("job")
    assert job is not None
    change(job)
    job._modify(next_run_time=job.next_run_time + timedelta(days=1))
    store.update_job(job)

    stored = LMDBJobStore(store.path, cache_size=0).lookup_job("job")
    assert stored is not None
    stored_state, state = stored.__getstate__(), job.__getstate__()
    assert str(stored_state.pop("trigger")) == str(state.pop("trigger"))
    assert stored_state == state


def test_jobs_with_lists_and_dicts_in_their_arguments_are_cached_yet_independent(
    store: LMDBJobStore, make_job: Callable[..., Job]
) -> None:
    store.add_job(make_job("job", args=([1, 2], (3, [4])), kwargs={"to": ["a"], "opts": {}}))
    first, second = store.lookup_job("job"), store.lookup_job("job")
    assert first is not None and second is not None

    first.args[0].append(9)
    first.args[1][1].append(9)
    first.kwargs["to"].append("b")
    first.kwargs["opts"]["x"] = 1

    for job in (second, store.lookup_job("job"), store.get_all_jobs()[0]):
        assert job is not None
        assert job.args == ([1, 2], (3, [4]))
        assert job.kwargs == {"to": ["a"], "opts": {}}


def test_keyword_arguments_of_atoms_and_flat_lists_are_copied_for_each_job(
    store: LMDBJobStore, make_job: Callable[..., Job]
) -> None:
    store.add_job(make_job("job", kwargs={"to": ["a", "b"], "empty": [], "csv": True}))
    first, second = store.lookup_job("job"), store.lookup_job("job")
    assert first is not None and second is not None

    first.kwargs["to"].append("c")
    first.kwargs["empty"].append(1)
    first.kwargs["csv"] = False
    first.kwargs["new"] = 1

    for job in (second, store.lookup_job("job"), store.get_all_jobs()[0]):
        assert job is not None
        assert job.kwargs == {"to": ["a", "b"], "empty": [], "csv": True}


def test_keyword_arguments_under_keys_that_are_not_strings_are_copied_for_each_job(
    store: LMDBJobStore, make_job: Callable[..., Job]
) -> None:
    store.add_job(make_job("job", kwargs={1: ["a"], b"raw": [2]}))
    for read in (lambda: store.lookup_job("job"), lambda: store.get_all_jobs()[0]):
        first, second = read(), read()
        assert first is not None and second is not None
        first.kwargs[1].append("b")
        first.kwargs[b"raw"].clear()
        assert second.kwargs == {1: ["a"], b"raw": [2]}


def test_a_keyword_argument_key_that_is_an_object_is_never_shared_between_jobs(
    store: LMDBJobStore, make_job: Callable[..., Job]
) -> None:
    store.add_job(make_job("job", kwargs={jobfuncs.Label("original"): ["a"]}))
    first, second = store.lookup_job("job"), store.lookup_job("job")
    assert first is not None and second is not None
    next(iter(first.kwargs)).text = "changed"
    assert next(iter(second.kwargs)).text == "original"


def test_a_job_built_from_the_cache_equals_one_apscheduler_rebuilds_from_its_state(
    store: LMDBJobStore, make_job: Callable[..., Job]
) -> None:
    """The cache builds jobs without ``Job.__setstate__``: attribute for attribute, they
    must be what ``__setstate__`` makes of the same state."""
    original = make_job("job", args=(1, [2]), kwargs={"k": {"v": 1.5}}, name="named")
    store.add_job(original)
    from_store = store.lookup_job("job")
    rebuilt = Job.__new__(Job)
    rebuilt.__setstate__(original.__getstate__())

    assert from_store is not None
    for name in Job.__slots__:
        if name in ("__weakref__", "_scheduler", "_jobstore_alias"):
            continue
        ours, theirs = getattr(from_store, name), getattr(rebuilt, name)
        assert type(ours) is type(theirs), name
        assert ours == theirs or (name == "trigger" and str(ours) == str(theirs)), name


def test_a_scan_of_more_jobs_than_the_cache_holds_leaves_the_cached_jobs_cached(
    tmp_path: Path, scheduler: object, make_job: Callable[..., Job]
) -> None:
    """A large get_all_jobs must not push out the jobs a scheduler reads again and again."""
    store = LMDBJobStore(tmp_path / "jobs.lmdb", cache_size=5)
    store.start(scheduler, "store")
    ids = [f"job-{number:02}" for number in range(20)]
    store.add_jobs([make_job(job_id, datetime(2030, 1, 1)) for job_id in ids])
    for job_id in ids[:3] * 2:  # read again and again: kept from the second read on
        store.lookup_job(job_id)

    def cached() -> set[str]:
        return {job_id for job_id in ids if store._codec.cache.latest(job_id.encode())}

    before = cached()
    assert set(ids[:3]) <= before

    assert len(store.get_all_jobs()) == 20

    assert cached() == before


READS: dict[str, Callable[[LMDBJobStore], object]] = {
    "lookup_job": lambda store: store.lookup_job("job"),
    "get_all_jobs": lambda store: store.get_all_jobs(),
    "get_due_jobs": lambda store: store.get_due_jobs(datetime.now(timezone.utc)),
}


@pytest.mark.parametrize(
    ("read", "decoded"),
    [("lookup_job", [1, 2, 2, 2]), ("get_all_jobs", [1, 2, 2, 2]), ("get_due_jobs", [1, 1, 1, 1])],
)
def test_a_lookup_or_a_listing_keeps_what_it_reads_from_its_second_read_on(
    tmp_path: Path,
    scheduler: object,
    make_job: Callable[..., Job],
    monkeypatch: pytest.MonkeyPatch,
    read: str,
    decoded: list[int],
) -> None:
    """A record read once is often never read again: a lookup or a listing of all jobs
    keeps it decoded only from its second read on. Due jobs are kept at once: a wakeup
    writes them back, and a job kept is moved to its next run time, not rewritten."""
    writer = LMDBJobStore(tmp_path / "jobs.lmdb")
    writer.add_job(make_job("job", datetime(2001, 1, 1)))
    reader = LMDBJobStore(writer.path)  # its own cache: it has read nothing yet
    reader.start(scheduler, "store")
    decodes = []
    load_parts = reader.serializer.load_parts

    def counted(body: bytes) -> Any:
        decodes.append(body)
        return load_parts(body)

    monkeypatch.setattr(reader.serializer, "load_parts", counted)

    found = []
    for _ in decoded:
        READS[read](reader)
        found.append(len(decodes))

    assert found == decoded
    reader.shutdown()
    writer.shutdown()


def test_a_callable_removed_since_a_lookup_is_noticed_by_the_next_one(
    store: LMDBJobStore, make_job: Callable[..., Job], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing was written in between, yet the job cannot be restored as it was: it is
    quarantined, as when its record is first read."""
    store.add_job(make_job("job", func=jobfuncs.vanishing_job))
    assert store.lookup_job("job") is not None

    monkeypatch.delattr(jobfuncs, "vanishing_job")

    assert store.lookup_job("job") is None
    assert [entry.job_id for entry in store.get_quarantined_jobs()] == ["job"]


def test_a_store_file_replaced_while_the_store_was_shut_down_is_read_anew(
    tmp_path: Path, scheduler: object, make_job: Callable[..., Job]
) -> None:
    """Even when the new file is at the same commit as the old one was."""
    first, other = LMDBJobStore(tmp_path / "first.lmdb"), LMDBJobStore(tmp_path / "other.lmdb")
    first.start(scheduler, "first")
    first.add_job(make_job("job", name="first"))
    other.add_job(make_job("job", name="other"))
    looked_up = first.lookup_job("job")
    assert looked_up is not None and looked_up.name == "first"
    commits = [store.environment.figures().last_commit for store in (first, other)]
    assert commits[0] == commits[1]
    first.shutdown()
    other.shutdown()

    shutil.copyfile(tmp_path / "other.lmdb" / "data.mdb", tmp_path / "first.lmdb" / "data.mdb")

    looked_up = first.lookup_job("job")
    assert looked_up is not None and looked_up.name == "other"


def test_an_update_from_a_stale_cache_entry_writes_the_updated_job_not_the_stored_body(
    tmp_path: Path, scheduler: object, make_job: Callable[..., Job]
) -> None:
    """A job unchanged since this process read it is written with the body of the record
    it read, taken from the store; if another writer replaced that record meanwhile, the
    job's own state is written (the last write wins, as in every APScheduler store)."""
    ours, theirs = (LMDBJobStore(tmp_path / "jobs.lmdb") for _ in range(2))
    ours.start(scheduler, "ours")
    ours.add_job(make_job("job", datetime(2030, 1, 1), name="ours"))
    job = ours.lookup_job("job")
    assert job is not None
    other = theirs.lookup_job("job")
    assert other is not None
    other._modify(name="theirs")
    theirs.update_job(other)

    job._modify(next_run_time=job.next_run_time + timedelta(days=1))
    ours.update_job(job)

    stored = LMDBJobStore(ours.path, cache_size=0).lookup_job("job")
    assert stored is not None
    assert (stored.name, stored.next_run_time) == ("ours", job.next_run_time)


def test_a_job_added_again_from_a_stale_cache_entry_is_stored_whole(
    tmp_path: Path, scheduler: object, make_job: Callable[..., Job]
) -> None:
    ours, theirs = (LMDBJobStore(tmp_path / "jobs.lmdb") for _ in range(2))
    ours.start(scheduler, "ours")
    ours.add_job(make_job("job", datetime(2030, 1, 1), args=(1, [2]), name="ours"))
    job = ours.lookup_job("job")
    assert job is not None
    theirs.remove_job("job")

    ours.add_job(job)

    stored = LMDBJobStore(ours.path, cache_size=0).lookup_job("job")
    assert stored is not None
    assert (stored.name, stored.args) == ("ours", (1, [2]))


def test_jobs_come_in_run_time_order_whether_from_the_cache_or_read_anew(
    store: LMDBJobStore, tmp_path: Path, scheduler: object, make_job: Callable[..., Job]
) -> None:
    """A read mixes jobs whose records it knows and jobs it decodes, and keeps their order."""
    store.add_jobs(
        [make_job(f"job-{day}", datetime(2030, 1, day)) for day in (5, 3, 1, 4, 2)]
        + [make_job("paused", None)]
    )
    other = LMDBJobStore(tmp_path / "jobs.lmdb")
    other.start(scheduler, "other")
    for job_id in ("job-2", "job-4"):  # their records change behind the store's back
        job = other.lookup_job(job_id)
        assert job is not None
        job._modify(name=f"{job_id} renamed")
        other.update_job(job)

    jobs = store.get_all_jobs()

    assert [job.id for job in jobs] == ["job-1", "job-2", "job-3", "job-4", "job-5", "paused"]
    assert [job.name for job in jobs[1:4]] == ["job-2 renamed", "job-3", "job-4 renamed"]
    due = store.get_due_jobs(jobs[3].next_run_time)
    assert [job.id for job in due] == ["job-1", "job-2", "job-3", "job-4"]


def test_a_scan_finds_anew_the_jobs_whose_callable_was_replaced_and_only_those(
    store: LMDBJobStore, make_job: Callable[..., Job], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a reload of the callable's module does: jobs of other callables, read before and
    after them, still come as they were."""
    funcs = [jobfuncs.steady_job, jobfuncs.vanishing_job] * 2
    store.add_jobs(
        [
            make_job(f"job-{day}", datetime(2030, 1, day), func=func)
            for day, func in enumerate(funcs, 1)
        ]
    )
    assert len(store.get_all_jobs()) == 4

    def reloaded(*args: object, **kwargs: object) -> None:
        """The new code of vanishing_job."""

    monkeypatch.setattr(jobfuncs, "vanishing_job", reloaded)
    jobs = store.get_all_jobs()

    assert [job.id for job in jobs] == ["job-1", "job-2", "job-3", "job-4"]
    assert [job.func for job in jobs] == [jobfuncs.steady_job, reloaded] * 2


def test_a_scan_quarantines_the_jobs_whose_callable_was_removed_and_only_those(
    store: LMDBJobStore, make_job: Callable[..., Job], monkeypatch: pytest.MonkeyPatch
) -> None:
    funcs = [jobfuncs.steady_job, jobfuncs.vanishing_job] * 2
    store.add_jobs(
        [
            make_job(f"job-{day}", datetime(2030, 1, day), func=func)
            for day, func in enumerate(funcs, 1)
        ]
    )
    assert len(store.get_all_jobs()) == 4

    monkeypatch.delattr(jobfuncs, "vanishing_job")

    assert [job.id for job in store.get_all_jobs()] == ["job-1", "job-3"]
    assert sorted(entry.job_id for entry in store.get_quarantined_jobs()) == ["job-2", "job-4"]


ATOMS = (
    st.none()
    | st.booleans()
    | st.integers(-2, 2)
    | st.sampled_from([0.0, -0.0, 1.0, float("nan")])
    | st.sampled_from(["", "a"])
    | st.sampled_from([b"", b"a"])
)
PLAIN = st.recursive(
    ATOMS,
    lambda items: (
        st.lists(items, max_size=3)
        | st.lists(items, max_size=3).map(tuple)
        | st.dictionaries(ATOMS, items, max_size=3)
    ),
    max_leaves=6,
)


def typed(value: Any) -> Any:
    """``value`` spelled out with the type of each of its parts, floats by their bits."""
    kind = type(value)
    if kind is float:
        return kind, value.hex()
    if kind is list or kind is tuple:
        return kind, [typed(item) for item in value]
    if kind is dict:
        return kind, [(typed(key), typed(item)) for key, item in value.items()]
    return kind, value


@example(-0.0, 0.0)
@example([float("nan")], [float("nan")])
@example((1, True), (1, 1))
@example((1,), [1])
@example({"a": 1, "b": 2}, {"b": 2, "a": 1})
@given(PLAIN, PLAIN)
def test_values_are_the_same_when_of_the_same_types_and_values_in_the_same_order(
    value: Any, other: Any
) -> None:
    """What decides whether an unchanged job's stored body may be written again."""
    assert same(value, other) == (typed(value) == typed(other))
    assert same(value, copy.deepcopy(value))
    assert same(value, value)
