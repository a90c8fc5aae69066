"""A persistent APScheduler 3.x job store on LMDB."""

from .environment import FORMAT_VERSION
from .errors import (
    JobSerializationError,
    LMDBStoreError,
    NewerFormatError,
    QuarantineLookupError,
    ReadOnlyStoreError,
    SerializerMismatchError,
    StorageError,
    StorePathError,
)
from .integrity import IntegrityReport
from .records import QuarantineEntry
from .store import LMDBJobStore

__version__ = "0.1.0"

__all__ = [
    "FORMAT_VERSION",
    "IntegrityReport",
    "JobSerializationError",
    "LMDBJobStore",
    "LMDBStoreError",
    "NewerFormatError",
    "QuarantineEntry",
    "QuarantineLookupError",
    "ReadOnlyStoreError",
    "SerializerMismatchError",
    "StorageError",
    "StorePathError",
    "__version__",
]
