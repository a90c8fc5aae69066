"""The ``lmdbstore`` commands that look at jobs and change one: run as real processes,
their output checked to the character (``TZ=UTC``), their JSON parsed, their exit status
checked (0 ok, 1 problem found, 2 usage)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from apscheduler.triggers.interval import IntervalTrigger
from cli_fixtures import (
    TESTS,
    UTC,
    fill_store,
    make_job,
    run_cli,
    sample_jobs,
    sample_store,
)

from lmdbstore import FORMAT_VERSION, LMDBJobStore
from lmdbstore.keys import encode_job_id, encode_run_time, index_key

COMMANDS = [
    "list",
    "show",
    "stats",
    "check",
    "pause",
    "resume",
    "remove",
    "quarantine",
    "backup",
    "compact",
    "export",
    "import",
    "migrate",
]

LIST_UTC = """\
ID     NAME       FUNC           TRIGGER                        NEXT RUN (LOCAL)         NEXT RUN (UTC)       PAUSED  QUARANTINED
alpha  Alpha job  clijobs:tick   interval[0:05:00]              2030-01-01 00:00:00 UTC  2030-01-01 00:00:00  no      no
beta   beta       clijobs:touch  cron[hour='3', minute='30']    2030-01-02 02:30:00 UTC  2030-01-02 02:30:00  no      no
gamma  gamma      clijobs:tick   date[2030-06-01 12:00:00 UTC]  paused                   paused               yes     no
delta  delta      clijobs:tick   interval[1:00:00]              2030-01-03 00:00:00 UTC  2030-01-03 00:00:00  no      yes
"""  # noqa: E501

SHOW_ALPHA = """\
id:                 alpha
name:               Alpha job
func:               clijobs:tick
trigger:            interval[0:05:00]
next run time:      2030-01-01T00:00:00+00:00 (UTC)
next run (local):   2030-01-01 00:00:00 UTC
next run (UTC):     2030-01-01 00:00:00
paused:             no
executor:           default
args:               (1, 'x', <clijobs:Payload (not importable here)>)
kwargs:             {'k': 'v'}
misfire grace time: 30
coalesce:           True
max instances:      1
quarantined:        no
"""

SHOW_DELTA = """\
id:                 delta
name:               delta
func:               clijobs:tick
trigger:            interval[1:00:00]
next run time:      2030-01-03T00:00:00+00:00 (UTC)
next run (local):   2030-01-03 00:00:00 UTC
next run (UTC):     2030-01-03 00:00:00
paused:             no
executor:           default
args:               ()
kwargs:             {}
misfire grace time: 30
coalesce:           True
max instances:      1
quarantined:        yes
quarantined at:     2029-12-31 23:00:00 UTC
quarantine error:   ModuleNotFoundError: No module named 'gone'
"""

QUARANTINE_LIST = """\
ID     QUARANTINED AT (UTC)  FUNC          ERROR
delta  2029-12-31 23:00:00   clijobs:tick  ModuleNotFoundError: No module named 'gone'
"""


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return sample_store(tmp_path / "jobs.lmdb")


def stored_state(path: Path) -> tuple[list[str], list[str], datetime | None]:
    """The ids of the jobs and of the quarantined jobs, and the next run time."""
    store = LMDBJobStore(path)
    try:
        jobs = sorted(job.id for job in store.get_all_jobs())
        quarantined = sorted(entry.job_id for entry in store.get_quarantined_jobs())
        return jobs, quarantined, store.get_next_run_time()
    finally:
        store.shutdown()


# -- list, show ------------------------------------------------------------------------


def test_list_prints_a_table_without_importing_the_jobs_code(store_path: Path) -> None:
    result = run_cli("list", store_path.name, cwd=store_path.parent)
    assert (result.returncode, result.stdout, result.stderr) == (0, LIST_UTC, "")


def test_list_shows_local_time_from_tz(store_path: Path) -> None:
    result = run_cli("list", store_path, cwd=store_path.parent, tz="Europe/Berlin")
    assert result.returncode == 0
    assert "  2030-01-02 03:30:00 CET  2030-01-02 02:30:00  " in result.stdout.splitlines()[2]


def test_list_json(store_path: Path) -> None:
    result = run_cli("list", "--json", store_path, cwd=store_path.parent)
    jobs = json.loads(result.stdout)
    assert [job["id"] for job in jobs] == ["alpha", "beta", "gamma", "delta"]
    assert jobs[1] == {
        "id": "beta",
        "name": "beta",
        "func": "clijobs:touch",
        "trigger": "cron[hour='3', minute='30']",
        "next_run_time": "2030-01-02T02:30:00+00:00",
        "next_run_time_local": "2030-01-02T02:30:00+00:00",
        "paused": False,
        "quarantined": False,
        "problem": None,
    }
    assert [(job["paused"], job["quarantined"]) for job in jobs] == [
        (False, False),
        (False, False),
        (True, False),
        (False, True),
    ]


def test_list_of_an_empty_store(tmp_path: Path) -> None:
    fill_store(tmp_path / "empty.lmdb", [])
    result = run_cli("list", "empty.lmdb", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, "no jobs\n")
    assert json.loads(run_cli("list", "--json", "empty.lmdb", cwd=tmp_path).stdout) == []


def test_show_prints_every_field(store_path: Path) -> None:
    result = run_cli("show", store_path, "alpha", cwd=store_path.parent)
    assert (result.returncode, result.stdout) == (0, SHOW_ALPHA)


def test_show_imports_arguments_classes_from_path(store_path: Path) -> None:
    result = run_cli("show", store_path, "alpha", "--path", TESTS, cwd=store_path.parent)
    assert "args:               (1, 'x', Payload(value=7))\n" in result.stdout


def test_show_a_quarantined_job(store_path: Path) -> None:
    result = run_cli("show", store_path, "delta", cwd=store_path.parent)
    assert (result.returncode, result.stdout) == (0, SHOW_DELTA)


def test_show_json(store_path: Path) -> None:
    result = run_cli("show", "--json", store_path, "gamma", cwd=store_path.parent)
    details = json.loads(result.stdout)
    assert details["next_run_time"] is None
    assert details["paused"] is True
    assert details["trigger"] == "date[2030-06-01 12:00:00 UTC]"
    assert details["args"] == "()"
    assert details["misfire_grace_time"] == 30
    assert details["quarantined_at"] is None


def test_show_an_unknown_job_fails(store_path: Path) -> None:
    result = run_cli("show", store_path, "nope", cwd=store_path.parent)
    assert result.returncode == 1
    assert result.stderr == f"Error: no job has the id 'nope' in {store_path}\n"


def test_a_job_whose_state_cannot_be_read_is_still_listed(tmp_path: Path) -> None:
    path = tmp_path / "jobs.lmdb"
    fill_store(path, sample_jobs())
    store = LMDBJobStore(path)
    env = store.environment
    key = encode_job_id("alpha")
    env.write(lambda txn: txn.put(key, txn.get(key, db=env.jobs)[:-3] + b"bad", db=env.jobs))
    store.shutdown()
    result = run_cli("list", path, cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.splitlines()[1].split() == [
        "alpha",
        "?",
        "?",
        "?",
        "2030-01-01",
        "00:00:00",
        "UTC",
        "2030-01-01",
        "00:00:00",
        "no",
        "no",
    ]
    assert "note: job 'alpha' cannot be read here: CorruptRecordError" in result.stdout


def test_reading_commands_never_quarantine(store_path: Path) -> None:
    before = stored_state(store_path)
    for args in (
        ["list", store_path],
        ["show", store_path, "alpha"],
        ["stats", store_path],
        ["check", store_path],
        ["quarantine", store_path],
        ["export", store_path, "out.json", "--skip-broken"],
    ):
        run_cli(*args, cwd=store_path.parent)
    assert stored_state(store_path) == before


# -- stats, check -------------------------------------------------------------------------


def test_stats(store_path: Path) -> None:
    result = run_cli("stats", store_path, cwd=store_path.parent)
    lines = result.stdout.splitlines()
    assert result.returncode == 0
    assert lines[:6] == [
        f"store:          {store_path}",
        f"format version: {FORMAT_VERSION}",
        "serializer:     pickle",
        "jobs:           3 (1 paused)",
        "quarantined:    1",
        "next run:       2030-01-01 00:00:00 UTC (2030-01-01 00:00:00 UTC)",
    ]
    assert [line.split(":")[0] for line in lines[6:]] == ["map size", "map used", "data file"]


def test_stats_json(store_path: Path) -> None:
    stats = json.loads(run_cli("stats", "--json", store_path, cwd=store_path.parent).stdout)
    assert stats["jobs"] == 3
    assert stats["paused"] == 1
    assert stats["quarantined"] == 1
    assert stats["next_run_time"] == "2030-01-01T00:00:00+00:00"
    assert stats["format_version"] == FORMAT_VERSION
    assert stats["serializer"] == "pickle"
    assert 0 < stats["map_used"] <= stats["file_size"] <= stats["map_size"]


def test_a_store_opened_readonly_can_be_read(store_path: Path) -> None:
    store = LMDBJobStore(store_path, readonly=True)
    try:
        assert [entry.job_id for entry in store.get_quarantined_jobs()] == ["delta"]
    finally:
        store.shutdown()


def test_check_of_a_sound_store(store_path: Path) -> None:
    result = run_cli("check", store_path, "--path", TESTS, cwd=store_path.parent)
    assert result.returncode == 0
    assert result.stdout == (
        f"store {store_path}: 3 jobs (1 paused), 3 index entries, 1 quarantined\nok\n"
    )


def test_check_finds_and_repairs_a_broken_index(store_path: Path) -> None:
    store = LMDBJobStore(store_path)
    env = store.environment
    stale = index_key(encode_run_time(datetime(2031, 1, 1, tzinfo=UTC)), encode_job_id("ghost"))
    env.write(lambda txn: txn.put(stale, b"", db=env.index))
    store.shutdown()

    found = run_cli("check", store_path, "--path", TESTS, cwd=store_path.parent)
    assert found.returncode == 1
    assert f"problem: index entry {stale!r} names no job" in found.stdout

    repaired = run_cli("check", "--repair", store_path, "--path", TESTS, cwd=store_path.parent)
    assert repaired.returncode == 1
    assert repaired.stdout.endswith("repaired: the index was rebuilt from the job records\n")
    assert run_cli("check", store_path, "--path", TESTS, cwd=store_path.parent).returncode == 0


def test_check_repair_never_quarantines_a_job_only_because_its_code_is_missing(
    store_path: Path,
) -> None:
    found = run_cli("check", store_path, cwd=store_path.parent)
    assert found.returncode == 1
    assert (
        "note: job 'alpha' fails here only because ModuleNotFoundError: No module named "
        "'clijobs': add --path DIR" in found.stdout
    )
    repaired = run_cli("check", "--repair", store_path, cwd=store_path.parent)
    assert repaired.returncode == 1
    assert "note: job 'alpha' fails here only because" in repaired.stdout
    assert "repaired" not in repaired.stdout
    assert stored_state(store_path)[1] == ["delta"]


# -- pause, resume, remove ---------------------------------------------------------------


def test_pause_and_resume(store_path: Path) -> None:
    cwd = store_path.parent
    paused = run_cli("pause", store_path, "alpha", cwd=cwd)
    assert (paused.returncode, paused.stdout) == (0, "paused job 'alpha'\n")
    again = run_cli("pause", store_path, "alpha", cwd=cwd)
    assert (again.returncode, again.stdout) == (0, "job 'alpha' was paused already\n")
    assert json.loads(run_cli("show", "--json", store_path, "alpha", cwd=cwd).stdout)["paused"]

    before = datetime.now(timezone.utc)
    resumed = run_cli("resume", store_path, "alpha", "--path", TESTS, cwd=cwd)
    assert resumed.returncode == 0
    assert resumed.stdout.startswith("resumed job 'alpha': it runs next at ")
    store = LMDBJobStore(store_path)
    job = store.lookup_job("alpha")
    store.shutdown()
    assert job.next_run_time >= before  # the interval's next fire time from now


def test_resume_needs_the_trigger_to_be_readable(store_path: Path) -> None:
    run_cli("pause", store_path, "alpha", cwd=store_path.parent)
    result = run_cli("resume", store_path, "alpha", cwd=store_path.parent)
    assert result.returncode == 1
    assert "job 'alpha' cannot be read here, so its next run time cannot be computed" in (
        result.stderr
    )


def test_resume_leaves_paused_a_job_whose_trigger_fires_no_more(tmp_path: Path) -> None:
    path = tmp_path / "jobs.lmdb"
    ended = IntervalTrigger(
        hours=1,
        start_date=datetime(2001, 1, 1, tzinfo=UTC),
        end_date=datetime(2001, 1, 2, tzinfo=UTC),
        timezone=UTC,
    )
    fill_store(path, [make_job("ended", ended, None)])
    result = run_cli("resume", path, "ended", cwd=tmp_path)
    assert result.returncode == 1
    assert "job 'ended' stays paused: its trigger (interval[1:00:00]) fires no more" in (
        result.stderr
    )
    assert stored_state(path)[0] == ["ended"]


def test_resume_of_a_job_that_is_not_paused(store_path: Path) -> None:
    result = run_cli("resume", store_path, "beta", cwd=store_path.parent)
    assert (result.returncode, result.stdout) == (
        0,
        "job 'beta' is not paused: it runs next at 2030-01-02 02:30:00 UTC\n",
    )


def test_remove(store_path: Path) -> None:
    result = run_cli("remove", store_path, "beta", cwd=store_path.parent)
    assert (result.returncode, result.stdout) == (0, "removed job 'beta'\n")
    assert stored_state(store_path)[0] == ["alpha", "gamma"]
    missing = run_cli("remove", store_path, "beta", cwd=store_path.parent)
    assert (missing.returncode, missing.stderr) == (
        1,
        f"Error: no job has the id 'beta' in {store_path}\n",
    )


@pytest.mark.parametrize("command", ["pause", "resume", "remove"])
def test_a_quarantined_job_cannot_be_changed(store_path: Path, command: str) -> None:
    result = run_cli(command, store_path, "delta", cwd=store_path.parent)
    assert result.returncode == 1
    assert "job 'delta' is in the quarantine" in result.stderr
    assert stored_state(store_path)[1] == ["delta"]


# -- quarantine ---------------------------------------------------------------------------


def test_quarantine_lists_the_quarantined_jobs(store_path: Path) -> None:
    result = run_cli("quarantine", store_path, cwd=store_path.parent)
    assert (result.returncode, result.stdout) == (0, QUARANTINE_LIST)
    entries = json.loads(run_cli("quarantine", "--json", store_path, cwd=store_path.parent).stdout)
    assert [(entry["id"], entry["quarantined_at"]) for entry in entries] == [
        ("delta", "2029-12-31T23:00:00+00:00")
    ]
    assert entries[0]["quarantine_error"] == "ModuleNotFoundError: No module named 'gone'"


def test_quarantine_restore_needs_the_code_and_then_restores(store_path: Path) -> None:
    cwd = store_path.parent
    refused = run_cli("quarantine", store_path, "--restore", "delta", cwd=cwd)
    assert refused.returncode == 1
    assert "job 'delta' stays quarantined: it cannot be restored here" in refused.stderr
    assert stored_state(store_path)[1] == ["delta"]

    restored = run_cli("quarantine", store_path, "--restore", "delta", "--path", TESTS, cwd=cwd)
    assert (restored.returncode, restored.stdout) == (
        0,
        "restored job 'delta': it runs next at 2030-01-03 00:00:00 UTC\n",
    )
    assert stored_state(store_path)[:2] == (["alpha", "beta", "delta", "gamma"], [])


def test_quarantine_purge(store_path: Path) -> None:
    result = run_cli("quarantine", store_path, "--purge", "delta", cwd=store_path.parent)
    assert (result.returncode, result.stdout) == (0, "purged quarantined job 'delta'\n")
    assert stored_state(store_path)[1] == []
    again = run_cli("quarantine", store_path, "--purge", "delta", cwd=store_path.parent)
    assert (again.returncode, again.stderr) == (
        1,
        "Error: no quarantined job has the id 'delta'\n",
    )


def test_quarantine_restore_and_purge_together_is_a_usage_error(store_path: Path) -> None:
    result = run_cli(
        "quarantine", store_path, "--restore", "delta", "--purge", "delta", cwd=store_path.parent
    )
    assert result.returncode == 2
    assert "give --restore or --purge, not both" in result.stderr


# -- usage, help, the package's weight ---------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(tmp_path: Path, command: str) -> None:
    result = run_cli(command, "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert f"Usage: lmdbstore {command} [OPTIONS]" in result.stdout
    assert "Example" in result.stdout
    assert f"lmdbstore {command} " in result.stdout.split("Example")[1]


def test_top_level_help_lists_every_command(tmp_path: Path) -> None:
    result = run_cli("--help", cwd=tmp_path)
    assert result.returncode == 0
    listed = result.stdout.split("Commands:")[1].split()
    assert set(COMMANDS) <= set(listed)


@pytest.mark.parametrize(
    "args",
    [
        ["list", "missing.lmdb"],
        ["list"],
        ["frobnicate"],
        ["show", "missing.lmdb", "id"],
        ["list", "--no-such-option", "x"],
    ],
)
def test_usage_errors_exit_with_2(tmp_path: Path, args: list[str]) -> None:
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("Usage: lmdbstore")


def test_a_path_that_holds_no_store_is_named(tmp_path: Path) -> None:
    result = run_cli("list", "missing.lmdb", cwd=tmp_path)
    assert "Error: Invalid value for 'STORE': 'missing.lmdb' holds no store" in result.stderr
    assert not (tmp_path / "missing.lmdb").exists()


def test_the_console_script_and_the_version(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "lmdbstore"
    result = subprocess.run(
        [script, "--version"], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    assert result.stdout.startswith("lmdbstore, version ")


def test_importing_the_store_does_not_import_the_command_lines_dependencies() -> None:
    code = (
        "import sys, lmdbstore; "
        "print(sorted(m for m in ('click', 'tqdm', 'sqlalchemy', 'redis') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout == "[]\n"


def test_a_job_added_by_a_process_shows_at_once(tmp_path: Path) -> None:
    path = tmp_path / "jobs.lmdb"
    fill_store(path, [])
    store = LMDBJobStore(path)
    try:
        store.add_job(
            make_job(
                "late",
                IntervalTrigger(seconds=1, timezone=UTC),
                datetime(2030, 1, 1, tzinfo=UTC),
            )
        )
        listed = json.loads(run_cli("list", "--json", path, cwd=tmp_path).stdout)
    finally:
        store.shutdown()
    assert [job["id"] for job in listed] == ["late"]
