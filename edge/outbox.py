"""The durable on-disk outbox every edge agent publishes through.

paho keeps its MQTT session in memory and a broker queues for offline subscribers, not
offline publishers (DOMAIN.md, MQTT practice). So a gateway writes each message here first
and deletes it only when the stream's receipt comes back; a power cut or a week without
uplink loses nothing but the oldest telemetry, and never an alert. A "rejected" receipt
does not delete either: the message moves to the quarantine
(:mod:`citywatch.edge.quarantine`) in the same file, with the reason, until an operator
re-queues or purges it.

When the disk cannot be written (full, read-only, I/O errors) the outbox keeps working from
memory (:mod:`citywatch.edge.outbox_memory`): new messages, receipts and publish marks wait
there, bounded, and :meth:`Outbox.flush` writes them once the disk recovers. What is
already on disk stays there and is still published.

One process owns an outbox file (an operator's quarantine command may open it beside the
agent: SQLite's locks keep them apart). The outbox never reads the clock: every time is a
float the caller passes (monotonic or epoch), so tests and replays drive it exactly.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import threading
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import cast

from citywatch.edge import outbox_store as store
from citywatch.edge import quarantine as qt
from citywatch.edge.outbox_disk import OutboxDisk, TooSoon
from citywatch.edge.outbox_memory import DEFAULT_MEMORY_ITEMS, MemoryQueue, Rejection
from citywatch.edge.outbox_messages import (
    KINDS,
    NewMessage,
    OutboxFull,
    OutboxHealth,
    OutboxItem,
    PutResult,
)
from citywatch.edge.outbox_store import NOT_IN, is_disk_fault
from citywatch.edge.quarantine import QuarantinedMessage

__all__ = [
    "KINDS",
    "NewMessage",
    "Outbox",
    "OutboxFull",
    "OutboxItem",
    "PutResult",
    "is_disk_fault",
]

log = logging.getLogger(__name__)


class Outbox:
    """A SQLite (WAL) queue of messages awaiting their receipt, safe to share across threads.

    Durability: a :meth:`put` returns only once it is fsynced (see
    :func:`citywatch.edge.outbox_store.connect` for why, and why receipts need not be).

    Thread safety: two connections (``check_same_thread=False``) guarded by one lock, because
    paho delivers receipts on its network thread while the agent enqueues on its own.
    """

    def __init__(
        self,
        path: Path,
        max_items: int = 100_000,
        resend_after_s: float = 30.0,
        memory_items: int = DEFAULT_MEMORY_ITEMS,
    ) -> None:
        if max_items < 1:
            raise ValueError(f"max_items must be at least 1, got {max_items}")
        if not math.isfinite(resend_after_s) or resend_after_s < 0:
            raise ValueError(f"resend_after_s must be a non-negative number, got {resend_after_s}")
        self.path = Path(path)
        self.max_items = max_items
        self.resend_after_s = resend_after_s
        self._lock = threading.RLock()
        self._memory = MemoryQueue(memory_items)
        self._memory_full_logged = False
        self._pending: dict[str, int] = dict.fromkeys(KINDS, 0)
        self._shed_count = 0
        self._quarantined = 0
        self._last_rejection: tuple[str, float] | None = None
        self._alerts_refused = 0
        self._operator_changes = 0
        self._closed = False
        self._disk = OutboxDisk(self.path, memory_items)
        self._recount()

    def _failed(self, exc: BaseException, during: str) -> None:
        """A write failed: re-raised unless the disk is at fault; then memory takes over."""
        if self._disk.failed(exc, during):
            self._memory_full_logged = False

    def _recount(self) -> None:
        """Counts from the disk, less what memory says is gone, plus what memory holds."""
        memory = self._memory
        gone = json.dumps(memory.gone())
        pending: dict[str, int] = dict.fromkeys(KINDS, 0)
        for kind, count in self._disk.query(
            f"SELECT kind, COUNT(*) FROM outbox WHERE {NOT_IN} GROUP BY kind", (gone,)
        ):
            pending[str(kind)] = int(cast(int, count))
        for held in memory.held.values():
            pending[held.message.kind] += 1
        self._pending = pending
        for (shed,) in self._disk.query("SELECT value FROM meta WHERE key = 'shed_count'"):
            self._shed_count = int(cast(int, shed))
        on_disk = self._disk.read(qt.count, 0)
        self._quarantined = on_disk + len(memory.rejected) + len(memory.held_rejected)
        self._operator_changes = self._disk.read(qt.operator_changes, self._operator_changes)
        if not memory.rejected and not memory.held_rejected:
            latest = self._disk.read(qt.latest, None) if on_disk else None
            self._last_rejection = (
                None if latest is None else (latest.reason, latest.quarantined_at)
            )

    def resync(self) -> None:
        """Recount if an operator re-queued or purged since (another process, same file)."""
        with self._lock:
            changes = self._disk.read(qt.operator_changes, 0) if self._disk.fault is None else None
            if changes is not None and changes != self._operator_changes:
                self._recount()

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
        """Store a message to publish; True if stored (on disk, or in memory while the disk
        cannot be written).

        False when it is already pending (a retry after a crash re-enqueues the same id),
        or when the outbox is full and this message is the least valuable one (it is then
        counted in :attr:`shed_count`). When full, the oldest telemetry goes first, then
        status, then evidence; an alert is never shed, and an alert that finds only alerts
        (or a full memory queue) raises :class:`OutboxFull`.

        Idempotency covers pending messages only: an id already acknowledged is forgotten
        and would be stored again (the stream deduplicates by message id).
        """
        message = NewMessage(item_message_id, topic, payload, qos, kind, device_id)
        result = self.put_many([message], now)
        if result.refused:
            raise OutboxFull(
                f"outbox {self.path} cannot take alert {item_message_id} for {device_id}:"
                f" {self._why_full()}"
            )
        return result.stored == 1

    def _why_full(self) -> str:
        if self._disk.fault is not None:
            return (
                f"its disk cannot be written ({self._disk.fault}) and {self._memory.max_items}"
                " messages already wait in memory: free disk space or make the file writable"
            )
        return (
            f"it holds {self.max_items} alerts and nothing to shed: restore the uplink or"
            " raise max_items"
        )

    def put_many(self, messages: list[NewMessage], now: float) -> PutResult:
        """Store a batch in one transaction (one fsync), each message as :meth:`put` would.

        An alert that cannot be stored is returned in :attr:`PutResult.refused` instead of
        raising, so the rest of the batch still lands. While the disk cannot be written the
        batch goes to memory (:attr:`PutResult.held`).
        """
        for message in messages:
            if message.kind not in KINDS:
                raise ValueError(
                    f"unknown outbox kind {message.kind!r}; use one of {', '.join(KINDS)}"
                )
            if message.qos not in (0, 1, 2):
                raise ValueError(f"qos must be 0, 1 or 2, got {message.qos}")
        with self._lock:
            if (writers := self._disk.writers()) is not None:
                try:
                    result, pending = store.put_batch(
                        writers[0], self._pending, messages, now, self.max_items
                    )
                except sqlite3.Error as exc:
                    self._failed(exc, f"storing {len(messages)} message(s)")
                else:  # committed: only now does the in-memory view follow the database
                    self._pending = pending
                    self._alerts_refused += len(result.refused)
                    self._shed_count += result.shed
                    if result.shed:
                        log.warning("outbox full (%d): shed %d", self.max_items, result.shed)
                    return result
            return self._put_in_memory(messages, now)

    def _put_in_memory(self, messages: list[NewMessage], now: float) -> PutResult:
        result, kinds = self._memory.put_many(messages, now, self._is_pending)
        self._alerts_refused += len(result.refused)
        for kind in kinds:
            self._pending[kind] += 1
        if (result.refused or result.shed) and not self._memory_full_logged:
            self._memory_full_logged = True
            log.error(
                "outbox %s cannot be written and its memory queue is full (%d messages):"
                " refusing new messages (%d so far); free disk space or make the file writable",
                self.path, self._memory.max_items, self._memory.refused,
            )  # fmt: skip
        return result

    def _is_pending(self, message_id: str) -> bool:
        held = message_id in self._memory.held_rejected
        return held or self._find(message_id) is not None

    def _find(self, message_id: str) -> OutboxItem | None:
        """A pending message, wherever it is (memory's records of receipts included)."""
        held = self._memory.held.get(message_id)
        if held is not None:
            return held.item()
        if message_id in self._memory.acked or message_id in self._memory.rejected:
            return None
        return self._disk.read(lambda db: store.find(db, message_id), None)

    def resend_now(self) -> None:
        """Make every published message still awaiting its receipt due at once (on each
        connect: a restarted broker may have lost what was in flight, and waiting for
        ``resend_after_s`` would let newer alerts overtake it; a duplicate is harmless)."""
        with self._lock:
            if (writers := self._disk.writers()) is not None:
                try:
                    store.make_sent_due(writers[1])
                except sqlite3.Error as exc:
                    self._failed(exc, "making unreceipted messages due")
            self._memory.make_sent_due()

    def mark_sent(self, message_id: str, now: float) -> None:
        """Record a publish (attempts += 1, last_sent_at = now).

        A no-op if the message is gone: its receipt may overtake this call, because paho
        delivers it on another thread.
        """
        with self._lock:
            if (writers := self._disk.writers()) is not None:
                try:
                    return store.mark_sent(writers[1], message_id, now)
                except sqlite3.Error as exc:
                    self._failed(exc, "recording a publish")
            item = self._find(message_id)
            if item is not None:
                self._memory.published(replace(item, qos=1), now, on_disk=True)

    def record_published(self, items: list[OutboxItem], now: float) -> None:
        """After a pump round: QoS-0 messages leave, the others are marked sent (one commit)."""
        if not items:
            return
        with self._lock:
            if (writers := self._disk.writers()) is not None:
                try:
                    for kind in store.record_published(writers[1], items, now):
                        self._pending[kind] -= 1
                    return
                except sqlite3.Error as exc:  # rolled back: the counts did not follow
                    self._failed(exc, "recording publishes")
            for item in items:
                on_disk = self._find(item.message_id) is not None
                if self._memory.published(item, now, on_disk=on_disk):
                    self._pending[item.kind] -= 1

    def acknowledge(self, message_id: str) -> bool:
        """The receipt arrived: forget the message. True if it was pending."""
        with self._lock:
            if (writers := self._disk.writers()) is not None:
                try:
                    kind = store.delete(writers[1], message_id)
                except sqlite3.Error as exc:
                    self._failed(exc, "taking a receipt")
                else:
                    if kind is not None:
                        self._pending[kind] -= 1
                    return kind is not None
            return self._forget(message_id, None)

    def quarantine(
        self, message_id: str, reason: str | None, rejected_at: float | None, now: float
    ) -> bool:
        """A "rejected" receipt arrived: move the message to the quarantine with the reason.

        True if it was pending (it is then no longer sent); False for an unknown id (a
        receipt for a copy already quarantined, or for a QoS-0 message already gone).
        """
        with self._lock:
            moved: bool | None = None
            if (writers := self._disk.writers()) is not None:
                try:
                    with store.transaction(writers[0]):
                        kind = qt.move_from_outbox(writers[0], message_id, reason, rejected_at, now)
                except sqlite3.Error as exc:
                    self._failed(exc, "quarantining a rejected message")
                else:
                    if kind is not None:
                        self._pending[kind] -= 1
                    moved = kind is not None
            if moved is None:
                moved = self._forget(message_id, Rejection(reason, rejected_at, now))
            if moved:
                self._quarantined += 1
                self._last_rejection = (reason or qt.NO_REASON, now)
            return moved

    def _forget(self, message_id: str, rejection: Rejection | None) -> bool:
        """Receipt or rejection while the disk cannot be written: recorded in memory."""
        kind = self._memory.forget(message_id, rejection, self._find)
        if kind is not None:
            self._pending[kind] -= 1
        return kind is not None

    def drop_unconfirmable(self, message_id: str) -> None:
        """Forget a QoS-0 message once published: no receipt will ever come for it.

        Raises ``ValueError`` for a QoS 1/2 message, which must wait for :meth:`acknowledge`;
        dropping it here would lose an alert silently.
        """
        with self._lock:
            item = self._find(message_id)
            if item is None:
                return
            if item.qos != 0:
                raise ValueError(
                    f"message {message_id} ({item.kind}) has QoS {item.qos}: it leaves the"
                    " outbox on acknowledge(), when its receipt arrives"
                )
            self.acknowledge(message_id)

    # -- recovering from a disk fault --------------------------------------------------------
    def flush(self, now: float, *, force: bool = False) -> bool:
        """Write what memory holds once the disk takes writes again (the file reopened, at
        most every ``RETRY_WRITE_S`` unless ``force``); True when memory is empty."""
        with self._lock:
            if self._disk.fault is None:
                return True
            memory = self._memory
            written = (len(memory.held), len(memory.acked), len(memory.rejected))
            rejected = written[2] + len(memory.held_rejected)
            try:
                kept = self._disk.retry(
                    now, lambda db: store.write_memory(db, memory, self.max_items), force
                )
            except TooSoon:
                return False
            except (sqlite3.Error, OSError) as exc:
                if isinstance(exc, sqlite3.Error) and not is_disk_fault(exc):
                    raise
                return False
            memory.clear_written(kept)
            self._recount()
            if kept:  # the outbox is full of alerts: these wait in memory for room
                self._disk.fault = f"OutboxFull: {self._why_full()}"
                return False
            log.warning(
                "outbox %s can be written again: wrote %d held message(s), %d receipt(s) and"
                " %d rejection(s) kept in memory",
                self.path, written[0], written[1], rejected,
            )  # fmt: skip
            return True

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

        While the disk cannot be written, what memory records counts as written: receipts
        and publishes of messages on disk, and held messages (after everything on disk).
        """
        window = 1 if alerts_in_order else alerts_window
        limit = max(limit, 0)
        with self._lock:
            memory = self._memory
            gone = json.dumps(memory.gone())
            waiting = json.dumps(memory.waiting(now, self.resend_after_s))
            items: list[OutboxItem] = self._disk.read(
                lambda db: store.due_rows(
                    db, now, self.resend_after_s, limit, window, gone, waiting
                ),
                [],
            )
            if memory.empty:
                return items
            return memory.merge_due(
                items,
                now,
                self.resend_after_s,
                limit,
                window,
                lambda: self._disk.read(lambda db: store.alerts_per_device(db, gone), {}),
            )

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

    @property
    def fault(self) -> str | None:
        """Why the disk cannot be written now (the SQLite error), or None when it can."""
        return self._disk.fault

    def health(self) -> OutboxHealth:
        """What the gateway's retained status says about its outbox."""
        with self._lock:
            last = self._last_rejection
            return OutboxHealth(
                quarantined=self._quarantined,
                last_rejection=None if last is None else last[0],
                last_rejection_at=None if last is None else last[1],
                fault=self._disk.fault,
                held=len(self._memory),
                refused=self._alerts_refused,
                write_faults=self._disk.write_faults,
            )

    def quarantined(self) -> list[QuarantinedMessage]:
        """Quarantined messages, newest first (those rejected while the disk was faulty first)."""
        with self._lock:
            found = self._memory.quarantined(
                lambda m: self._disk.read(lambda db: store.find(db, m), None)
            )
            on_disk: list[QuarantinedMessage] = self._disk.read(qt.list_messages, [])
            return [*found, *on_disk]

    # -- lifecycle ---------------------------------------------------------------------------
    def close(self) -> None:
        """Close the database; pending messages stay on disk for the next start.

        Held messages get one last write; any the disk still refuses are logged as lost,
        with their ids (memory does not outlive the process).
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._disk.fault is not None and not self._memory.empty:
                self.flush(0.0, force=True)
                lost = [*self._memory.held, *self._memory.held_rejected]
                if lost:
                    log.error(
                        "outbox %s closes with %d message(s) its disk never took; lost: %s",
                        self.path, len(lost), ", ".join(lost[:50]),
                    )  # fmt: skip
            self._disk.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
