"""``python -m lmdbstore``: the ``lmdbstore`` command."""

from .cli import main

main(prog_name="lmdbstore")
