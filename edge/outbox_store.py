"""The outbox's SQLite file: schema, connections, and the statements the outbox runs.

Plain functions over a connection the caller owns (and holds its lock for), so
:class:`citywatch.edge.outbox.Outbox` reads as the policy — disk or memory, counts, logs —
and this module as the storage.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import cast

from citywatch.edge import quarantine as qt
from citywatch.edge.outbox_memory import Held, MemoryQueue
from citywatch.edge.outbox_messages import (
    KINDS,
    Kind,
    NewMessage,
    OutboxFull,
    OutboxItem,
    PutResult,
)

__all__ = [
    "NOT_IN",
    "SCHEMA_VERSION",
    "alerts_per_device",
    "connect",
    "connect_read_only",
    "delete",
    "due_rows",
    "insert",
    "is_disk_fault",
    "item",
    "mark_sent",
    "put_batch",
    "record_published",
    "transaction",
    "write_memory",
]

log = logging.getLogger(__name__)

_SHED_ORDER: tuple[Kind, ...] = ("telemetry", "status", "evidence")
"""Kinds a full outbox may drop, least valuable first: telemetry is superseded by the next
sample, a status by the next status; evidence only illustrates an alert. Alerts are never
dropped."""

_DISK_FAULTS = {8: "SQLITE_READONLY", 10: "SQLITE_IOERR", 13: "SQLITE_FULL", 14: "SQLITE_CANTOPEN"}
"""SQLite's primary result codes for a disk that cannot be written (or opened)."""

SCHEMA_VERSION = 2
"""1: the outbox; 2: with the quarantine beside it."""
_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS outbox (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id   TEXT    NOT NULL UNIQUE,
    topic        TEXT    NOT NULL,
    payload      BLOB    NOT NULL,
    qos          INTEGER NOT NULL CHECK (qos IN (0, 1, 2)),
    kind         TEXT    NOT NULL CHECK (kind IN ('alert', 'telemetry', 'status', 'evidence')),
    device_id    TEXT    NOT NULL,
    enqueued_at  REAL    NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_sent_at REAL
);
CREATE INDEX IF NOT EXISTS outbox_kind_seq ON outbox (kind, seq);
CREATE INDEX IF NOT EXISTS outbox_kind_device_seq ON outbox (kind, device_id, seq);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta (key, value) VALUES ('shed_count', 0);
"""
    + qt.SCHEMA
)
_COLUMNS = "message_id, topic, payload, qos, kind, device_id, enqueued_at, attempts, last_sent_at"
_DUE = "last_sent_at IS NULL OR last_sent_at < ? OR last_sent_at > ?"
NOT_IN = "message_id NOT IN (SELECT value FROM json_each(?))"
"""Leaves out the ids in a JSON array parameter (those memory says are gone or waiting)."""


def is_disk_fault(exc: BaseException) -> bool:
    """Whether a SQLite error means the disk cannot be written: full, read-only, I/O error,
    or the file cannot be opened. Busy, locked or misuse errors are not (they are bugs or
    contention, and are raised)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.Error) and code is not None and (code & 0xFF) in _DISK_FAULTS


def connect(path: Path) -> tuple[sqlite3.Connection, sqlite3.Connection]:
    """The ``FULL`` connection (with the schema created) and the ``NORMAL`` one; raises if
    the disk refuses.

    Durability: WAL with ``synchronous=FULL``. A :meth:`Outbox.put` returns only after its
    commit frame is in the WAL and fsynced, so neither a kill -9 nor a power cut loses an
    accepted message. A process killed halfway through a commit leaves a WAL tail without a
    valid commit frame (frames are checksummed), which the next open ignores: the file is
    never corrupt, the half-written batch is simply absent (and its put never returned).
    ``NORMAL`` would survive a process crash too (the WAL sits in the page cache) but may
    lose the last commits on power loss, and an unattended pole-mounted gateway loses power
    more often than it crashes. The price is one fsync per write, negligible at sensor
    rates.

    Only what is *accepted* needs that fsync: a publish record or a receipt lost in a power
    cut makes the message due again, and a duplicate resend is harmless (every sink upserts
    by id). So :meth:`Outbox.put` and :meth:`Outbox.quarantine` commit on a ``FULL``
    connection while :meth:`Outbox.mark_sent`, :meth:`Outbox.acknowledge` and
    :meth:`Outbox.drop_unconfirmable` commit on a second, ``NORMAL`` one (their WAL frames
    reach the disk with the next ``FULL`` commit or checkpoint). That halves the fsyncs per
    alert.
    """
    # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE below), so a
    # read-then-write such as shedding cannot interleave with another writer.
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise OSError(
                f"outbox {path}: SQLite refused WAL mode (got {mode!r}); "
                "put the outbox on a local filesystem, not a network share"
            )
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA busy_timeout=5000")
        db.executescript(_SCHEMA)
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        lazy = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        lazy.execute("PRAGMA synchronous=NORMAL")
        lazy.execute("PRAGMA busy_timeout=5000")
    except BaseException:
        db.close()
        raise
    return db, lazy


