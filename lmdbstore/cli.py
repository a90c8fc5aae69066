"""The ``lmdbstore`` command: see and fix a store's jobs, back it up, move its jobs to and
from any APScheduler job store, without writing Python.

Exit status: 0 when all went well, 1 when a problem was found or an operation failed,
2 for a usage error.
"""

from __future__ import annotations

from typing import Any

import click
from apscheduler.jobstores.base import ConflictingIdError, JobLookupError

from . import __version__
from .cli_copies import COPY_COMMANDS
from .cli_jobs import JOB_COMMANDS
from .endpoints import EndpointError
from .errors import LMDBStoreError
from .migration import BrokenJobsError

_EXPECTED_ERRORS = (
    OSError,
    LMDBStoreError,
    EndpointError,
    BrokenJobsError,
    JobLookupError,
    ConflictingIdError,
)


class _Commands(click.Group):
    """Reports the errors a command can meet as a message and exit status 1, not as a
    traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except _EXPECTED_ERRORS as exc:
            # A KeyError's str() is the repr of its message.
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            raise click.ClickException(str(message)) from exc


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lmdbstore")
def main() -> None:
    """Inspect, repair, back up and migrate an lmdbstore job store.

    STORE is the directory of a store (the path given to LMDBJobStore). Every command
    works while schedulers use the store, except compact. Run `lmdbstore COMMAND --help`
    for a command's options and an example.

    \b
    Examples:
      lmdbstore list /var/lib/myapp/jobs.lmdb
      lmdbstore backup /var/lib/myapp/jobs.lmdb /backup/jobs
      lmdbstore migrate /var/lib/myapp/jobs.lmdb postgresql://sched@db/prod
    """


for _command in (*JOB_COMMANDS, *COPY_COMMANDS):
    main.add_command(_command)
