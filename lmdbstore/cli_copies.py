"""The commands that copy a store or its jobs: ``backup``, ``compact``, ``export``,
``import``, ``migrate``."""

from __future__ import annotations

import os

import click

from .cli_options import import_path_option, progress_bar, store_argument
from .copies import backup_store, compact_store, prepare_backup_directory
from .endpoints import Endpoint, ExportFileEndpoint, LMDBEndpoint
from .errors import StorePathError
from .job_stores_by_url import open_endpoint
from .job_views import byte_size
from .migration import copy_jobs
from .serializers import SERIALIZERS


@click.command(short_help="Copy the store, compacted, while it runs.")
@store_argument
@click.argument("dest", type=click.Path(file_okay=False))
def backup(store: str, dest: str) -> None:
    """Copy STORE into DEST, a new or empty directory: one consistent snapshot, compacted,
    taken while schedulers go on using STORE. DEST is then a store of its own.

    \b
    Example:
      lmdbstore backup /var/lib/myapp/jobs.lmdb /backup/jobs-$(date +%F)
    """
    try:
        prepare_backup_directory(dest)
    except StorePathError as exc:
        raise click.BadParameter(str(exc), param_hint="DEST") from exc
    counts = backup_store(store, dest)
    size = os.path.getsize(os.path.join(dest, "data.mdb"))
    click.echo(
        f"backed up {store} to {dest}: {counts.get('jobs', 0)} jobs, "
        f"{counts.get('quarantine', 0)} quarantined, {byte_size(size)}"
    )


@click.command(short_help="Shrink the data file (while nobody uses it).")
@store_argument
def compact(store: str) -> None:
    """Rewrite STORE without its free pages, so that its data file shrinks (LMDB never
    shrinks it by itself).

    This needs STORE to itself: it refuses (exit status 1) while any other process has
    STORE open, and a process that opens STORE meanwhile waits until it is done. Stop the
    schedulers first. (A backup, which needs no stop, is compacted too.)

    \b
    Example:
      lmdbstore compact /var/lib/myapp/jobs.lmdb
    """
    before, after = compact_store(store)
    click.echo(f"compacted {store}: data file {byte_size(before)} -> {byte_size(after)}")


skip_broken_option = click.option(
    "--skip-broken",
    is_flag=True,
    help="Copy the jobs that can be read even if some cannot (else nothing is written).",
)
dry_run_option = click.option(
    "--dry-run", is_flag=True, help="Read both ends and count what would be copied; write nothing."
)
replace_option = click.option(
    "--replace-existing", is_flag=True, help="Replace jobs of the same id (else they are skipped)."
)
serializer_option = click.option(
    "--serializer",
    type=click.Choice(list(SERIALIZERS)),
    help="The serializer of a store the command creates (default: the source store's, or pickle).",
)


def _copy(
    source: Endpoint,
    destination: Endpoint,
    *,
    replace_existing: bool,
    skip_broken: bool,
    dry_run: bool,
) -> None:
    try:
        summary = copy_jobs(
            source,
            destination,
            replace_existing=replace_existing,
            skip_broken=skip_broken,
            dry_run=dry_run,
            progress=progress_bar,
        )
    finally:
        source.close()
        destination.close()
    to_stdout = not (isinstance(destination, ExportFileEndpoint) and destination.path == "-")
    click.echo(str(summary), err=not to_stdout)
    if not summary.ok:
        click.get_current_context().exit(1)


@click.command("export", short_help="Write the jobs in APScheduler's export format.")
@store_argument
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@skip_broken_option
@dry_run_option
@import_path_option
def export_jobs(store: str, file: str, skip_broken: bool, dry_run: bool) -> None:
    """Write the jobs of STORE to FILE (- for standard output) in APScheduler's export
    format, the JSON that BaseScheduler.export_jobs writes and import_jobs reads. FILE is
    replaced. Quarantined jobs are not exported; jobs whose callable is stored by value
    (cloudpickle) cannot be.

    \b
    Example:
      lmdbstore export jobs.lmdb jobs.json
    """
    source = LMDBEndpoint(store)
    _copy(
        source,
        ExportFileEndpoint(file),
        replace_existing=False,
        skip_broken=skip_broken,
        dry_run=dry_run,
    )


@click.command("import", short_help="Add the jobs of an APScheduler export file.")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.argument("store", type=click.Path(file_okay=False))
@replace_option
@skip_broken_option
@dry_run_option
@serializer_option
@import_path_option
def import_jobs(
    file: str,
    store: str,
    replace_existing: bool,
    skip_broken: bool,
    dry_run: bool,
    serializer: str | None,
) -> None:
    """Add the jobs of FILE (- for standard input), in APScheduler's export format (as
    BaseScheduler.export_jobs writes it), to STORE, which is created if missing. The jobs'
    callables are not imported.

    \b
    Example:
      lmdbstore import jobs.json /var/lib/myapp/jobs.lmdb
    """
    destination = LMDBEndpoint(store, new_serializer=serializer or "pickle")
    _copy(
        ExportFileEndpoint(file),
        destination,
        replace_existing=replace_existing,
        skip_broken=skip_broken,
        dry_run=dry_run,
    )


@click.command(short_help="Copy every job between any two job stores.")
@click.argument("source")
@click.argument("dest")
@replace_option
@skip_broken_option
@dry_run_option
@serializer_option
@import_path_option
def migrate(
    source: str,
    dest: str,
    replace_existing: bool,
    skip_broken: bool,
    dry_run: bool,
    serializer: str | None,
) -> None:
    """Copy every job of SOURCE to DEST. Each is an lmdbstore store (a path), one of
    APScheduler's job stores named by a URL, or a .json file in APScheduler's export format:

    \b
      sqlite:///jobs.sqlite, postgresql://user@host/db, mysql+pymysql://...
          SQLAlchemyJobStore, table apscheduler_jobs
      redis://host:6379/0, rediss://...
          RedisJobStore, keys apscheduler.jobs and apscheduler.run_times
      mongodb://host/, mongodb+srv://...
          MongoDBJobStore, database apscheduler, collection jobs (needs pymongo)

    Every job of SOURCE is read first; if one cannot be read, nothing is written (unless
    --skip-broken). Jobs already in DEST are skipped (unless --replace-existing). Callables
    are never imported, and SOURCE is never changed. Exit status 1 if a job failed.

    \b
    Examples:
      lmdbstore migrate jobs.lmdb sqlite:///jobs.sqlite
      lmdbstore migrate --dry-run jobs.lmdb redis://127.0.0.1:6379/0
      lmdbstore migrate postgresql://sched@db/prod jobs.lmdb --replace-existing
    """
    if os.path.realpath(source) == os.path.realpath(dest):
        raise click.UsageError("SOURCE and DEST are the same")
    source_end = open_endpoint(source)
    inherited = source_end.serializer_name if isinstance(source_end, LMDBEndpoint) else None
    destination = open_endpoint(dest, new_serializer=serializer or inherited or "pickle")
    _copy(
        source_end,
        destination,
        replace_existing=replace_existing,
        skip_broken=skip_broken,
        dry_run=dry_run,
    )


COPY_COMMANDS = (backup, compact, export_jobs, import_jobs, migrate)
"""The commands of this module, in the order ``--help`` lists them."""
