"""How a job's state becomes bytes and back: the pluggable serializers.

The storage layer sees only bytes; a serializer owns everything between a
:class:`~apscheduler.job.Job` and those bytes.

A state of the shape ``Job.__getstate__`` makes (its version 1, a callable with a textual
reference) is serialized as the tuple of its :data:`JOB_PARTS` (since store format 4):
quicker to restore than a dict, and smaller. Any other state is serialized as it is.
"""

from __future__ import annotations

import pickle
from operator import itemgetter
from typing import Any, ClassVar

from apscheduler.job import Job

from .triggers import compact_state, restored_state, restored_trigger


def _stored_by_value() -> None:
    """Stands in for a callable stored by value while a job is rebuilt."""


_BY_VALUE_REF = f"{__name__}:{_stored_by_value.__name__}"
_JOB_SLOTS = tuple(name for name in Job.__slots__ if name != "__weakref__")

JOB_PARTS = (
    *("id", "func", "trigger", "executor", "name", "misfire_grace_time", "coalesce"),
    *("max_instances", "args", "kwargs"),
)
"""The parts of a job state (``Job.__getstate__`` less its version and next run time) in
the order of a serialized tuple."""
_STATE_VERSION = 1  # the Job state version whose parts JOB_PARTS names
_STATE_KEYS = frozenset({"version", *JOB_PARTS})
_get_parts = itemgetter(*JOB_PARTS)


def parts_of_state(state: dict[str, Any]) -> tuple[Any, ...] | None:
    """The :data:`JOB_PARTS` of ``state``, if it is of the shape ``Job.__getstate__``
    makes (less its next run time) with a textual reference to its callable."""
    if (
        state.keys() != _STATE_KEYS
        or state["version"] != _STATE_VERSION
        or type(state["func"]) is not str
    ):
        return None
    return _get_parts(state)  # type: ignore[no-any-return]


def state_of_body(obj: Any) -> Any:
    """The job state (less its next run time) that ``obj``, a serialized body restored,
    stands for: a dict if it is one."""
    if type(obj) is not tuple or len(obj) != len(JOB_PARTS):
        return obj
    job_id, func, trigger, executor, name, grace, coalesce, most, args, kwargs = obj
    return {  # in the order of Job.__getstate__
        "version": _STATE_VERSION,
        "id": job_id,
        "func": func,
        "trigger": trigger,
        "executor": executor,
        "args": args,
        "kwargs": kwargs,
        "name": name,
        "misfire_grace_time": grace,
        "coalesce": coalesce,
        "max_instances": most,
    }


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
        """Serialize a job's ``state`` (made by :meth:`job_state`, less its next run time);
        raises whatever pickling raises."""
        compact = compact_state(state)
        parts = parts_of_state(compact)
        return self._dumps(compact if parts is None else parts)

    def loads(self, data: bytes) -> dict[str, Any]:
        """Deserialize a state :meth:`dumps` made; raises whatever unpickling raises."""
        return restored_state(state_of_body(pickle.loads(data)))

    def load_parts(self, data: bytes) -> tuple[Any, ...] | dict[str, Any]:
        """Deserialize a state :meth:`dumps` made: its :data:`JOB_PARTS` if it has them
        (:func:`parts_of_state`), else the state itself. Raises whatever unpickling
        raises, or :class:`ValueError` for a trigger in a compact form no version made."""
        obj = pickle.loads(data)
        if type(obj) is tuple:  # written so, since format 4
            job_id, func, trigger, executor, name, grace, coalesce, most, args, kwargs = obj
            trigger = restored_trigger(trigger)
            return (job_id, func, trigger, executor, name, grace, coalesce, most, args, kwargs)
        state = restored_state(obj)
        parts = parts_of_state(state)
        return state if parts is None else parts

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
