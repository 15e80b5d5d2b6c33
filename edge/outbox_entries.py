"""How each wire message enters a gateway's outbox: its id, topic, QoS and kind.

The outbox itself stores bytes and knows nothing of the wire contract; this is the one place
that decides what a message costs to keep (an alert until its receipt, the rest at QoS 0).
"""

from __future__ import annotations

from citywatch.contracts import Alert, Channel, Status, Telemetry, encode
from citywatch.contracts.messages import Evidence
from citywatch.edge.outbox_messages import NewMessage

__all__ = ["outbox_entry"]


_ROUTES: dict[type, tuple[Channel, int, str]] = {
    Alert: (Channel.ALERTS, 1, "alert"),
    Telemetry: (Channel.TELEMETRY, 0, "telemetry"),
    Evidence: (Channel.EVIDENCE, 0, "evidence"),
    Status: (Channel.STATUS, 0, "status"),
}
"""Each message type's channel, QoS and outbox kind."""


def outbox_entry(message: Alert | Telemetry | Evidence | Status) -> NewMessage:
    """Alerts go at QoS 1 and stay until their receipt; a device's status, telemetry and
    evidence notices at QoS 0 (the first to be shed when the outbox fills: a status is
    repeated by the agent, the evidence files stay on disk). A status has no id of its own:
    it is named by its device and time."""
    channel, qos, kind = _ROUTES[type(message)]
    device = message.device
    if isinstance(message, Status):
        message_id = f"{device.id}.status.{int(message.event_time.timestamp() * 1000)}"
    else:
        message_id = message.id
    return NewMessage(
        message_id, device.address(channel).topic, encode(message), qos, kind, device.id
    )
