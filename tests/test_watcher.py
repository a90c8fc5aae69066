"""The change watcher: it wakes the scheduler after each commit another process makes, and
only then, going by the commits that read transactions see."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from lmdbstore import LMDBJobStore, watcher
from lmdbstore.watcher import ChangeWatcher

WAIT = 5.0  # seconds to wait for a wakeup that must come
QUIET = 0.3  # seconds in which a wakeup that must not come would have come


class FakeStore:
    """Commit ids as a store would show them to the watcher, and the wakeups it gets."""

    def __init__(self, data_file: Path) -> None:
        self.data_file = data_file
        data_file.write_bytes(b"meta")
        self.visible = self.written = 1
        self.own: set[int] = set()
        self.woken = threading.Event()
        self.wakeups = 0

    def commits(self) -> tuple[int, int]:
        return self.visible, self.written

    def is_own(self, txn_id: int) -> bool:
        return txn_id in self.own

    def wakeup(self) -> None:
        self.wakeups += 1
        self.woken.set()

    def commit(self, *, own: bool = False, visible: bool = True) -> None:
        """Write a commit to the file: seen by readers at once, or only once ``finish()``."""
        self.written += 1
        if own:
            self.own.add(self.written)
        if visible:
            self.visible = self.written
        with self.data_file.open("ab") as file:
            file.write(b"page")

    def finish(self) -> None:
        self.visible = self.written


@pytest.fixture(params=["inotify", "polling"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "polling":
        monkeypatch.setattr(watcher, "_inotify_fd", lambda path: None)
    return str(request.param)


@contextmanager
def watching(store: FakeStore) -> Iterator[ChangeWatcher]:
    change_watcher = ChangeWatcher(str(store.data_file), store.commits, store.is_own, store.wakeup)
    try:
        yield change_watcher
    finally:
        change_watcher.stop()


def test_a_commit_by_another_process_wakes_the_scheduler(tmp_path: Path, mode: str) -> None:
    store = FakeStore(tmp_path / "data.mdb")
    with watching(store):
        store.commit()
        assert store.woken.wait(WAIT)


def test_the_stores_own_commits_do_not(tmp_path: Path, mode: str) -> None:
    store = FakeStore(tmp_path / "data.mdb")
    with watching(store):
        store.commit(own=True)
        assert not store.woken.wait(QUIET)
        store.commit()
        assert store.woken.wait(WAIT)
    assert store.wakeups == 1


def test_a_commit_readers_see_only_after_its_last_write_still_wakes_the_scheduler(
    tmp_path: Path, mode: str
) -> None:
    """LMDB writes a commit's meta page, the file's last write for it, a moment before new
    read transactions begin at that commit. A scheduler woken in between would read the
    store as it was, and sleep through the new jobs."""
    store = FakeStore(tmp_path / "data.mdb")
    with watching(store):
        store.commit(visible=False)
        assert not store.woken.wait(QUIET)
        store.finish()  # no write to the file: readers see the commit now
        assert store.woken.wait(WAIT)


def test_a_store_forgets_its_own_commits_once_the_watcher_is_past_them(
    tmp_path: Path,
) -> None:
    store = LMDBJobStore(tmp_path / "jobs.lmdb")
    store._own_commits.update({3, 5})  # 3: noted after the watcher had passed it
    assert store._is_own_commit(5)
    assert not store._is_own_commit(6)
    assert not store._own_commits
