"""The writer of the crash trials: random writes to one store until it is killed.

It reports on standard output, one line at a time, each line written whole (a pipe keeps
writes of less than ``PIPE_BUF`` bytes whole, even when the writer dies):

- ``open <map size>`` once the store is open;
- ``op <json>`` just before the write starts (see :func:`workload.apply_to_store`);
- ``ack <map size>`` after the call returned: the write is acknowledged.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys

from lmdbstore import LMDBJobStore

from .workload import (
    Operation,
    apply_to_model,
    apply_to_store,
    contents,
    make_scheduler,
    random_operation,
)


def _say(*words: object) -> None:
    sys.stdout.write(" ".join(map(str, words)) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--path", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--prefix", required=True, help="of new job ids and of tokens")
    parser.add_argument("--map-size", type=int, required=True)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    scheduler = make_scheduler()
    store = LMDBJobStore(args.path, map_size=args.map_size)
    store.start(scheduler, "default")
    env = store.environment.env
    model = contents(store)
    _say("open", env.info()["map_size"])
    announced: list[Operation] = []

    def announce(op: Operation) -> None:
        _say("op", json.dumps(op))
        announced.append(op)

    for number in itertools.count():
        op = random_operation(rng, model, args.prefix, number)
        apply_to_store(store, scheduler, op, announce)
        apply_to_model(model, announced.pop())
        _say("ack", env.info()["map_size"])


if __name__ == "__main__":
    main()
