"""APScheduler's job export format: what ``BaseScheduler.export_jobs`` writes and
``BaseScheduler.import_jobs`` reads.

A JSON document ``{"version": 1, "scheduler_version": ..., "jobs": [job state, ...]}``
in which an object whose state is a mapping becomes
``{"__apscheduler_class__": "module:Class", "__apscheduler_state__": {...}}`` and any other
object that JSON cannot hold becomes ``{"__apscheduler_pickle__": base64(pickle)}``.

APScheduler keeps its encoder and decoder inside those two methods, where they cannot be
called; ``import_jobs`` moreover imports every job's callable. So they are written again
here, to the letter (the tests check both directions against a real scheduler), with one
difference: a document is decoded job by job, so that one job that cannot be read does not
hide the others.
"""

from __future__ import annotations

import json
import pickle
from base64 import b64decode, b64encode
from collections.abc import Iterable, Mapping
from typing import IO, Any

from apscheduler import version as apscheduler_version
from apscheduler.util import obj_to_ref, ref_to_obj

EXPORT_VERSION = 1
"""The version of the export format read and written here."""


class ExportFormatError(ValueError):
    """A file is not in APScheduler's job export format."""


def _encode_object(obj: object) -> dict[str, Any]:
    """``json.dump``'s ``default``: as ``export_jobs`` encodes what JSON cannot hold."""
    if hasattr(obj, "__getstate__") and hasattr(obj, "__setstate__"):
        state = obj.__getstate__()
        if isinstance(state, Mapping):
            return {
                "__apscheduler_class__": obj_to_ref(obj.__class__),
                "__apscheduler_state__": state,
            }
    data = pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
    return {"__apscheduler_pickle__": b64encode(data).decode("ascii")}


def _decode_object(obj: dict[str, Any]) -> Any:
    """As ``import_jobs``'s object hook decodes one JSON object."""
    if pickle_data := obj.get("__apscheduler_pickle__"):
        return pickle.loads(b64decode(pickle_data))
    class_ref = obj.get("__apscheduler_class__")
    class_state = obj.get("__apscheduler_state__")
    if class_ref and class_state:
        decoded = object.__new__(ref_to_obj(class_ref))
        decoded.__setstate__(class_state)
        return decoded
    return obj


def decode_value(value: Any) -> Any:
    """Decode a value parsed from an export document, innermost objects first (the order
    in which ``json.load`` calls an object hook)."""
    if isinstance(value, list):
        return [decode_value(item) for item in value]
    if isinstance(value, dict):
        return _decode_object({key: decode_value(item) for key, item in value.items()})
    return value


def encode_job(state: Mapping[str, Any]) -> str:
    """Encode one job state (next run time included) as ``export_jobs`` does.

    :raises Exception: whatever encoding raises (pickling an object, for instance)
    """
    return json.dumps(state, default=_encode_object)


def write_export(encoded_jobs: Iterable[str], file: IO[str]) -> None:
    """Write a document holding jobs encoded by :func:`encode_job` to ``file``, as
    ``export_jobs`` writes it."""
    head = json.dumps({"version": EXPORT_VERSION, "scheduler_version": apscheduler_version})
    file.write(f'{head[:-1]}, "jobs": [{", ".join(encoded_jobs)}]}}')


def read_export(file: IO[str]) -> list[Any]:
    """Parse an export document and return its jobs, each still encoded: decode each with
    :func:`decode_value`.

    :raises ExportFormatError: if ``file`` is not an export of version 1
    """
    try:
        document = json.load(file)
    except ValueError as exc:
        raise ExportFormatError(f"it is not JSON: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("jobs"), list):
        raise ExportFormatError('it is not a JSON object with a "jobs" list')
    if (found := document.get("version")) != EXPORT_VERSION:
        raise ExportFormatError(f"its version is {found!r}, not {EXPORT_VERSION}")
    return document["jobs"]  # type: ignore[no-any-return]
