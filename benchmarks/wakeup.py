"""The scheduler's wakeup, run by the real scheduler code.

:class:`ManualScheduler` is an APScheduler ``BaseScheduler`` that starts its executors and
stores like any other but runs no thread: a wakeup is a direct call of its
``_process_jobs()`` (``get_due_jobs``, then for each due job the executor's ``submit_job``
and ``update_job``, then ``get_next_run_time``). Its executor takes every job and runs none,
so a wakeup costs what the scheduler and the store cost.
"""

from __future__ import annotations

from datetime import datetime

from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job
from apscheduler.jobstores.base import BaseJobStore
from apscheduler.schedulers.base import BaseScheduler

from .jobs import TIMEZONE

ALIAS = "default"


class NoOpExecutor(BaseExecutor):  # type: ignore[misc]
    """Takes every job submitted and runs none."""

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        """Run nothing."""

    def finish_all(self) -> None:
        """Forget the jobs submitted, as if they had all run: ``submit_job`` refuses a job
        whose ``max_instances`` are running."""
        self._instances.clear()

    @property
    def submitted(self) -> int:
        """How many jobs were submitted since :meth:`finish_all`."""
        return sum(self._instances.values())


class ManualScheduler(BaseScheduler):  # type: ignore[misc]
    """A started scheduler whose wakeups the benchmark runs itself, with
    :meth:`process_jobs`."""

    def __init__(self, store: BaseJobStore | None = None) -> None:
        super().__init__(timezone=TIMEZONE)
        self.executor = NoOpExecutor()
        self.add_executor(self.executor, ALIAS)
        if store is not None:
            self.add_jobstore(store, ALIAS)

    def shutdown(self, wait: bool = True) -> None:
        super().shutdown(wait)

    def wakeup(self) -> None:
        """Nothing: the benchmark runs the wakeups."""

    def before_wakeup(self) -> None:
        """Get ready for a wakeup: the jobs of the last one have finished."""
        self.executor.finish_all()

    def run_wakeup(self) -> None:
        """One wakeup, as the scheduler's thread runs it."""
        self._process_jobs()

    def processed(self, result: object = None) -> int:
        """How many due jobs the last wakeup submitted (``result`` is ignored)."""
        return self.executor.submitted


def started_scheduler(store: BaseJobStore) -> ManualScheduler:
    """A started scheduler with ``store`` as its only job store (started by it)."""
    scheduler = ManualScheduler(store)
    scheduler.start()
    return scheduler
