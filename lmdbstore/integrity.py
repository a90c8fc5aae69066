"""The integrity check: do the job records and the run time index agree, and does every
record decode?"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone

from . import table
from .environment import StoreEnvironment, Transaction
from .keys import (
    PAUSED,
    RUN_TIME_SIZE,
    encode_run_time,
    id_key_of_job_key,
    index_key,
    job_key,
)
from .records import (
    CorruptRecordError,
    JobRecord,
    QuarantineEntry,
    decode_next_run_time,
    moved_record,
    new_stamp,
    record_job_id,
    record_run_key,
    record_stamp,
)
from .serializers import Serializer


@dataclass
class IntegrityReport:
    """What :func:`check_store` found."""

    path: str
    jobs: int = 0
    paused: int = 0
    index_entries: int = 0
    quarantined: int = 0
    problems: list[str] = field(default_factory=list)
    repaired: bool = False

    @property
    def ok(self) -> bool:
        """Whether no problem was found."""
        return not self.problems

    def __str__(self) -> str:
        lines = [
            f"store {self.path}: {self.jobs} jobs ({self.paused} paused), "
            f"{self.index_entries} index entries, {self.quarantined} quarantined",
            *(f"problem: {problem}" for problem in self.problems),
        ]
        if self.repaired:
            lines.append("repaired: the index was rebuilt from the job records")
        elif self.ok:
            lines.append("ok")
        return "\n".join(lines)


def check_store(
    env: StoreEnvironment, serializer: Serializer, repair: bool = False
) -> IntegrityReport:
    """Check that every index entry names a job whose run time it carries (its move's, if
    it was moved), that every job has exactly one index entry, that every move entry
    moves a job's record, and that every record decodes (its callable is not imported).

    With ``repair``, records whose bytes are damaged move to the quarantine, the whole
    moves are written into the records they moved, and the index is rebuilt from the
    records, in one transaction. A record that is whole but
    does not unpickle here (its classes live in modules this process cannot import) is
    reported and left in place: a scheduler that cannot restore it quarantines it itself.
    """
    report = IntegrityReport(env.path)
    broken, repairable = env.read(lambda txn: _inspect(txn, env, serializer, report))
    if repair and repairable:
        env.write(lambda txn: _rebuild(txn, env, broken))
        report.repaired = True
    return report


def _inspect(
    txn: Transaction,
    env: StoreEnvironment,
    serializer: Serializer,
    report: IntegrityReport,
) -> tuple[dict[bytes, str], bool]:
    """Fill ``report``; return the damaged records, with why, by job key, and whether
    anything :func:`_rebuild` mends was found."""
    problems = report.problems
    index_wrong = False
    indexed: Counter[bytes] = Counter()
    with txn.cursor(db=env.index) as cursor:
        for key, value in cursor:
            report.index_entries += 1
            id_key = key[RUN_TIME_SIZE:]
            indexed[id_key] += 1
            found = table.current(txn, env, id_key)
            if found is None:
                problems.append(f"index entry {key!r} names no job")
            elif table.run_key_of(*found) != key[:RUN_TIME_SIZE]:
                problems.append(f"index entry {key!r} disagrees with its job's run time")
            elif value and value != _index_value(*found):
                problems.append(f"index entry {key!r} disagrees with its job's record")
            else:
                continue
            index_wrong = True
    if env.moves is not None:
        with txn.cursor(db=env.moves) as cursor:
            for key, move in cursor:
                problem = _move_problem(txn, env, key, move)
                if problem:
                    problems.append(f"move entry {key!r} {problem}")
                    index_wrong = True
    broken = {}
    with txn.cursor(db=env.jobs) as cursor:
        for key, data in cursor:
            report.jobs += 1
            id_key = id_key_of_job_key(key)
            damage = _damage(data)
            if damage:
                broken[key] = damage
                problems.append(f"job {key!r} is damaged: {damage}")
                continue
            error = _decode_error(data, serializer)
            if error:
                problems.append(f"job {key!r} does not decode here: {error}")
            found = table.current(txn, env, id_key)
            assert found is not None
            run_key = table.run_key_of(*found)
            report.paused += run_key == PAUSED
            if indexed[id_key] != 1 or txn.get(index_key(run_key, id_key), db=env.index) is None:
                problems.append(f"job {key!r} has {indexed[id_key]} index entries, not one")
                index_wrong = True
    report.quarantined = txn.stat(env.quarantine)["entries"]
    return broken, index_wrong or bool(broken)


def _index_value(record: bytes, move: bytes) -> bytes:
    """The value the index entry of the job of ``record`` and ``move`` should have."""
    return table.index_value(record_stamp(record), record_run_key(record), move)


def _move_problem(txn: Transaction, env: StoreEnvironment, key: bytes, move: bytes) -> str:
    """What is wrong with the move entry ``key``, if anything."""
    data = txn.get(job_key(key[RUN_TIME_SIZE:]), db=env.jobs)
    if data is None or record_run_key(data) != key[:RUN_TIME_SIZE]:
        return "names no job's record"
    if not _move_is_whole(move):
        return f"is damaged: {move!r}"
    if move[:RUN_TIME_SIZE] == key[:RUN_TIME_SIZE]:
        return "moves its job nowhere"
    return ""


def _move_is_whole(move: bytes) -> bool:
    """Whether a move's exact run time decodes, and its run time key is that run time's."""
    try:
        return encode_run_time(decode_next_run_time(move[RUN_TIME_SIZE:])) == move[:RUN_TIME_SIZE]
    except Exception:
        return False


def _damage(data: bytes) -> str:
    """What is wrong with the bytes of a record, if anything."""
    try:
        JobRecord.decode(data)
    except CorruptRecordError as exc:
        return str(exc)
    return ""


def _decode_error(data: bytes, serializer: Serializer) -> str:
    """Why a whole record does not decode in this process, if it does not."""
    record = JobRecord.decode(data)
    try:
        if record.serializer_tag != serializer.tag:
            return f"written by serializer #{record.serializer_tag}, not {serializer.name}"
        state = serializer.loads(record.body)
        next_run_time = decode_next_run_time(record.next_run_time)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    if not isinstance(state, dict) or "id" not in state:
        return "its body is not a job's state"
    if encode_run_time(next_run_time) != record.run_key:
        return "its next run time disagrees with its run time key"
    return ""


def _rebuild(txn: Transaction, env: StoreEnvironment, broken: dict[bytes, str]) -> None:
    now = datetime.now(timezone.utc)
    for key, error in broken.items():
        data = txn.pop(key, db=env.jobs)
        if data is not None:
            id_key = id_key_of_job_key(key)
            entry = QuarantineEntry(record_job_id(id_key, data), error, now, data)
            txn.put(key, entry.encode(), db=env.quarantine)
    _fold_moves(txn, env)
    txn.drop(env.index, delete=False)
    with txn.cursor(db=env.jobs) as cursor:
        for key, data in cursor:
            id_key = id_key_of_job_key(key)
            txn.put(index_key(record_run_key(data), id_key), record_stamp(data), db=env.index)


def _fold_moves(txn: Transaction, env: StoreEnvironment) -> None:
    """Write each whole move into the record it moved, then delete every move entry."""
    if env.moves is None:
        return
    with txn.cursor(db=env.moves) as cursor:
        moves = list(cursor)
    for key, move in moves:
        job = job_key(key[RUN_TIME_SIZE:])
        data = txn.get(job, db=env.jobs)
        if (
            data is not None
            and record_run_key(data) == key[:RUN_TIME_SIZE]
            and _move_is_whole(move)
        ):
            record = JobRecord.decode(moved_record(data, move))._replace(stamp=new_stamp())
            txn.put(job, record.encode(), db=env.jobs)
    txn.drop(env.moves, delete=False)
