"""The outbox file's connections, and whether its disk takes writes.

A full or read-only disk, or one returning I/O errors, is an episode: logged once when it
starts, counted, and retried (by reopening the file, at most every :data:`RETRY_WRITE_S`)
until a write goes through. Meanwhile the file is read through whatever view still works,
so what it holds keeps being published. Not thread-safe on its own: the outbox's lock
guards it.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from citywatch.edge import outbox_store as store
from citywatch.edge.outbox_store import is_disk_fault

__all__ = ["RETRY_WRITE_S", "OutboxDisk"]

log = logging.getLogger(__name__)

RETRY_WRITE_S = 1.0
"""While the disk cannot be written, it is tried again at most this often."""

_T = TypeVar("_T")


class OutboxDisk:
    """The ``FULL`` and ``NORMAL`` connections to one outbox file, and its fault state."""

    def __init__(self, path: Path, memory_items: int) -> None:
        self.path = path
        self.db: sqlite3.Connection | None = None
        """Writes that must survive power loss, and reads (a read-only view while faulty)."""
        self.lazy: sqlite3.Connection | None = None
        """Writes a power cut may lose harmlessly; None while the disk is faulty."""
        self.fault: str | None = None
        """Why the disk cannot be written now (the SQLite error), or None."""
        self.write_faults = 0
        """Episodes in which the disk could not be written, since the outbox opened."""
        self._memory_items = memory_items
        self._last_try: float | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db, self.lazy = store.connect(path)
        except (sqlite3.Error, OSError) as exc:
            if not is_disk_fault(exc) and not (isinstance(exc, OSError) and exc.filename):
                raise  # not the disk: "refused WAL", a bug, or a lock held elsewhere
            self.failed(exc, "opening it")
            self._read_only()

    def writers(self) -> tuple[sqlite3.Connection, sqlite3.Connection] | None:
        """The ``FULL`` and ``NORMAL`` connections while the disk takes writes, else None."""
        if self.fault is None and self.db is not None and self.lazy is not None:
            return self.db, self.lazy
        return None

    def failed(self, exc: BaseException, during: str) -> bool:
        """Record a failed write; re-raises anything that is not a disk fault. True when
        this starts an episode (logged once: the disk may stay broken for days)."""
        if not is_disk_fault(exc) and not isinstance(exc, OSError):
            raise exc
        starts = self.fault is None
        if starts:
            self.write_faults += 1
            log.error(
                "outbox %s cannot be written while %s (%s): holding up to %d new messages"
                " in memory and retrying every %gs; free disk space or make the file writable",
                self.path, during, exc, self._memory_items, RETRY_WRITE_S,
            )  # fmt: skip
        self.fault = f"{type(exc).__name__}: {exc}"
        return starts

    def read(self, read: Callable[[sqlite3.Connection], _T], otherwise: _T) -> _T:
        """``read(db)``, or ``otherwise`` when a faulty disk cannot be read either."""
        if self.db is None:
            return otherwise
        try:
            return read(self.db)
        except sqlite3.Error as exc:
            if self.fault is None or not is_disk_fault(exc):
                raise
            log.debug("outbox %s: cannot read while faulty: %s", self.path, exc)
            return otherwise

    def query(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        return self.read(lambda db: db.execute(sql, args).fetchall(), [])

    def retry(self, now: float, write: Callable[[sqlite3.Connection], _T], force: bool) -> _T:
        """Reopen the file and run ``write(db)``; raises ``sqlite3.Error``/``OSError`` while
        the disk still refuses (or :class:`TooSoon` within :data:`RETRY_WRITE_S`).

        Reopened, because a file opened read-only stays read-only for that connection even
        after the disk is remounted read-write or its mode fixed.
        """
        last = self._last_try
        if not force and last is not None and 0 <= now - last < RETRY_WRITE_S:
            raise TooSoon
        self._last_try = now
        try:
            self.close()
            self.db, self.lazy = store.connect(self.path)
            result = write(self.db)
        except (sqlite3.Error, OSError) as exc:
            log.debug("outbox %s still cannot be written: %s", self.path, exc)
            if self.lazy is None:
                self._read_only()
            raise
        self.fault = None
        return result

    def _read_only(self) -> None:
        self.db = store.connect_read_only(self.path)
        if self.db is None:
            log.error(
                "outbox %s cannot be read either: what it holds goes out once it can be",
                self.path,
            )

    def close(self) -> None:
        for connection in (self.lazy, self.db):
            if connection is not None:
                connection.close()
        self.db = self.lazy = None


class TooSoon(Exception):
    """:meth:`OutboxDisk.retry` was called again within :data:`RETRY_WRITE_S`."""
