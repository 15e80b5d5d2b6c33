"""The quarantine: messages the center rejected, kept on disk with the reason until an
operator acts on them.

A "rejected" receipt means the stream dead-lettered the alert (a value it would not store,
a validator that was too strict, a batch that took good records with it). Deleting the
alert from the outbox would make that loss final, so the outbox moves it here instead, in
the same SQLite file and the same transaction: an alert is always in exactly one of the
two tables. An operator lists and reads it (``citywatch edge quarantine``), re-queues it
once the cause is fixed, or purges it explicitly; nothing leaves this table on its own.

The functions take a connection the caller owns and holds a transaction on:
:class:`citywatch.edge.outbox.Outbox` moves rejected messages in with them, under its lock;
:class:`QuarantineFile` is the operator's side, opened on the file beside a running agent
(SQLite's locks keep the two apart; the agent picks up re-queued messages on its next
round and recounts within seconds).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import cast

__all__ = [
    "SCHEMA",
    "QuarantineFile",
    "QuarantinedMessage",
    "count",
    "get",
    "insert",
    "latest",
    "list_messages",
    "move_from_outbox",
    "operator_changes",
    "purge",
    "requeue",
]

SCHEMA = """
CREATE TABLE IF NOT EXISTS quarantine (
    message_id     TEXT    PRIMARY KEY,
    topic          TEXT    NOT NULL,
    payload        BLOB    NOT NULL,
    qos            INTEGER NOT NULL,
    kind           TEXT    NOT NULL,
    device_id      TEXT    NOT NULL,
    enqueued_at    REAL    NOT NULL,
    attempts       INTEGER NOT NULL,
    reason         TEXT    NOT NULL,
    rejected_at    REAL,
    quarantined_at REAL    NOT NULL
);
CREATE INDEX IF NOT EXISTS quarantine_at ON quarantine (quarantined_at);
"""
_COLUMNS = (
    "message_id, topic, payload, qos, kind, device_id, enqueued_at, attempts,"
    " reason, rejected_at, quarantined_at"
)
NO_REASON = "rejected without a reason"
"""Stored when a receipt says "rejected" but gives no reason (an older stream)."""


@dataclass(frozen=True)
class QuarantinedMessage:
    """One rejected message as stored, with why and when."""

    message_id: str
    topic: str
    payload: bytes
    qos: int
    kind: str
    device_id: str
    enqueued_at: float
    attempts: int
    reason: str
    rejected_at: float | None
    """The center's time on the receipt (epoch seconds), when it gave one."""
    quarantined_at: float
    """The gateway's time of the move (the outbox caller's clock, epoch by default)."""


def move_from_outbox(
    db: sqlite3.Connection,
    message_id: str,
    reason: str | None,
    rejected_at: float | None,
    now: float,
) -> str | None:
    """Move a pending message into the quarantine; its kind, or None if it was not pending.

    A second rejection of an id already quarantined (an earlier copy re-queued and rejected
    again) replaces the old row: the newest reason is the one the operator needs.
    """
    moved = db.execute(
        f"INSERT OR REPLACE INTO quarantine ({_COLUMNS})"
        " SELECT message_id, topic, payload, qos, kind, device_id, enqueued_at, attempts,"
        " ?, ?, ? FROM outbox WHERE message_id = ?",
        (reason or NO_REASON, rejected_at, now, message_id),
    ).rowcount
    if not moved:
        return None
    rows = db.execute(
        "DELETE FROM outbox WHERE message_id = ? RETURNING kind", (message_id,)
    ).fetchall()
    return str(rows[0][0]) if rows else None


def insert(db: sqlite3.Connection, message: QuarantinedMessage) -> None:
    """Store a rejected message that never reached the outbox table (held in memory while
    the disk could not be written)."""
    db.execute(
        f"INSERT OR REPLACE INTO quarantine ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            message.message_id,
            message.topic,
            bytes(message.payload),
            message.qos,
            message.kind,
            message.device_id,
            message.enqueued_at,
            message.attempts,
            message.reason,
            message.rejected_at,
            message.quarantined_at,
        ),
    )


def requeue(db: sqlite3.Connection, message_ids: Sequence[str] | None, now: float) -> list[str]:
    """Put quarantined messages back into the outbox, to be sent again as new; the ids moved.

    ``None`` re-queues every one. An id that is pending in the outbox again (the device
    re-sent it) stays in the quarantine: sending two copies would gain nothing.
    """
    selected = _select_ids(db, message_ids)
    moved: list[str] = []
    for message_id in selected:
        inserted = db.execute(
            "INSERT OR IGNORE INTO outbox (message_id, topic, payload, qos, kind, device_id,"
            " enqueued_at, attempts, last_sent_at)"
            " SELECT message_id, topic, payload, qos, kind, device_id, ?, 0, NULL"
            " FROM quarantine WHERE message_id = ?",
            (now, message_id),
        ).rowcount
        if inserted:
            db.execute("DELETE FROM quarantine WHERE message_id = ?", (message_id,))
            moved.append(message_id)
    if moved:
        _changed(db)
    return moved