def connect_read_only(path: Path) -> sqlite3.Connection | None:
    """A read-only view of the file while it cannot be written, or None if unreadable too."""
    uri = path.resolve().as_uri()
    # immutable=1: a cleanly closed WAL file on a read-only filesystem has no -shm file and
    # cannot create one; nothing else writes to it while it is read-only.
    for options in ("?mode=ro", "?mode=ro&immutable=1"):
        db = sqlite3.connect(uri + options, uri=True, check_same_thread=False)
        try:
            db.execute("SELECT COUNT(*) FROM outbox").fetchone()
        except sqlite3.Error as exc:
            log.debug("outbox %s: no read-only view with %s: %s", path, options, exc)
            db.close()
            continue
        return db
    return None


@contextmanager
def transaction(db: sqlite3.Connection, begin: str = "BEGIN IMMEDIATE") -> Iterator[None]:
    """One write transaction: committed on success, rolled back on any exception."""
    db.execute(begin)
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        # A full disk or an I/O error may already have rolled it back.
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def insert(
    db: sqlite3.Connection, pending: dict[str, int], m: NewMessage, now: float, max_items: int
) -> tuple[bool, int, dict[str, int]]:
    """One put's writes, inside the caller's transaction: (stored, how many shed, pending).

    Raises :class:`OutboxFull` (without a message: the caller knows why) for an alert that
    finds nothing but alerts.
    """
    pending = dict(pending)
    if db.execute("SELECT 1 FROM outbox WHERE message_id = ?", (m.message_id,)).fetchone():
        return False, 0, pending
    shed = 0
    stored = True
    while sum(pending.values()) >= max_items:
        victim = next((k for k in _SHED_ORDER if pending[k] > 0), None)
        if victim is not None and _more_valuable(m.kind, victim):
            db.execute(
                "DELETE FROM outbox WHERE seq = (SELECT MIN(seq) FROM outbox WHERE kind = ?)",
                (victim,),
            )
            pending[victim] -= 1
            shed += 1
        elif m.kind == "alert":
            raise OutboxFull
        else:
            shed += 1
            stored = False
            break
    if stored:
        db.execute(
            f"INSERT INTO outbox ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, 0, NULL)",
            (m.message_id, m.topic, bytes(m.payload), m.qos, m.kind, m.device_id, now),
        )
        pending[m.kind] += 1
    if shed:
        db.execute("UPDATE meta SET value = value + ? WHERE key = 'shed_count'", (shed,))
    return stored, shed, pending


def put_batch(
    db: sqlite3.Connection,
    pending: dict[str, int],
    messages: Sequence[NewMessage],
    now: float,
    max_items: int,
) -> tuple[PutResult, dict[str, int]]:
    """Insert a batch in one transaction; what happened, and the pending counts after it."""
    stored = duplicates = shed_total = 0
    refused: list[str] = []
    with transaction(db):
        for m in messages:
            try:
                ok, shed, pending = insert(db, pending, m, now, max_items)
            except OutboxFull:
                refused.append(m.message_id)
                continue
            shed_total += shed
            if ok:
                stored += 1
            elif not shed:
                duplicates += 1
    return PutResult(stored, duplicates, shed_total, tuple(refused)), pending


def delete(lazy: sqlite3.Connection, message_id: str) -> str | None:
    """Forget a message (its receipt came); its kind, or None if it was not pending."""
    # fetchall(): a RETURNING statement is only finished once its rows are read.
    rows = lazy.execute(
        "DELETE FROM outbox WHERE message_id = ? RETURNING kind", (message_id,)
    ).fetchall()
    return str(rows[0][0]) if rows else None


def make_sent_due(lazy: sqlite3.Connection) -> None:
    """Every message published and still here (no receipt yet) becomes due at once."""
    lazy.execute("UPDATE outbox SET last_sent_at = NULL WHERE last_sent_at IS NOT NULL")


def mark_sent(lazy: sqlite3.Connection, message_id: str, now: float) -> None:
    lazy.execute(
        "UPDATE outbox SET attempts = attempts + 1, last_sent_at = ? WHERE message_id = ?",
        (now, message_id),
    )


