"""How a job's state becomes bytes and back: the pluggable serializers.

The storage layer sees only bytes; a serializer owns everything between a
:class:`~apscheduler.job.Job` and those bytes.
"""

from __future__ import annotations

import pickle
from typing import Any, ClassVar

from apscheduler.job import Job

from .triggers import compact_state, restored_state


def _stored_by_value() -> None:
    """Stands in for a callable stored by value while a job is rebuilt."""


_BY_VALUE_REF = f"{__name__}:{_stored_by_value.__name__}"
_JOB_SLOTS = tuple(name for name in Job.__slots__ if name != "__weakref__")


class Serializer:
    """Pickles job state with the standard :mod:`pickle` module.

    Like APScheduler's own stores, it stores a job's callable by its textual reference
    (``module:name``), so only jobs whose callable has one can be stored.

    :param pickle_protocol: pickle protocol level, defaults to the highest available (as
        with :func:`pickle.dumps`, a negative level picks the highest)
    """

    name: ClassVar[str] = "pickle"
    tag: ClassVar[int] = 1

    def __init__(self, pickle_protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
        if (
            not isinstance(pickle_protocol, int)
            or isinstance(pickle_protocol, bool)
            or pickle_protocol > pickle.HIGHEST_PROTOCOL
        ):
            raise ValueError(
                f'The "pickle_protocol" parameter must be an int of at most '
                f"{pickle.HIGHEST_PROTOCOL} (a negative one picks the highest), "
                f"not {pickle_protocol!r}"
            )
        self.pickle_protocol = pickle_protocol

    def dumps(self, state: dict[str, Any]) -> bytes:
        """Serialize a job's ``state`` (made by :meth:`job_state`); raises whatever
        pickling raises."""
        return self._dumps(compact_state(state))

    def loads(self, data: bytes) -> dict[str, Any]:
        """Deserialize a state :meth:`dumps` made; raises whatever unpickling raises."""
        return restored_state(pickle.loads(data))

    def _dumps(self, obj: object) -> bytes:
        return pickle.dumps(obj, self.pickle_protocol)

    def job_state(self, job: Job) -> dict[str, Any]:
        """Return the state of ``job`` to serialize (as ``Job.__getstate__`` makes it).

        :raises ValueError: if the job's callable has no textual reference
        """
        return job.__getstate__()  # type: ignore[no-any-return]

    def build_job(self, state: dict[str, Any]) -> Job:
        """Rebuild a job from a state made by :meth:`job_state`."""
        job = Job.__new__(Job)
        job.__setstate__(state)
        return job


class CloudpickleSerializer(Serializer):
    """Serializes with :mod:`cloudpickle`, which stores by value what has no textual
    reference: lambdas, closures, ``functools.partial`` objects, functions of ``__main__``.

    Such a record is tied to the Python version and to the code as it was when it was
    written: it runs that code, not the code of the module as it is now.
    """

    name: ClassVar[str] = "cloudpickle"
    tag: ClassVar[int] = 2

    def _dumps(self, obj: object) -> bytes:
        import cloudpickle

        return cloudpickle.dumps(obj, self.pickle_protocol)  # type: ignore[no-any-return]

    def job_state(self, job: Job) -> dict[str, Any]:
        if job.func_ref:
            return super().job_state(job)
        state = super().job_state(_with_placeholder_ref(job))
        state["func"] = job.func
        return state

    def build_job(self, state: dict[str, Any]) -> Job:
        func = state["func"]
        if isinstance(func, str):
            return super().build_job(state)
        job = super().build_job({**state, "func": _BY_VALUE_REF})
        job.func = func
        job.func_ref = None
        return job


def _with_placeholder_ref(job: Job) -> Job:
    stand_in = Job.__new__(Job)
    for name in _JOB_SLOTS:
        if hasattr(job, name):
            setattr(stand_in, name, getattr(job, name))
    stand_in.func_ref = _BY_VALUE_REF
    stand_in.func = _stored_by_value
    return stand_in


SERIALIZERS: dict[str, type[Serializer]] = {
    Serializer.name: Serializer,
    CloudpickleSerializer.name: CloudpickleSerializer,
}
"""The serializers by the name the ``serializer`` option takes."""

SERIALIZER_NAMES: dict[int, str] = {cls.tag: name for name, cls in SERIALIZERS.items()}
"""Serializer names by the tag their records carry."""


def make_serializer(name: str, pickle_protocol: int = pickle.HIGHEST_PROTOCOL) -> Serializer:
    """Return the serializer called ``name``.

    :raises ValueError: if there is no serializer of that name
    """
    try:
        cls = SERIALIZERS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f'The "serializer" parameter must be one of {", ".join(map(repr, SERIALIZERS))}, '
            f"not {name!r}"
        ) from None
    return cls(pickle_protocol)
