"""The commands that look at a store's jobs and change one of them: ``list``, ``show``,
``stats``, ``check``, ``pause``, ``resume``, ``remove``, ``quarantine``.

None of them imports a job's callable (but ``quarantine --restore``, which must), and none
ever moves a job to the quarantine.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import click
from apscheduler.jobstores.base import ConflictingIdError

from .cli_options import import_path_option, opened_store, store_argument
from .errors import QuarantineLookupError
from .inspection import (
    StoredJob,
    read_job,
    read_jobs,
    read_quarantined,
    read_stats,
    unimportable_jobs,
)
from .job_views import (
    JOB_HEADERS,
    QUARANTINE_HEADERS,
    job_details,
    job_fields,
    job_row,
    job_summary,
    local_time,
    quarantine_row,
    stats_fields,
    stats_summary,
    table,
    utc_time,
)
from .store import LMDBJobStore

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON, for scripts.")


def _echo_json(value: object) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


@click.command("list", short_help="List the jobs: a table, or JSON.")
@store_argument
@json_option
@import_path_option
def list_jobs(store: str, as_json: bool) -> None:
    """List the jobs of STORE: id, name, callable, trigger, next run time (local and UTC),
    whether paused, whether quarantined. Jobs come in the order the scheduler sees them,
    then the quarantined ones.

    Jobs are read without importing their callables, so a job whose code this command
    cannot import is listed all the same.

    \b
    Examples:
      lmdbstore list /var/lib/myapp/jobs.lmdb
      lmdbstore list --json jobs.lmdb | jq '.[] | select(.paused) | .id'
    """
    with opened_store(store, readonly=True) as opened:
        jobs = read_jobs(opened)
    if as_json:
        _echo_json([job_summary(job) for job in jobs])
    elif not jobs:
        click.echo("no jobs")
    else:
        click.echo(table(JOB_HEADERS, [job_row(job) for job in jobs]))
        for job in jobs:
            if job.problem:
                click.echo(f"note: job {job.job_id!r} cannot be read here: {job.problem}")


def _find(store: LMDBJobStore, job_id: str, *, tolerant: bool = True) -> StoredJob:
    job = read_job(store, job_id, tolerant=tolerant)
    if job is None:
        raise click.ClickException(f"no job has the id {job_id!r} in {store.path}")
    return job


def _refuse_quarantined(job: StoredJob, action: str) -> None:
    if job.quarantine is not None:
        raise click.ClickException(
            f"job {job.job_id!r} is in the quarantine, so it cannot be {action}: restore it "
            "first with `lmdbstore quarantine STORE --restore ID`"
        )


@click.command(short_help="Show every field of one job.")
@store_argument
@click.argument("job_id", metavar="ID")
@json_option
@import_path_option
def show(store: str, job_id: str, as_json: bool) -> None:
    """Show every field of the job ID of STORE (quarantined or not): its callable, trigger,
    next run time, arguments, keyword arguments, executor and limits.

    \b
    Example:
      lmdbstore show jobs.lmdb nightly-report
    """
    with opened_store(store, readonly=True) as opened:
        job = _find(opened, job_id)
    if as_json:
        _echo_json(job_details(job))
    else:
        click.echo(job_fields(job))


@click.command(short_help="Counts, next run time, sizes, format version.")
@store_argument
@json_option
def stats(store: str, as_json: bool) -> None:
    """Show the counts and sizes of STORE: jobs, paused jobs, quarantined jobs, the next
    run time, the map's size and how much of it is used, the data file's size, the format
    version, the serializer. No job is decoded.

    \b
    Example:
      lmdbstore stats jobs.lmdb
    """
    with opened_store(store, readonly=True) as opened:
        found = read_stats(opened)
    if as_json:
        _echo_json(stats_summary(found))
    else:
        click.echo(stats_fields(found))


@click.command(short_help="Check the index and the records; repair them.")
@store_argument
@click.option(
    "--repair",
    is_flag=True,
    help="Move damaged records to the quarantine and rebuild the index.",
)
@import_path_option
@click.pass_context
def check(ctx: click.Context, store: str, repair: bool) -> None:
    """Check STORE: that its run time index and its job records agree, and that every
    record decodes. Exit status 1 if a problem was found (even if --repair repaired it).

    A job whose state names a class this command cannot import (an argument of your own
    class) is a problem here only: --repair leaves it in place; give --path to check it.

    \b
    Examples:
      lmdbstore check jobs.lmdb
      lmdbstore check --repair --path /srv/myapp jobs.lmdb
    """
    with opened_store(store, readonly=not repair) as opened:
        unimportable = unimportable_jobs(opened)
        report = opened.check(repair=repair)
    click.echo(str(report))
    for job_id, error in unimportable.items():
        click.echo(f"note: job {job_id!r} fails here only because {error}: add --path DIR")
    if not report.ok:
        ctx.exit(1)


@click.command(short_help="Pause a job.")
@store_argument
@click.argument("job_id", metavar="ID")
def pause(store: str, job_id: str) -> None:
    """Pause the job ID of STORE: it keeps its place but does not run until resumed.

    A scheduler running on STORE sees the change at its next wakeup.

    \b
    Example:
      lmdbstore pause jobs.lmdb nightly-report
    """
    with opened_store(store) as opened:
        job = _find(opened, job_id)
        _refuse_quarantined(job, "paused")
        if job.next_run_time is None:
            click.echo(f"job {job_id!r} was paused already")
            return
        opened.set_next_run_time(job_id, None)
    click.echo(f"paused job {job_id!r}")


@click.command(short_help="Resume a paused job.")
@store_argument
@click.argument("job_id", metavar="ID")
@import_path_option
def resume(store: str, job_id: str) -> None:
    """Resume the paused job ID of STORE: its next run time becomes the next time its
    trigger fires from now. A job whose trigger fires no more is left paused (remove it
    with `lmdbstore remove`).

    A scheduler running on STORE sees the change at its next wakeup.

    \b
    Example:
      lmdbstore resume jobs.lmdb nightly-report
    """
    with opened_store(store) as opened:
        job = _find(opened, job_id, tolerant=False)
        _refuse_quarantined(job, "resumed")
        if job.state is None:
            raise click.ClickException(
                f"job {job_id!r} cannot be read here, so its next run time cannot be "
                f"computed: {job.problem} (add --path DIR)"
            )
        if job.next_run_time is not None:
            click.echo(
                f"job {job_id!r} is not paused: it runs next at {local_time(job.next_run_time)}"
            )
            return
        next_run_time = job.state["trigger"].get_next_fire_time(None, datetime.now(timezone.utc))
        if next_run_time is None:
            raise click.ClickException(
                f"job {job_id!r} stays paused: its trigger ({job.state['trigger']}) fires no "
                "more; remove it with `lmdbstore remove`"
            )
        opened.set_next_run_time(job_id, next_run_time)
    click.echo(
        f"resumed job {job_id!r}: it runs next at {local_time(next_run_time)} "
        f"({utc_time(next_run_time)} UTC)"
    )


@click.command(short_help="Remove a job.")
@store_argument
@click.argument("job_id", metavar="ID")
def remove(store: str, job_id: str) -> None:
    """Remove the job ID from STORE, for good.

    \b
    Example:
      lmdbstore remove jobs.lmdb obsolete-job
    """
    with opened_store(store) as opened:
        _refuse_quarantined(_find(opened, job_id), "removed (purge it with --purge)")
        opened.remove_job(job_id)
    click.echo(f"removed job {job_id!r}")


@click.command(short_help="List, restore or purge quarantined jobs.")
@store_argument
@click.option("--restore", metavar="ID", help="Put the quarantined job ID back among the jobs.")
@click.option("--purge", metavar="ID", help="Delete the quarantined job ID for good.")
@json_option
@import_path_option
def quarantine(store: str, restore: str | None, purge: str | None, as_json: bool) -> None:
    """List the jobs of STORE that a scheduler could not restore (their code moved, their
    bytes were damaged), with when and why they were quarantined; or restore one (its code
    must import here: see --path), or purge one.

    \b
    Examples:
      lmdbstore quarantine jobs.lmdb
      lmdbstore quarantine jobs.lmdb --restore nightly-report --path /srv/myapp
      lmdbstore quarantine jobs.lmdb --purge obsolete-job
    """
    if restore is not None and purge is not None:
        raise click.UsageError("give --restore or --purge, not both")
    with opened_store(store, readonly=restore is None and purge is None) as opened:
        if restore is not None:
            _restore(opened, restore)
        elif purge is not None:
            opened.purge_quarantined_job(purge)
            click.echo(f"purged quarantined job {purge!r}")
        elif as_json:
            _echo_json([job_details(job) for job in read_quarantined(opened)])
        else:
            jobs = read_quarantined(opened)
            if jobs:
                click.echo(table(QUARANTINE_HEADERS, [quarantine_row(job) for job in jobs]))
            else:
                click.echo("no quarantined jobs")


def _restore(store: LMDBJobStore, job_id: str) -> None:
    try:
        job = store.restore_quarantined_job(job_id)
    except (QuarantineLookupError, ConflictingIdError):
        raise
    except Exception as exc:
        raise click.ClickException(
            f"job {job_id!r} stays quarantined: it cannot be restored here "
            f"({type(exc).__name__}: {exc}); add --path DIR so that its code imports"
        ) from exc
    click.echo(f"restored job {job_id!r}: it runs next at {local_time(job.next_run_time)}")


JOB_COMMANDS = (list_jobs, show, stats, check, pause, resume, remove, quarantine)
"""The commands of this module, in the order ``--help`` lists them."""
