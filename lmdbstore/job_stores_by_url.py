"""APScheduler's own persistent job stores as ends of a copy, and :func:`open_endpoint`,
which opens any end by its name: a path, a URL, a ``.json`` file.

They are written through their own ``add_job``/``update_job``, but read row by row:
read the usual way, through ``get_all_jobs``, they import every job's callable and delete
the jobs they cannot restore.
"""

from __future__ import annotations

import pickle
from typing import Any
from urllib.parse import urlsplit

from apscheduler.jobstores.base import BaseJobStore

from .endpoints import (
    STANDARD_STREAM,
    Endpoint,
    EndpointError,
    ExportFileEndpoint,
    JobState,
    LMDBEndpoint,
    Outcome,
    RawJob,
    add_to_store,
    by_reference,
    checked_state,
)


class JobStoreEndpoint(Endpoint):
    """One of APScheduler's job stores, written through its own ``add_job``/``update_job``
    and read row by row."""

    def __init__(self, description: str, store: BaseJobStore) -> None:
        self.description = description
        self.store = store

    def decode(self, data: Any) -> JobState:
        return checked_state(pickle.loads(data))

    def prepare(self) -> None:
        try:
            self.store.start(None, "lmdbstore")  # creates the table of a SQL database
        except Exception as exc:
            raise EndpointError(f"cannot write to {self}: {exc}") from exc

    def add(self, state: JobState, replace_existing: bool) -> Outcome:
        return add_to_store(self.store, by_reference(state, self), replace_existing)

    def close(self) -> None:
        self.store.shutdown()


class SQLAlchemyEndpoint(JobStoreEndpoint):
    """A ``SQLAlchemyJobStore`` (SQLite, PostgreSQL, MySQL, ...), table ``apscheduler_jobs``."""

    def __init__(self, url: str) -> None:
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

        super().__init__(f"SQL database {_without_password(url)}", SQLAlchemyJobStore(url=url))

    def _has_table(self) -> bool:
        from sqlalchemy import inspect

        table = self.store.jobs_t
        return bool(inspect(self.store.engine).has_table(table.name, schema=table.schema))

    def raw_jobs(self) -> list[RawJob]:
        from sqlalchemy import select

        if not self._has_table():
            return []
        table = self.store.jobs_t
        query = select(table.c.id, table.c.job_state).order_by(table.c.next_run_time)
        with self.store.engine.begin() as connection:
            return [RawJob(row.id, row.job_state) for row in connection.execute(query)]

    def contains(self, job_id: str) -> bool:
        from sqlalchemy import select

        if not self._has_table():
            return False
        table = self.store.jobs_t
        with self.store.engine.begin() as connection:
            query = select(table.c.id).where(table.c.id == job_id)
            return connection.execute(query).first() is not None


class RedisEndpoint(JobStoreEndpoint):
    """A ``RedisJobStore``: hash ``apscheduler.jobs``, sorted set ``apscheduler.run_times``."""

    def __init__(self, url: str) -> None:
        from apscheduler.jobstores.redis import RedisJobStore
        from redis.connection import parse_url

        options: dict[str, Any] = parse_url(url)  # type: ignore[no-untyped-call]
        if options.pop("connection_class", None) is not None:
            options["ssl"] = True  # rediss://
        store = RedisJobStore(db=options.pop("db", 0), **options)
        super().__init__(f"Redis {_without_password(url)}", store)

    def raw_jobs(self) -> list[RawJob]:
        states = self.store.redis.hgetall(self.store.jobs_key)
        return sorted(RawJob(key.decode("utf-8"), value) for key, value in states.items())

    def contains(self, job_id: str) -> bool:
        return bool(self.store.redis.hexists(self.store.jobs_key, job_id))

    def prepare(self) -> None:
        super().prepare()
        try:
            self.store.redis.ping()
        except Exception as exc:
            raise EndpointError(f"cannot write to {self}: {exc}") from exc


class MongoDBEndpoint(JobStoreEndpoint):
    """A ``MongoDBJobStore``: database ``apscheduler``, collection ``jobs``."""

    def __init__(self, url: str) -> None:
        try:
            from apscheduler.jobstores.mongodb import MongoDBJobStore
        except ImportError as exc:
            raise EndpointError("MongoDB needs pymongo: pip install pymongo") from exc
        super().__init__(f"MongoDB {_without_password(url)}", MongoDBJobStore(host=url))

    def raw_jobs(self) -> list[RawJob]:
        documents = self.store.collection.find({}, ["_id", "job_state"])
        return [RawJob(document["_id"], document["job_state"]) for document in documents]

    def contains(self, job_id: str) -> bool:
        return self.store.collection.find_one({"_id": job_id}, ["_id"]) is not None


def _without_password(url: str) -> str:
    password = urlsplit(url).password
    return url if password is None else url.replace(f":{password}@", ":***@", 1)


def open_endpoint(name: str, *, new_serializer: str = "pickle") -> Endpoint:
    """Open the end of a copy that ``name`` names: a file ending in ``.json`` (export
    format), a URL (``redis://``, ``rediss://``, ``mongodb://``, ``mongodb+srv://``, or any
    SQLAlchemy URL: ``sqlite:///jobs.sqlite``, ``postgresql://...``), or else the path of
    an lmdbstore store.

    :param new_serializer: the serializer of an lmdbstore store created by the copy
    :raises EndpointError: if ``name`` names nothing that can be opened
    """
    if name.endswith(".json") or name == STANDARD_STREAM:
        return ExportFileEndpoint(name)
    scheme, found, _ = name.partition("://")
    try:
        if not found:
            return LMDBEndpoint(name, new_serializer=new_serializer)
        if scheme.lower() in ("redis", "rediss"):
            return RedisEndpoint(name)
        if scheme.lower() in ("mongodb", "mongodb+srv"):
            return MongoDBEndpoint(name)
        return SQLAlchemyEndpoint(name)
    except EndpointError:
        raise
    except Exception as exc:
        raise EndpointError(f"cannot open {_without_password(name)}: {exc}") from exc
