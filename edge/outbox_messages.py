"""The values the outbox takes and gives: a new message, a pending item, a batch's result,
and its health as a gateway reports it.

Kept apart from :mod:`citywatch.edge.outbox` so the in-memory queue
(:mod:`citywatch.edge.outbox_memory`) and the SQLite outbox speak the same types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["KINDS", "Kind", "NewMessage", "OutboxFull", "OutboxHealth", "OutboxItem", "PutResult"]

Kind = Literal["alert", "telemetry", "status", "evidence"]
KINDS: tuple[Kind, ...] = ("alert", "telemetry", "status", "evidence")


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
    """Alerts that could not be stored: the outbox holds nothing but alerts, or its disk
    cannot be written and the memory queue is full. Never silent: the caller must log and
    count each one."""
    held: int = 0
    """Of ``stored``, how many are held in memory only because the disk cannot be written;
    they are written when it can be again."""


class OutboxFull(Exception):
    """An alert could not be stored: the outbox holds nothing but alerts.

    The gateway has been cut off long enough to fill ``max_items`` with alerts; raise
    ``max_items`` (disk permitting) or restore the uplink.
    """


@dataclass(frozen=True)
class OutboxHealth:
    """What the retained status says about the outbox; a change republishes the status
    (not every held message or rejection time: the count of held messages rides along)."""

    quarantined: int
    """Rejected messages in the quarantine (and in memory, while the disk is faulty)."""
    last_rejection: str | None
    """The newest quarantined message's reason."""
    last_rejection_at: float | None = field(compare=False)
    fault: str | None
    """Why the outbox disk cannot be written now (the SQLite error), or None."""
    held: int = field(compare=False)
    """Messages only in memory, waiting for the disk."""
    refused: int
    """Alerts refused since the outbox opened: full of alerts, or disk unwritable and the
    memory queue full."""
    write_faults: int
    """Episodes in which the disk could not be written, since the outbox opened."""

    def notes(self) -> list[str]:
        notes = []
        if self.fault is not None:
            notes.append(f"outbox cannot write ({self.fault}): {self.held} messages held in memory")
        if self.refused:
            notes.append(f"outbox: {self.refused} alerts refused")
        if self.quarantined:
            notes.append(
                f"quarantine: {self.quarantined} rejected alerts (last: {self.last_rejection})"
            )
        return notes
