"""The errors that are lmdbstore's own.

The job store contract keeps APScheduler's errors (:class:`ConflictingIdError`,
:class:`JobLookupError`); these are for what belongs to this store: its files, its format,
its serialization.
"""

from __future__ import annotations

import os


class LMDBStoreError(Exception):
    """Base class of every error raised by lmdbstore itself."""


class _StoreError(LMDBStoreError):
    """An error about the store at ``path``."""

    def __init__(self, path: str | os.PathLike[str], message: str) -> None:
        super().__init__(message)
        self.path = os.fspath(path)


class StorePathError(_StoreError):
    """The path cannot hold a store: a regular file, another program's directory, or
    unreadable."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        super().__init__(path, f"{os.fspath(path)!r} {problem}")


class NewerFormatError(_StoreError):
    """The store was written by a newer version of lmdbstore."""

    def __init__(self, path: str | os.PathLike[str], found: int, supported: int) -> None:
        super().__init__(
            path,
            f"the store at {os.fspath(path)!r} has format version {found}, but this version "
            f"of lmdbstore reads format {supported} at most: upgrade lmdbstore",
        )


class SerializerMismatchError(_StoreError):
    """The store (or a record in it) was written with another serializer."""

    def __init__(self, path: str | os.PathLike[str], written: str, configured: str) -> None:
        super().__init__(
            path,
            f"the store at {os.fspath(path)!r} was written with serializer {written!r}, but "
            f"is opened with serializer {configured!r}: open it with serializer={written!r}",
        )


class ReadOnlyStoreError(_StoreError):
    """A write was asked of a store opened read-only."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(
            path, f"the store at {os.fspath(path)!r} is read-only: it cannot be changed"
        )


class StorageError(LMDBStoreError):
    """LMDB failed (disk full, I/O error, corrupted file); the message names the store."""


class JobSerializationError(LMDBStoreError, ValueError):
    """A job cannot be stored because it cannot be serialized; nothing was written."""

    def __init__(self, job_id: str, cause: BaseException) -> None:
        super().__init__(f"job {job_id!r} cannot be serialized: {cause}")
        self.job_id = job_id


class QuarantineLookupError(LMDBStoreError, KeyError):
    """No quarantined job has the given id."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no quarantined job has the id {job_id!r}")
        self.job_id = job_id

    def __str__(self) -> str:
        return str(self.args[0])
