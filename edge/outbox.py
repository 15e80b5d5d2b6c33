"""The durable on-disk outbox every edge agent publishes through.

paho keeps its MQTT session in memory and a broker queues for offline subscribers, not
offline publishers (DOMAIN.md, MQTT practice). So a gateway writes each message here first
and deletes it only when the stream's receipt comes back; a power cut or a week without
uplink loses nothing but the oldest telemetry, and never an alert.

One process owns an outbox file. The outbox never reads the clock: every time is a float
the caller passes (monotonic or epoch), so tests and replays drive it exactly.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal, cast

__all__ = ["KINDS", "NewMessage", "Outbox", "OutboxFull", "OutboxItem", "PutResult"]

log = logging.getLogger(__name__)

Kind = Literal["alert", "telemetry", "status", "evidence"]
KINDS: tuple[Kind, ...] = ("alert", "telemetry", "status", "evidence")

_SHED_ORDER: tuple[Kind, ...] = ("telemetry", "status", "evidence")
"""Kinds a full outbox may drop, least valuable first: telemetry is superseded by the next
sample, a status by the next status; evidence only illustrates an alert. Alerts are never
dropped."""

_SCHEMA_VERSION = 1
_SCHEMA = """
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
_COLUMNS = "message_id, topic, payload, qos, kind, device_id, enqueued_at, attempts, last_sent_at"
_DUE = "last_sent_at IS NULL OR last_sent_at < ? OR last_sent_at > ?"


@dataclass(frozen=True)
class OutboxItem:
    """One pending message, as stored."""

    message_id: str
    topic: str
    payload: bytes
    qos: int
    kind: Kind
    device_id: str
    enqueued_at: float
    attempts: int
    """How many times it has been published (kept across restarts)."""
    last_sent_at: float | None
    """Caller's time of the last publish; ``None`` if never sent."""


@dataclass(frozen=True)
class NewMessage:
    """One message to enqueue with :meth:`Outbox.put_many`."""

    message_id: str
    topic: str
    payload: bytes
    qos: int
    kind: str
    device_id: str


@dataclass(frozen=True)
class PutResult:
    """What :meth:`Outbox.put_many` did with a batch."""

    stored: int
    duplicates: int
    """Already pending (a retry re-enqueued the same id): nothing stored."""
    shed: int
    """Messages dropped to make room (older telemetry first) or not stored for lack of it."""
    refused: tuple[str, ...]
    """Alerts that could not be stored: the outbox holds nothing but alerts. Never silent:
    the caller must log and count each one."""


class OutboxFull(Exception):
    """An alert could not be stored: the outbox holds nothing but alerts.

    The gateway has been cut off long enough to fill ``max_items`` with alerts; raise
    ``max_items`` (disk permitting) or restore the uplink.
    """


