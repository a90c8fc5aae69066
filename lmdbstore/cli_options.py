"""What the commands of ``lmdbstore`` share: the store argument, ``--path``, opening a
store, progress bars."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

import click
from tqdm import tqdm

from .inspection import open_store
from .store import LMDBJobStore

T = TypeVar("T")


def _existing_store(ctx: click.Context, param: click.Parameter, path: str) -> str:
    if not os.path.isfile(os.path.join(path, "data.mdb")):
        raise click.BadParameter(f"{path!r} holds no store (it has no data.mdb)")
    return path


store_argument = click.argument(
    "store", type=click.Path(file_okay=False), callback=_existing_store, metavar="STORE"
)
"""The path of an existing store: a directory holding a ``data.mdb``."""


def _add_import_paths(ctx: click.Context, param: click.Parameter, paths: Sequence[str]) -> None:
    for path in reversed(paths):
        sys.path.insert(0, os.path.abspath(path))


import_path_option = click.option(
    "--path",
    "import_paths",
    multiple=True,
    type=click.Path(exists=True, file_okay=False),
    envvar="LMDBSTORE_PATH",
    expose_value=False,
    callback=_add_import_paths,
    metavar="DIR",
    help="Also import modules from DIR, where your application's code is (repeatable; or "
    "LMDBSTORE_PATH=DIR:DIR).",
)


@contextmanager
def opened_store(path: str, readonly: bool = False) -> Iterator[LMDBJobStore]:
    """The store at ``path``, opened with the serializer it was written with (for reading
    only, if ``readonly``), and closed after the block."""
    store = open_store(path, readonly=readonly)
    try:
        yield store
    finally:
        store.shutdown()


def progress_bar(items: Sequence[T], description: str) -> Iterable[T]:
    """Show how far a long step has gone, on standard error if it is a terminal."""
    return tqdm(
        items,
        desc=description,
        unit="job",
        file=sys.stderr,
        disable=not sys.stderr.isatty(),
        leave=False,
    )