def purge(db: sqlite3.Connection, message_ids: Sequence[str] | None) -> list[str]:
    """Delete quarantined messages for good (``None``: all of them); the ids deleted."""
    selected = _select_ids(db, message_ids)
    for message_id in selected:
        db.execute("DELETE FROM quarantine WHERE message_id = ?", (message_id,))
    if selected:
        _changed(db)
    return selected


def operator_changes(db: sqlite3.Connection) -> int:
    """How many times an operator re-queued or purged: a running outbox recounts when this
    moves (a point lookup it can afford every round)."""
    row = db.execute("SELECT value FROM meta WHERE key = 'operator_changes'").fetchone()
    return 0 if row is None else int(row[0])


def _changed(db: sqlite3.Connection) -> None:
    db.execute(
        "INSERT INTO meta (key, value) VALUES ('operator_changes', 1)"
        " ON CONFLICT (key) DO UPDATE SET value = value + 1"
    )


def list_messages(db: sqlite3.Connection, limit: int | None = None) -> list[QuarantinedMessage]:
    """Quarantined messages, the most recently rejected first."""
    rows = db.execute(
        f"SELECT {_COLUMNS} FROM quarantine ORDER BY quarantined_at DESC, message_id LIMIT ?",
        (-1 if limit is None else max(limit, 0),),
    ).fetchall()
    return [_message(row) for row in rows]


def get(db: sqlite3.Connection, message_id: str) -> QuarantinedMessage | None:
    row = db.execute(
        f"SELECT {_COLUMNS} FROM quarantine WHERE message_id = ?", (message_id,)
    ).fetchone()
    return None if row is None else _message(row)


def count(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0])


def latest(db: sqlite3.Connection) -> QuarantinedMessage | None:
    """The most recently quarantined message (its reason goes into the gateway's status)."""
    found = list_messages(db, limit=1)
    return found[0] if found else None


class QuarantineFile:
    """The quarantine of one gateway's outbox file, for an operator's commands (use it
    with ``contextlib.closing``)."""

    def __init__(self, path: Path) -> None:
        if not Path(path).is_file():
            raise FileNotFoundError(
                f"no outbox at {path}: check --gateway and --data-dir (or the gateway's"
                " outbox_path); the file appears when the gateway first runs"
            )
        self.path = Path(path)
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout=5000")
        # A re-queued alert is accepted again: the same durability as the outbox's puts.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)  # an outbox from before the quarantine existed

    def entries(self, limit: int | None = None) -> list[QuarantinedMessage]:
        return list_messages(self._db, limit)

    def get(self, message_id: str) -> QuarantinedMessage | None:
        return get(self._db, message_id)

    def count(self) -> int:
        return count(self._db)

    def requeue(self, message_ids: Sequence[str] | None, now: float) -> list[str]:
        with self._transaction():
            return requeue(self._db, message_ids, now)

    def purge(self, message_ids: Sequence[str] | None) -> list[str]:
        with self._transaction():
            return purge(self._db, message_ids)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise


def _select_ids(db: sqlite3.Connection, message_ids: Sequence[str] | None) -> list[str]:
    """The given ids that are quarantined (all of them for ``None``), in a stable order."""
    if message_ids is None:
        rows = db.execute("SELECT message_id FROM quarantine ORDER BY quarantined_at, message_id")
        return [str(r[0]) for r in rows]
    return [
        m
        for m in dict.fromkeys(message_ids)
        if db.execute("SELECT 1 FROM quarantine WHERE message_id = ?", (m,)).fetchone()
    ]


def _message(row: tuple[object, ...]) -> QuarantinedMessage:
    (message_id, topic, payload, qos, kind, device_id, enqueued_at, attempts, reason,
     rejected_at, quarantined_at) = row  # fmt: skip
    return QuarantinedMessage(
        message_id=str(message_id),
        topic=str(topic),
        payload=bytes(cast(bytes, payload)),
        qos=int(cast(int, qos)),
        kind=str(kind),
        device_id=str(device_id),
        enqueued_at=float(cast(float, enqueued_at)),
        attempts=int(cast(int, attempts)),
        reason=str(reason),
        rejected_at=None if rejected_at is None else float(cast(float, rejected_at)),
        quarantined_at=float(cast(float, quarantined_at)),
    )