def record_published(
    lazy: sqlite3.Connection, items: Sequence[OutboxItem], now: float
) -> list[str]:
    """QoS-0 messages leave, the others are marked sent (one commit); the kinds that left."""
    left: list[str] = []
    with transaction(lazy, "BEGIN"):
        for it in items:
            if it.qos == 0:
                rows = lazy.execute(
                    "DELETE FROM outbox WHERE message_id = ? RETURNING kind", (it.message_id,)
                ).fetchall()
                left += [str(r[0]) for r in rows]
            else:
                lazy.execute(
                    "UPDATE outbox SET attempts = attempts + 1, last_sent_at = ?"
                    " WHERE message_id = ?",
                    (now, it.message_id),
                )
    return left


def due_rows(
    db: sqlite3.Connection,
    now: float,
    resend_after_s: float,
    limit: int,
    window: int | None,
    gone: str,
    waiting: str,
) -> list[OutboxItem]:
    """Due messages on disk (see ``Outbox.due``), less ``gone`` and ``waiting`` (JSON
    arrays of ids); ``gone`` ones also free their place in a device's alert window."""
    args = (now - resend_after_s, now)
    if not window:
        rows = db.execute(
            f"SELECT {_COLUMNS} FROM outbox WHERE {NOT_IN} AND {NOT_IN} AND ({_DUE})"
            " ORDER BY seq LIMIT ?",
            (gone, waiting, *args, limit),
        ).fetchall()
    else:
        rows = db.execute(
            f"SELECT {_COLUMNS} FROM outbox WHERE (kind != 'alert' OR seq IN ("
            "  SELECT seq FROM (SELECT seq, ROW_NUMBER() OVER ("
            "    PARTITION BY device_id ORDER BY seq) AS position"
            f"    FROM outbox WHERE kind = 'alert' AND {NOT_IN}) WHERE position <= ?"
            f")) AND {NOT_IN} AND ({_DUE}) ORDER BY seq LIMIT ?",
            (gone, window, waiting, *args, limit),
        ).fetchall()
    return [item(row) for row in rows]


def alerts_per_device(db: sqlite3.Connection, gone: str) -> dict[str, int]:
    """Pending alerts on disk per device (less ``gone``): where held alerts join the window."""
    rows = db.execute(
        f"SELECT device_id, COUNT(*) FROM outbox WHERE kind = 'alert' AND {NOT_IN}"
        " GROUP BY device_id",
        (gone,),
    )
    return {str(device): int(count) for device, count in rows}


def find(db: sqlite3.Connection, message_id: str) -> OutboxItem | None:
    row = db.execute(
        f"SELECT {_COLUMNS} FROM outbox WHERE message_id = ?", (message_id,)
    ).fetchone()
    return None if row is None else item(row)


def write_memory(db: sqlite3.Connection, memory: MemoryQueue, max_items: int) -> list[Held]:
    """Write everything memory holds in one transaction; the held alerts a full outbox (of
    alerts) refused, which stay in memory."""
    kept: list[Held] = []
    with transaction(db):
        for message_id in memory.acked:
            db.execute("DELETE FROM outbox WHERE message_id = ?", (message_id,))
        for message_id, r in memory.rejected.items():
            qt.move_from_outbox(db, message_id, r.reason, r.rejected_at, r.quarantined_at)
        for message_id, (attempts, sent_at) in memory.sent.items():
            db.execute(
                "UPDATE outbox SET attempts = ?, last_sent_at = ? WHERE message_id = ?",
                (attempts, sent_at, message_id),
            )
        pending: dict[str, int] = dict.fromkeys(KINDS, 0)
        for kind, count in db.execute("SELECT kind, COUNT(*) FROM outbox GROUP BY kind"):
            pending[kind] = count
        for held in memory.held.values():
            try:
                stored, _, pending = insert(db, pending, held.message, held.enqueued_at, max_items)
            except OutboxFull:
                kept.append(held)
                continue
            if stored and held.attempts:
                db.execute(
                    "UPDATE outbox SET attempts = ?, last_sent_at = ? WHERE message_id = ?",
                    (held.attempts, held.last_sent_at, held.message.message_id),
                )
        for message in memory.quarantined():
            qt.insert(db, message)
    return kept


def _more_valuable(kind: str, victim: Kind) -> bool:
    """Whether a new message of ``kind`` may displace a pending ``victim``."""
    if kind == "alert":
        return True
    return _SHED_ORDER.index(cast(Kind, kind)) >= _SHED_ORDER.index(victim)


def item(row: tuple[object, ...]) -> OutboxItem:
    message_id, topic, payload, qos, kind, device_id, enqueued_at, attempts, last_sent_at = row
    return OutboxItem(
        message_id=str(message_id),
        topic=str(topic),
        payload=bytes(cast(bytes, payload)),
        qos=int(cast(int, qos)),
        kind=cast(Kind, kind),
        device_id=str(device_id),
        enqueued_at=float(cast(float, enqueued_at)),
        attempts=int(cast(int, attempts)),
        last_sent_at=None if last_sent_at is None else float(cast(float, last_sent_at)),
    )
