"""The gateway's queue of evidence files waiting to be uploaded to the center, on disk.

Alerts and evidence notices name their files by ``file://`` reference and SHA-256; each
such file is queued here (one row per SHA-256, so a file named twice is sent once) and
sent by :class:`~citywatch.edge.evidence_upload_worker.EvidenceUploader`. The queue
survives restarts (SQLite) and holds references, not copies: the evidence store keeps the
bytes. Its disk budget counts the bytes of the files waiting: past it, the oldest clips
leave the queue first, then the oldest images, each logged as a warning (the file stays
in the evidence store; only its upload is given up). Nothing here is ever an alert.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from citywatch.contracts.messages import EvidenceKind, EvidenceRef

__all__ = ["Dropped", "Pending", "UploadQueue", "local_path"]

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS uploads (
    sha256      TEXT PRIMARY KEY,
    path        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    size        INTEGER NOT NULL,
    enqueued_at REAL NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_try_at REAL NOT NULL,
    last_error  TEXT
);
CREATE INDEX IF NOT EXISTS uploads_due ON uploads (next_try_at);
"""


@dataclass(frozen=True)
class Pending:
    """One file waiting for upload."""

    sha256: str
    path: Path
    kind: str
    size: int
    attempts: int


@dataclass(frozen=True)
class Dropped:
    """A file given up, and why (for logs and tests)."""

    sha256: str
    path: Path
    kind: str
    size: int
    reason: str


def local_path(uri: str) -> Path | None:
    """The gateway-local path of a ``file://`` reference; None for any other."""
    parts = urlsplit(uri)
    if parts.scheme.lower() != "file" or parts.netloc not in ("", "localhost"):
        return None
    return Path(unquote(parts.path))


class UploadQueue:
    """Evidence files to upload, oldest first, within ``budget_bytes``. Thread-safe."""

    def __init__(self, path: Path, budget_bytes: int) -> None:
        self.path = path
        self.budget_bytes = budget_bytes
        self.dropped: list[Dropped] = []
        """Files dropped since the queue opened (newest last; for tests and status)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add(self, refs: Iterable[EvidenceRef], now: float) -> int:
        """Queue the local files of ``refs`` that carry a SHA-256 (others cannot be found
        by the center and are skipped); how many were new. Enforces the budget."""
        rows = []
        for ref in refs:
            path = local_path(ref.uri)
            if path is None or not ref.sha256:
                log.debug("evidence %s has no local file or no SHA-256; not uploaded", ref.uri)
                continue
            try:
                size = path.stat().st_size
            except OSError as exc:
                log.warning("evidence file %s cannot be queued for upload: %s", path, exc)
                continue
            rows.append((ref.sha256, str(path), ref.kind.value, size, now, now))
        if not rows:
            return 0
        with self._lock:
            before = self._count()
            self._db.executemany(
                "INSERT OR IGNORE INTO uploads (sha256, path, kind, size, enqueued_at,"
                " next_try_at) VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            added = self._count() - before
            self._enforce_budget()
        return added

    def _count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM uploads").fetchone()[0])

    def pending_bytes(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(SUM(size), 0) FROM uploads").fetchone()[0])

    def __len__(self) -> int:
        with self._lock:
            return self._count()

    def _enforce_budget(self) -> None:
        """Drop the oldest clips, then the oldest others, until the queue fits its budget."""
        total = int(self._db.execute("SELECT COALESCE(SUM(size), 0) FROM uploads").fetchone()[0])
        while total > self.budget_bytes:
            row = self._db.execute(
                "SELECT sha256, path, kind, size FROM uploads"
                " ORDER BY kind <> ?, enqueued_at, sha256 LIMIT 1",
                (EvidenceKind.CLIP.value,),
            ).fetchone()
            if row is None:
                return
            reason = (
                f"upload queue over its budget ({total} of {self.budget_bytes} bytes):"
                f" oldest {row[2]} dropped"
            )
            self._drop(Dropped(row[0], Path(row[1]), row[2], row[3], reason))
            total -= row[3]

    def _drop(self, dropped: Dropped) -> None:
        self._db.execute("DELETE FROM uploads WHERE sha256 = ?", (dropped.sha256,))
        self.dropped.append(dropped)
        del self.dropped[:-1000]
        log.warning(
            "evidence %s (%s, %d bytes) will not be uploaded: %s; it stays on this gateway",
            dropped.path, dropped.kind, dropped.size, dropped.reason,
            extra={"sha256": dropped.sha256},
        )  # fmt: skip

    def due(self, now: float, limit: int = 10) -> list[Pending]:
        """Files whose next try is due, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT sha256, path, kind, size, attempts FROM uploads WHERE next_try_at <= ?"
                " ORDER BY enqueued_at, sha256 LIMIT ?",
                (now, limit),
            ).fetchall()
        return [Pending(r[0], Path(r[1]), r[2], r[3], r[4]) for r in rows]

    def next_due_at(self) -> float | None:
        with self._lock:
            row = self._db.execute("SELECT MIN(next_try_at) FROM uploads").fetchone()
        return float(row[0]) if row and row[0] is not None else None

    def done(self, sha256: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM uploads WHERE sha256 = ?", (sha256,))

    def retry_later(self, sha256: str, at: float, error: str) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE uploads SET attempts = attempts + 1, next_try_at = ?, last_error = ?"
                " WHERE sha256 = ?",
                (at, error, sha256),
            )

    def give_up(self, item: Pending, reason: str) -> None:
        """Drop a file the center refuses for good, or that is gone (logged)."""
        with self._lock:
            self._drop(Dropped(item.sha256, item.path, item.kind, item.size, reason))
