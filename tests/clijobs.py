"""Job callables and argument classes for the command line tests.

A command run without ``--path tests`` (or ``PYTHONPATH``) cannot import this module: that
is how the tests make jobs whose code is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


def tick(*args: Any, **kwargs: Any) -> None:
    """A job that does nothing."""


def touch(path: str) -> None:
    """A job that creates the file ``path``."""
    Path(path).write_text("ran")


@dataclass
class Payload:
    """An argument of a class of the tests' own."""

    value: int
