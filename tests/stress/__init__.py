"""Programs that the crash, concurrency and fault tests run in processes of their own.

Each module here runs as ``python -m <package>.<module>``. The package is imported as
``stress`` when pytest has put ``tests/`` on ``sys.path`` and as ``tests.stress`` when a
script runs from the repository root; :func:`started` and :func:`run` launch a module under
the same name, with the directory that makes it importable on the child's ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

_IMPORT_ROOT = Path(__file__).resolve().parents[__name__.count(".") + 1]


def module_command(module: str, *args: str) -> list[str]:
    """The command line that runs ``module`` of this package with ``args``."""
    return [sys.executable, "-u", "-m", f"{__name__}.{module}", *args]


def child_environment() -> dict[str, str]:
    """The environment of a child process: ours, with this package importable."""
    environment = dict(os.environ)
    paths = [str(_IMPORT_ROOT), environment.get("PYTHONPATH", "")]
    environment["PYTHONPATH"] = os.pathsep.join(path for path in paths if path)
    return environment


@contextmanager
def started(module: str, *args: str, **popen: Any) -> Iterator[subprocess.Popen[str]]:
    """Start ``module`` with its standard output on a pipe (and whatever ``popen`` says);
    kill it at the end (if it still runs) and reap it, whatever happens in between."""
    process = subprocess.Popen(
        module_command(module, *args),
        env=child_environment(),
        stdout=subprocess.PIPE,
        text=True,
        **popen,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                with suppress(BrokenPipeError):  # a child that died unread: its error shows
                    stream.close()


def wait_for(process: subprocess.Popen[str], word: str) -> None:
    """Read the next line ``process`` prints; fail unless it is ``word``."""
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line == f"{word}\n", f"the process said {line!r}, not {word!r}"


def run(
    module: str, *args: str, wrapper: Sequence[str] = (), timeout: float = 120, **popen: Any
) -> subprocess.CompletedProcess[str]:
    """Run ``module`` to its end (through the command ``wrapper``, if given, such as
    ``setpriv``) and return what it printed."""
    return subprocess.run(
        [*wrapper, *module_command(module, *args)],
        env=child_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **popen,
    )
