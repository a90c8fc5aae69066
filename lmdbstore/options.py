"""The options of a store, each checked with a message naming it."""

from __future__ import annotations

import pickle
from dataclasses import asdict, dataclass
from typing import Any

from .environment import DEFAULT_MAP_SIZE, Durability

DEFAULT_CACHE_SIZE = 100_000
DEFAULT_LEASE = 30.0
MAX_LEASE = 86_400
MIN_MAP_SIZE = 1024 * 1024
_DURABILITIES = ("full", "relaxed")


@dataclass(frozen=True)
class StoreOptions:
    """Everything :class:`~lmdbstore.LMDBJobStore` takes besides its path (see there).

    :raises ValueError: naming the parameter, for a value it cannot take
    """

    pickle_protocol: int = pickle.HIGHEST_PROTOCOL
    map_size: int = DEFAULT_MAP_SIZE
    durability: Durability = "full"
    serializer: str = "pickle"
    readonly: bool = False
    cache_size: int = DEFAULT_CACHE_SIZE
    group_commit: bool = True
    lease: float | None = DEFAULT_LEASE
    watch_changes: bool = True

    def __post_init__(self) -> None:
        if not _is_int(self.map_size) or self.map_size < MIN_MAP_SIZE:
            _refuse("map_size", f"an int of at least {MIN_MAP_SIZE} bytes", self.map_size)
        if self.durability not in _DURABILITIES:
            _refuse("durability", '"full" or "relaxed"', self.durability)
        if not _is_int(self.cache_size) or self.cache_size < 0:
            _refuse("cache_size", "an int of at least 0", self.cache_size)
        lease = self.lease
        if lease is not None and (
            not isinstance(lease, (int, float))
            or isinstance(lease, bool)
            or not 0 < lease <= MAX_LEASE
        ):
            _refuse(
                "lease", f"a number of seconds above 0 and at most {MAX_LEASE}, or None", lease
            )
        for name in ("readonly", "group_commit", "watch_changes"):
            if not isinstance(getattr(self, name), bool):
                _refuse(name, "a bool", getattr(self, name))

    def as_dict(self) -> dict[str, Any]:
        """The options as keyword arguments."""
        return asdict(self)


def _refuse(name: str, expected: str, value: object) -> None:
    raise ValueError(f'The "{name}" parameter must be {expected}, not {value!r}')


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
