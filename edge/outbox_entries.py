"""How each wire message enters a gateway's outbox: its id, topic, QoS and kind.

The outbox itself stores bytes and knows nothing of the wire contract; this is the one place
that decides what a message costs to keep (an alert until its receipt, the rest at QoS 0).
"""

from __future__ import annotations

from citywatch.contracts import Alert, Channel, Status, Telemetry, encode
from citywatch.contracts.messages import Evidence
from citywatch.edge.outbox_messages import NewMessage

__all__ = ["outbox_entry"]


def outbox_entry(message: Alert | Telemetry | Evidence | Status) -> NewMessage:
    """Alerts go at QoS 1 and stay until their receipt; a device's status, telemetry and
    evidence notices at QoS 0 (the first to be shed when the outbox fills: a status is
    repeated by the agent, the evidence files stay on disk)."""
    if isinstance(message, Status):
        return NewMessage(
            f"{message.device.id}.status.{int(message.event_time.timestamp() * 1000)}",
            message.device.address(Channel.STATUS).topic,
            encode(message),
            0,
            "status",
            message.device.id,
        )
    if isinstance(message, Alert):
        return NewMessage(
            message.id,
            message.device.address(Channel.ALERTS).topic,
            encode(message),
            1,
            "alert",
            message.device.id,
        )
    if isinstance(message, Evidence):
        return NewMessage(
            message.id,
            message.device.address(Channel.EVIDENCE).topic,
            encode(message),
            0,
            "evidence",
            message.device.id,
        )
    return NewMessage(
        message.id,
        message.device.address(Channel.TELEMETRY).topic,
        encode(message),
        0,
        "telemetry",
        message.device.id,
    )
