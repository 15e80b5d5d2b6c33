"""What the outbox keeps in memory while its disk cannot be written.

A full or read-only disk (or one returning I/O errors) must not stop a gateway: it keeps
accepting alerts, publishing them and taking their receipts. Until the disk can be written
again, the outbox records here what it could not write — new messages (bounded: past the
bound new ones are refused, never old ones dropped), receipts and rejections of messages
already on disk, and publish marks — and writes it all in one transaction when the disk
recovers. Pure bookkeeping: no SQLite, no clock; the outbox passes every time in.
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from citywatch.edge.outbox_messages import NewMessage, OutboxItem, PutResult
from citywatch.edge.quarantine import NO_REASON, QuarantinedMessage

__all__ = ["DEFAULT_MEMORY_ITEMS", "Held", "MemoryQueue", "Rejection", "as_quarantined"]

DEFAULT_MEMORY_ITEMS = 10_000
"""Messages held in memory while the disk cannot be written: about 20 MB of alerts."""


@dataclass
class Held:
    """A message accepted while the disk could not be written, with its publish state."""

    message: NewMessage
    enqueued_at: float
    attempts: int = 0
    last_sent_at: float | None = None

    def item(self) -> OutboxItem:
        m = self.message
        return OutboxItem(
            m.message_id, m.topic, m.payload, m.qos, m.kind,  # type: ignore[arg-type]
            m.device_id, self.enqueued_at, self.attempts, self.last_sent_at,
        )  # fmt: skip

    def is_due(self, now: float, resend_after_s: float) -> bool:
        sent = self.last_sent_at
        return sent is None or sent < now - resend_after_s or sent > now


@dataclass(frozen=True)
class Rejection:
    """A "rejected" receipt not yet written to the quarantine."""

    reason: str | None
    rejected_at: float | None
    quarantined_at: float


class MemoryQueue:
    """The outbox's writes that wait for a writable disk, new messages bounded by ``max_items``."""

    def __init__(self, max_items: int) -> None:
        if max_items < 1:
            raise ValueError(f"the memory queue needs room for at least 1 message, got {max_items}")
        self.max_items = max_items
        self.held: OrderedDict[str, Held] = OrderedDict()
        """New messages, oldest first."""
        self.held_rejected: dict[str, tuple[Held, Rejection]] = {}
        """New messages the center rejected before they could be written."""
        self.acked: set[str] = set()
        """Messages on disk whose receipt came (to delete)."""
        self.rejected: dict[str, Rejection] = {}
        """Messages on disk the center rejected (to move to the quarantine)."""
        self.sent: dict[str, tuple[int, float]] = {}
        """Messages on disk published again: (attempts, last sent at)."""
        self.refused = 0
        """New messages refused because the queue was full, since the outbox opened."""

    def __len__(self) -> int:
        """Messages held (what the bound limits)."""
        return len(self.held) + len(self.held_rejected)

    @property
    def empty(self) -> bool:
        return not (self.held or self.held_rejected or self.acked or self.rejected or self.sent)

    def hold(self, message: NewMessage, now: float) -> bool:
        """Keep a new message; False (and counted) when the queue is full."""
        if len(self) >= self.max_items:
            self.refused += 1
            return False
        self.held[message.message_id] = Held(message, now)
        return True

    def put_many(
        self, messages: list[NewMessage], now: float, pending: Callable[[str], bool]
    ) -> tuple[PutResult, list[str]]:
        """Hold a batch, as the outbox would store it; the result and the kinds held.

        ``pending(id)`` tells whether the outbox (disk or memory) already has a message.
        Past the bound, alerts are refused by id and other kinds counted as shed.
        """
        stored: list[str] = []
        duplicates = not_kept = 0
        refused: list[str] = []
        for m in messages:
            if pending(m.message_id):
                duplicates += 1
            elif self.hold(m, now):
                stored.append(m.kind)
            elif m.kind == "alert":
                refused.append(m.message_id)
            else:
                not_kept += 1
        result = PutResult(len(stored), duplicates, not_kept, tuple(refused), held=len(stored))
        return result, stored

    def forget(
        self,
        message_id: str,
        rejection: Rejection | None,
        find: Callable[[str], OutboxItem | None],
    ) -> str | None:
        """A receipt (``rejection`` None) or a rejection: recorded here; the message's kind,
        or None if it was not pending. ``find`` looks a message up on disk."""
        held = self.held.get(message_id)
        if held is not None:
            if rejection is None:
                del self.held[message_id]
            else:
                self.reject_held(message_id, rejection)
            return held.message.kind
        item = find(message_id)
        if item is None:
            return None
        self.forget_on_disk(message_id, rejection)
        return item.kind

    def merge_due(
        self,
        on_disk: list[OutboxItem],
        now: float,
        resend_after_s: float,
        limit: int,
        window: int | None,
        alerts_on_disk: Callable[[], dict[str, int]],
    ) -> list[OutboxItem]:
        """The due messages on disk with the publish marks kept here, then the held ones
        (newer than anything on disk), each device's alert window counted across both."""
        items = [
            replace(i, attempts=self.sent[i.message_id][0], last_sent_at=self.sent[i.message_id][1])
            if i.message_id in self.sent
            else i
            for i in on_disk
        ]
        positions: Counter[str] = Counter()
        if window and self.held:
            positions.update(alerts_on_disk())
        for held in self.held.values():
            if len(items) >= limit:
                break
            m = held.message
            if window and m.kind == "alert":
                positions[m.device_id] += 1
                if positions[m.device_id] > window:
                    continue
            if held.is_due(now, resend_after_s):
                items.append(held.item())
        return items

    def gone(self) -> list[str]:
        """Messages still on disk that are no longer pending (received or rejected)."""
        return [*self.acked, *self.rejected]

    def waiting(self, now: float, resend_after_s: float) -> list[str]:
        """Messages on disk published too recently to be due, by the marks kept here."""
        return [m for m, (_, sent) in self.sent.items() if now - resend_after_s <= sent <= now]

    def published(self, item: OutboxItem, now: float, on_disk: bool) -> bool:
        """Record one publish; True if the message leaves (QoS 0: no receipt will come)."""
        held = self.held.get(item.message_id)
        if held is not None:
            if item.qos == 0:
                del self.held[item.message_id]
                return True
            held.attempts += 1
            held.last_sent_at = now
            return False
        if not on_disk:
            return False
        if item.qos == 0:
            self.acked.add(item.message_id)
            self.sent.pop(item.message_id, None)
            return True
        attempts = self.sent.get(item.message_id, (item.attempts, now))[0]
        self.sent[item.message_id] = (max(attempts, item.attempts) + 1, now)
        return False

    def make_sent_due(self) -> None:
        """Every published message still held here or on disk becomes due at once."""
        for held in self.held.values():
            held.last_sent_at = None
        self.sent = {m: (attempts, -math.inf) for m, (attempts, _) in self.sent.items()}

    def forget_on_disk(self, message_id: str, rejection: Rejection | None) -> None:
        """A message on disk was received (``None``) or rejected: record it for the disk."""
        self.sent.pop(message_id, None)
        if rejection is None:
            self.acked.add(message_id)
        else:
            self.rejected[message_id] = rejection

    def reject_held(self, message_id: str, rejection: Rejection) -> str | None:
        """A held message was rejected: keep it for the quarantine; its kind, or None."""
        held = self.held.pop(message_id, None)
        if held is None:
            return None
        self.held_rejected[message_id] = (held, rejection)
        return held.message.kind

    def quarantined(
        self, find: Callable[[str], OutboxItem | None] = lambda _: None
    ) -> Iterator[QuarantinedMessage]:
        """The held rejected messages, as the quarantine will store them; with ``find``
        (a lookup on disk), the rejected messages on disk not yet moved too."""
        for held, rejection in self.held_rejected.values():
            yield as_quarantined(held.item(), rejection)
        for message_id, rejection in self.rejected.items():
            item = find(message_id)
            if item is not None:  # an unreadable disk: listed once it can be read
                yield as_quarantined(item, rejection)

    def clear_written(self, kept: list[Held]) -> None:
        """After a flush: everything was written except ``kept`` (refused by a full outbox)."""
        self.held = OrderedDict((h.message.message_id, h) for h in kept)
        self.held_rejected.clear()
        self.acked.clear()
        self.rejected.clear()
        self.sent.clear()


def as_quarantined(item: OutboxItem, rejection: Rejection) -> QuarantinedMessage:
    """A pending message as the quarantine stores it once rejected."""
    return QuarantinedMessage(
        item.message_id, item.topic, item.payload, item.qos, item.kind, item.device_id,
        item.enqueued_at, item.attempts, rejection.reason or NO_REASON,
        rejection.rejected_at, rejection.quarantined_at,
    )  # fmt: skip
