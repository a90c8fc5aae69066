"""Noticing changes that other processes make to a store, to wake the local scheduler.

APScheduler only looks at its stores when it wakes up: at the time it computed, or when
a change goes through the scheduler itself. A job added by another process would wait
for that. :class:`ChangeWatcher` watches the store's data file with Linux inotify (no
CPU at all while nothing changes; elsewhere it polls 10 times a second) and calls
``wakeup`` when a transaction it did not make itself was committed.

A commit writes the file before readers see it: its new meta page is in the file (and its
write event sent) a moment before LMDB lets new read transactions begin at it. The watcher
goes by what readers see, and waits out a commit it finds in the file but not yet there.
"""

from __future__ import annotations

import ctypes
import logging
import os
import select
import threading
import time
from collections.abc import Callable

_IN_MODIFY = 0x00000002
_POLL_SECONDS = 0.1
_SETTLE_SECONDS = 0.005
_FINISH_SECONDS = 1.0  # at most this long for a commit in the file to reach readers
_logger = logging.getLogger(__name__)


def _inotify_fd(path: str) -> int | None:
    """An inotify descriptor watching ``path`` for writes, or ``None`` where there is none."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)  # the C library this process runs on
        fd = libc.inotify_init1(os.O_CLOEXEC | os.O_NONBLOCK)
    except (OSError, AttributeError):
        return None
    if fd < 0:
        return None
    if libc.inotify_add_watch(fd, os.fsencode(path), _IN_MODIFY) < 0:
        os.close(fd)
        return None
    return int(fd)


class ChangeWatcher:
    """A daemon thread calling ``wakeup`` after each commit by someone else.

    :param data_file: the file every commit writes (LMDB's ``data.mdb``)
    :param commits: returns the id of the last commit that read transactions see, and of
        the last one in the file (ahead of the first while a commit is finishing)
    :param is_own: whether the transaction with this id was committed by the watcher's
        own store (the scheduler knows of those already)
    """

    def __init__(
        self,
        data_file: str,
        commits: Callable[[], tuple[int, int]],
        is_own: Callable[[int], bool],
        wakeup: Callable[[], None],
    ) -> None:
        self._commits = commits
        self._is_own = is_own
        self._wakeup = wakeup
        self._seen = commits()[0]
        self._inotify = _inotify_fd(data_file)
        self._stop_read, self._stop_write = os.pipe()
        self._thread = threading.Thread(target=self._run, name="lmdbstore-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and free its descriptors."""
        os.write(self._stop_write, b"x")
        self._thread.join()
        self.close_inherited()

    def close_inherited(self) -> None:
        """Free the descriptors (all a forked child inherits: the thread stays behind)."""
        for fd in (self._inotify, self._stop_read, self._stop_write):
            if fd is not None:
                os.close(fd)

    def _run(self) -> None:
        watched = [self._stop_read] if self._inotify is None else [self._stop_read, self._inotify]
        timeout = _POLL_SECONDS if self._inotify is None else None
        while True:
            ready, _, _ = select.select(watched, [], [], timeout)
            if self._stop_read in ready:
                return
            if self._inotify is not None:
                threading.Event().wait(_SETTLE_SECONDS)  # let a burst of writes end
                self._drain()
            try:
                self._check()
            except Exception:
                _logger.exception("Could not check the store for changes")

    def _drain(self) -> None:
        assert self._inotify is not None
        try:
            while os.read(self._inotify, 65536):
                pass
        except BlockingIOError:
            pass

    def _check(self) -> None:
        visible, written = self._commits()
        deadline = time.monotonic() + _FINISH_SECONDS
        while visible < written and time.monotonic() < deadline:
            threading.Event().wait(_SETTLE_SECONDS)  # a commit is finishing
            visible, written = self._commits()
        foreign = [txn for txn in range(self._seen + 1, visible + 1) if not self._is_own(txn)]
        self._seen = visible
        if foreign:
            self._wakeup()
