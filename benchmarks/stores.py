"""The stores benchmarked, each opened as its users configure it, and the Redis server.

A store lives at a *location*, a string a fresh process can open it from again: a directory
for the file stores (LMDB, SQLite), ``host:port:prefix`` for Redis (the prefix names its
keys), nothing for the memory store. Store modules are imported only when a store is opened,
so that a fresh process holds only the store it measures.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from apscheduler.job import Job
from apscheduler.jobstores.base import BaseJobStore

_REDIS_START_SECONDS = 10.0


@dataclass(frozen=True)
class StoreSpec:
    """A store the benchmark runs.

    :param name: its name on the command line and in the results
    :param label: the class users know it by
    :param module: the module of that class, imported before a cold start is timed
    :param persistent: whether the jobs outlive the process (and a fresh process can
        open them again)
    :param open: open (create) the store at a location
    :param bulk_add: add many jobs the fastest way the store offers
    :param disk_bytes: the bytes the store at a location takes on disk
    """

    name: str
    label: str
    module: str
    persistent: bool
    open: Callable[[str], BaseJobStore]
    bulk_add: Callable[[BaseJobStore, list[Job]], None]
    disk_bytes: Callable[[BaseJobStore, str], int] | None


def _open_lmdb(location: str) -> BaseJobStore:
    from lmdbstore import LMDBJobStore

    return LMDBJobStore(location)


def _open_lmdb_unshared(location: str) -> BaseJobStore:
    from lmdbstore import LMDBJobStore

    return LMDBJobStore(location, lease=None, watch_changes=False)


def _open_memory(location: str) -> BaseJobStore:
    from apscheduler.jobstores.memory import MemoryJobStore

    return MemoryJobStore()


def _open_sqlite(location: str) -> BaseJobStore:
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

    return SQLAlchemyJobStore(url=f"sqlite:///{os.path.join(location, 'jobs.sqlite')}")


def _open_redis(location: str) -> BaseJobStore:
    from apscheduler.jobstores.redis import RedisJobStore

    host, port, prefix = location.split(":")
    return RedisJobStore(
        host=host, port=int(port), jobs_key=f"{prefix}.jobs", run_times_key=f"{prefix}.run_times"
    )


def _add_all(store: BaseJobStore, jobs: list[Job]) -> None:
    store.add_jobs(jobs)


def _add_each(store: BaseJobStore, jobs: list[Job]) -> None:
    for job in jobs:
        store.add_job(job)


def directory_bytes(store: BaseJobStore, location: str) -> int:
    """The bytes the files under ``location`` take on disk (as ``du`` counts them)."""
    total = 0
    for directory, _, files in os.walk(location):
        for name in files:
            total += os.stat(os.path.join(directory, name)).st_blocks * 512
    return total


def redis_snapshot_bytes(store: BaseJobStore, location: str) -> int:
    """The size of the snapshot (RDB file) Redis writes on ``SAVE``, however long it takes."""
    from redis import Redis

    host, port, _ = location.split(":")
    with Redis(host=host, port=int(port), socket_timeout=None) as client:
        client.save()
        directory = client.config_get("dir")["dir"]
        filename = client.config_get("dbfilename")["dbfilename"]
    return os.stat(os.path.join(directory, filename)).st_size


STORES = {
    spec.name: spec
    for spec in (
        StoreSpec(
            "lmdb", "LMDBJobStore", "lmdbstore", True, _open_lmdb, _add_all, directory_bytes
        ),
        StoreSpec(
            "lmdb-unshared",
            "LMDBJobStore, not shared (lease=None)",
            "lmdbstore",
            True,
            _open_lmdb_unshared,
            _add_all,
            directory_bytes,
        ),
        StoreSpec(
            "memory",
            "MemoryJobStore",
            "apscheduler.jobstores.memory",
            False,
            _open_memory,
            _add_each,
            None,
        ),
        StoreSpec(
            "sqlite",
            "SQLAlchemyJobStore (SQLite)",
            "apscheduler.jobstores.sqlalchemy",
            True,
            _open_sqlite,
            _add_each,
            directory_bytes,
        ),
        StoreSpec(
            "redis",
            "RedisJobStore",
            "apscheduler.jobstores.redis",
            True,
            _open_redis,
            _add_each,
            redis_snapshot_bytes,
        ),
    )
}
OURS = "lmdb"
OPT_IN = frozenset({"lmdb-unshared"})
"""Stores run only when named: our store without what sharing it between schedulers
costs, to measure that cost."""


def redis_server_path() -> str | None:
    return shutil.which("redis-server")


def redis_server_version() -> str | None:
    path = redis_server_path()
    if path is None:
        return None
    output = subprocess.run([path, "--version"], capture_output=True, text=True, check=True)
    return output.stdout.strip()


class RedisServer:
    """A ``redis-server`` of the benchmark's own on a free loopback port, persistence off
    (no snapshots, no append-only file: Redis at its fastest), writing in ``directory``
    only when the disk measure asks it to ``SAVE``.

    Entering it starts the server and returns its ``host:port``; leaving stops it.
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.host = "127.0.0.1"
        self.port = 0
        self._log = os.path.join(directory, "redis.log")
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> str:
        path = redis_server_path()
        if path is None:
            raise RuntimeError("redis-server is not on the PATH")
        with socket.socket() as probe:
            probe.bind((self.host, 0))
            self.port = probe.getsockname()[1]
        # fmt: off
        command = [
            path, "--bind", self.host, "--port", str(self.port), "--dir", self.directory,
            "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning",
        ]
        # fmt: on
        with open(self._log, "wb") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        self._wait_until_ready()
        return f"{self.host}:{self.port}"

    def _wait_until_ready(self) -> None:
        from redis import Redis
        from redis.exceptions import ConnectionError as RedisConnectionError

        assert self._process is not None
        client = Redis(host=self.host, port=self.port)
        deadline = time.monotonic() + _REDIS_START_SECONDS
        try:
            while True:
                if self._process.poll() is not None:
                    with open(self._log) as log:
                        raise RuntimeError(f"redis-server exited at start: {log.read().strip()}")
                try:
                    client.ping()
                    return
                except RedisConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        finally:
            client.close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=_REDIS_START_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