class Outbox:
    """A SQLite (WAL) queue of messages awaiting their receipt, safe to share across threads.

    Durability: ``synchronous=FULL``. With WAL, ``NORMAL`` survives a process crash but may
    lose the last commits on power loss, and an unattended pole-mounted gateway loses power
    more often than it crashes; an alert accepted here must survive that. The price is one
    fsync per write, negligible at sensor message rates.

    Only what is *accepted* needs that fsync: a publish record or a receipt lost in a power
    cut makes the message due again, and a duplicate resend is harmless (every sink upserts
    by id). So :meth:`put` commits on a ``FULL`` connection while :meth:`mark_sent`,
    :meth:`acknowledge` and :meth:`drop_unconfirmable` commit on a second, ``NORMAL`` one
    (their WAL frames reach the disk with the next ``FULL`` commit or checkpoint). That
    halves the fsyncs per alert.

    Thread safety: two connections (``check_same_thread=False``) guarded by one lock, because
    paho delivers receipts on its network thread while the agent enqueues on its own.
    """

    def __init__(self, path: Path, max_items: int = 100_000, resend_after_s: float = 30.0) -> None:
        if max_items < 1:
            raise ValueError(f"max_items must be at least 1, got {max_items}")
        if not math.isfinite(resend_after_s) or resend_after_s < 0:
            raise ValueError(f"resend_after_s must be a non-negative number, got {resend_after_s}")
        self.path = Path(path)
        self.max_items = max_items
        self.resend_after_s = resend_after_s
        self._lock = threading.RLock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE below), so a
        # read-then-write such as shedding cannot interleave with another writer.
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise OSError(
                    f"outbox {self.path}: SQLite refused WAL mode (got {mode!r}); "
                    "put the outbox on a local filesystem, not a network share"
                )
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
            self._pending: dict[str, int] = dict.fromkeys(KINDS, 0)
            for kind, count in self._db.execute("SELECT kind, COUNT(*) FROM outbox GROUP BY kind"):
                self._pending[kind] = count
            row = self._db.execute("SELECT value FROM meta WHERE key = 'shed_count'").fetchone()
            self._shed_count = int(row[0])
            self._lazy = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._lazy.execute("PRAGMA synchronous=NORMAL")
            self._lazy.execute("PRAGMA busy_timeout=5000")
        except BaseException:
            self._db.close()
            raise
        self._closed = False

    # -- writing -----------------------------------------------------------------------------
    def put(
        self,
        item_message_id: str,
        topic: str,
        payload: bytes,
        qos: int,
        kind: str,
        device_id: str,
        now: float,
    ) -> bool:
        """Store a message to publish; True if stored.

        False when it is already pending (a retry after a crash re-enqueues the same id),
        or when the outbox is full and this message is the least valuable one (it is then
        counted in :attr:`shed_count`). When full, the oldest telemetry goes first, then
        status, then evidence; an alert is never shed, and an alert that finds only alerts
        raises :class:`OutboxFull`.

        Idempotency covers pending messages only: an id already acknowledged is forgotten
        and would be stored again (the stream deduplicates by message id).
        """
        if kind not in KINDS:
            raise ValueError(f"unknown outbox kind {kind!r}; use one of {', '.join(KINDS)}")
        if qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, got {qos}")
        with self._lock:
            with self._transaction():
                stored, shed, pending = self._insert(
                    item_message_id, topic, payload, qos, kind, device_id, now
                )
            # Committed: only now does the in-memory view follow the database.
            self._pending = pending
            self._shed_count += shed
        if shed:
            log.warning(
                "outbox full (%d items): shed %d message(s)",
                self.max_items,
                shed,
                extra={"device": device_id, "message_id": item_message_id, "kind": kind},
            )
        return stored

    def put_many(self, messages: list[NewMessage], now: float) -> PutResult:
        """Store a batch in one transaction (one fsync), each message as :meth:`put` would.

        An alert that finds the outbox full of alerts is not stored and is returned in
        :attr:`PutResult.refused` instead of raising, so the rest of the batch still lands.
        """
        for message in messages:
            if message.kind not in KINDS:
                raise ValueError(
                    f"unknown outbox kind {message.kind!r}; use one of {', '.join(KINDS)}"
                )
            if message.qos not in (0, 1, 2):
                raise ValueError(f"qos must be 0, 1 or 2, got {message.qos}")
        stored = duplicates = shed_total = 0
        refused: list[str] = []
        with self._lock:
            saved_pending = self._pending
            try:
                with self._transaction():
                    for m in messages:
                        try:
                            ok, shed, self._pending = self._insert(
                                m.message_id, m.topic, m.payload, m.qos, m.kind, m.device_id, now
                            )
                        except OutboxFull:
                            refused.append(m.message_id)
                            continue
                        shed_total += shed
                        if ok:
                            stored += 1
                        elif not shed:
                            duplicates += 1
            except BaseException:
                self._pending = saved_pending
                raise
            self._shed_count += shed_total
        if shed_total:
            log.warning("outbox full (%d items): shed %d message(s)", self.max_items, shed_total)
        return PutResult(stored, duplicates, shed_total, tuple(refused))

    def _insert(
        self,
        message_id: str,
        topic: str,
        payload: bytes,
        qos: int,
        kind: str,
        device_id: str,
        now: float,
    ) -> tuple[bool, int, dict[str, int]]:
        """put()'s writes, inside its transaction: (stored, how many shed, pending counts)."""
        pending = dict(self._pending)
        exists = self._db.execute(
            "SELECT 1 FROM outbox WHERE message_id = ?", (message_id,)
        ).fetchone()
        if exists:
            return False, 0, pending
        shed = 0
        stored = True
        while sum(pending.values()) >= self.max_items:
            victim = next((k for k in _SHED_ORDER if pending[k] > 0), None)
            if victim is not None and _more_valuable(kind, victim):
                self._shed_oldest(victim)
                pending[victim] -= 1
                shed += 1
            elif kind == "alert":
                raise OutboxFull(
                    f"outbox {self.path} holds {self.max_items} alerts and nothing to shed; "
                    f"alert {message_id} for {device_id} was not stored: restore the uplink "
                    "or raise max_items"
                )
            else:
                shed += 1
                stored = False
                break
        if stored:
            self._db.execute(
                f"INSERT INTO outbox ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, 0, NULL)",
                (message_id, topic, bytes(payload), qos, kind, device_id, now),
            )
            pending[kind] += 1
        if shed:
            self._db.execute("UPDATE meta SET value = value + ? WHERE key = 'shed_count'", (shed,))
        return stored, shed, pending

    def _shed_oldest(self, kind: Kind) -> None:
        self._db.execute(
            "DELETE FROM outbox WHERE seq = (SELECT MIN(seq) FROM outbox WHERE kind = ?)", (kind,)
        )

    def mark_sent(self, message_id: str, now: float) -> None:
        """Record a publish (attempts += 1, last_sent_at = now).

        A no-op if the message is gone: its receipt may overtake this call, because paho
        delivers it on another thread.
        """
        with self._lock:
            self._lazy.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_sent_at = ? WHERE message_id = ?",
                (now, message_id),
            )

    def record_published(self, items: list[OutboxItem], now: float) -> None:
        """After a pump round: QoS-0 messages leave, the others are marked sent (one commit)."""
        if not items:
            return
        with self._lock:
            self._lazy.execute("BEGIN")
            try:
                for item in items:
                    if item.qos == 0:
                        rows = self._lazy.execute(
                            "DELETE FROM outbox WHERE message_id = ? RETURNING kind",
                            (item.message_id,),
                        ).fetchall()
                        if rows:
                            self._pending[rows[0][0]] -= 1
                    else:
                        self._lazy.execute(
                            "UPDATE outbox SET attempts = attempts + 1, last_sent_at = ?"
                            " WHERE message_id = ?",
                            (now, item.message_id),
                        )
            except BaseException:
                self._lazy.execute("ROLLBACK")
                self._recount()
                raise
            self._lazy.execute("COMMIT")

    def _recount(self) -> None:
        self._pending = dict.fromkeys(KINDS, 0)
        for kind, count in self._db.execute("SELECT kind, COUNT(*) FROM outbox GROUP BY kind"):
            self._pending[kind] = count

    def acknowledge(self, message_id: str) -> bool:
        """The receipt arrived: forget the message. True if it was pending."""
        with self._lock:
            # fetchall(): a RETURNING statement is only finished once its rows are read.
            rows = self._lazy.execute(
                "DELETE FROM outbox WHERE message_id = ? RETURNING kind", (message_id,)
            ).fetchall()
            if not rows:
                return False
            self._pending[rows[0][0]] -= 1
            return True

    def drop_unconfirmable(self, message_id: str) -> None:
        """Forget a QoS-0 message once published: no receipt will ever come for it.

        Raises ``ValueError`` for a QoS 1/2 message, which must wait for :meth:`acknowledge`;
        dropping it here would lose an alert silently.
        """
        with self._lock:
            row = self._db.execute(
                "SELECT qos, kind FROM outbox WHERE message_id = ?", (message_id,)
            ).fetchone()
            if row is None:
                return
            qos, kind = row
            if qos != 0:
                raise ValueError(
                    f"message {message_id} ({kind}) has QoS {qos}: it leaves the outbox on "
                    "acknowledge(), when its receipt arrives"
                )
            self._lazy.execute("DELETE FROM outbox WHERE message_id = ?", (message_id,))
            self._pending[kind] -= 1

    # -- reading -----------------------------------------------------------------------------
    def due(
        self,
        now: float,
        limit: int = 100,
        *,
        alerts_in_order: bool = False,
        alerts_window: int | None = None,
    ) -> list[OutboxItem]:
        """Messages to publish now, oldest enqueued first (so in enqueue order per device).

        Due: never sent, or sent more than ``resend_after_s`` ago without a receipt. A
        ``last_sent_at`` later than ``now`` also counts as due: the caller's clock went back
        (a monotonic clock restarts at boot), and such a message would otherwise wait for
        the old clock's value to come round again.

        ``alerts_in_order``: only the oldest pending alert of each device can be due (stop
        and wait). Otherwise a lost alert resent after its timeout would arrive after the
        device's later alerts, and the center could see an episode end before it starts.
        ``alerts_window``: the oldest N pending alerts of each device can be due — a sliding
        window for busy devices (a camera at a crossing); the stream tolerates reordering
        within its lateness, so a window trades strict order for N× the throughput.
        """
        window = 1 if alerts_in_order else alerts_window
        args = (now - self.resend_after_s, now)
        with self._lock:
            if not window:
                rows = self._db.execute(
                    f"SELECT {_COLUMNS} FROM outbox WHERE {_DUE} ORDER BY seq LIMIT ?",
                    (*args, max(limit, 0)),
                ).fetchall()
            else:
                rows = self._db.execute(
                    f"SELECT {_COLUMNS} FROM outbox WHERE (kind != 'alert' OR seq IN ("
                    "  SELECT seq FROM (SELECT seq, ROW_NUMBER() OVER ("
                    "    PARTITION BY device_id ORDER BY seq) AS position"
                    "    FROM outbox WHERE kind = 'alert') WHERE position <= ?"
                    f")) AND ({_DUE}) ORDER BY seq LIMIT ?",
                    (window, *args, max(limit, 0)),
                ).fetchall()
        return [_item(row) for row in rows]

    def __len__(self) -> int:
        with self._lock:
            return sum(self._pending.values())

    def counts(self) -> dict[str, int]:
        """Pending messages per kind, every kind present (zeros included) for metrics."""
        with self._lock:
            return dict(self._pending)

    @property
    def shed_count(self) -> int:
        """Messages dropped because the outbox was full, since the file was created."""
        with self._lock:
            return self._shed_count

    # -- lifecycle ---------------------------------------------------------------------------
    def close(self) -> None:
        """Close the database; pending messages stay on disk for the next start."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._lazy.close()
                self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction: committed on success, rolled back on any exception."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


def _more_valuable(kind: str, victim: Kind) -> bool:
    """Whether a new message of ``kind`` may displace a pending ``victim``."""
    if kind == "alert":
        return True
    return _SHED_ORDER.index(cast(Kind, kind)) >= _SHED_ORDER.index(victim)


def _item(row: tuple[object, ...]) -> OutboxItem:
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
