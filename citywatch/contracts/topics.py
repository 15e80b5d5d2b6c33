"""MQTT topic layout and Kafka topic names.

MQTT: ``citywatch/v1/{site}/{device_kind}/{device_id}/{channel}``. The version sits in the
topic so a broker ACL or a bridge subscription can move a fleet between majors; the device
subtree is what the ACL grants each device, so one compromised gateway cannot speak for
another. Uplink channels (alerts, telemetry, status, evidence) are written by the device;
``receipts`` is written by the bridge and read only by that device.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from enum import StrEnum

from citywatch.contracts.errors import TopicError

ROOT = "citywatch"
TOPIC_VERSION = "v1"
_SEGMENT = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


class Channel(StrEnum):
    """What a message on a device topic carries."""

    ALERTS = "alerts"
    TELEMETRY = "telemetry"
    STATUS = "status"
    EVIDENCE = "evidence"
    RECEIPTS = "receipts"

    @property
    def uplink(self) -> bool:
        """True for channels the device publishes (everything but receipts)."""
        return self is not Channel.RECEIPTS


UPLINK_CHANNELS: tuple[Channel, ...] = tuple(c for c in Channel if c.uplink)


def check_segment(value: str, what: str) -> str:
    """Return ``value`` if it is usable as one topic level, else raise :class:`TopicError`.

    MQTT wildcards, separators and empty levels would let an id escape its subtree.
    """
    if not _SEGMENT.match(value):
        raise TopicError(
            f"{what} {value!r} cannot be a topic level: use 1-64 letters, digits, '_', '-' or '.'"
        )
    return value


@dataclass(frozen=True, slots=True)
class TopicAddress:
    """The parts of one device topic."""

    site: str
    device_kind: str
    device_id: str
    channel: Channel

    def __post_init__(self) -> None:
        check_segment(self.site, "site")
        check_segment(self.device_kind, "device kind")
        check_segment(self.device_id, "device id")

    @property
    def topic(self) -> str:
        """The MQTT topic string."""
        return "/".join(
            (ROOT, TOPIC_VERSION, self.site, self.device_kind, self.device_id, self.channel.value)
        )

    def with_channel(self, channel: Channel) -> TopicAddress:
        """The same device, another channel (e.g. where to send the receipt of an alert)."""
        return TopicAddress(self.site, self.device_kind, self.device_id, channel)

    @classmethod
    def parse(cls, topic: str) -> TopicAddress:
        """Split an MQTT topic into its parts, or raise :class:`TopicError` saying why not.

        Cached: a fleet publishes on a bounded set of topics, and this runs per message.
        """
        return _parse(topic)

    @classmethod
    def _parse_uncached(cls, topic: str) -> TopicAddress:
        parts = topic.split("/")
        if len(parts) != 6 or parts[0] != ROOT:
            raise TopicError(
                f"topic {topic!r} is not citywatch/v1/{{site}}/{{device_kind}}/{{device_id}}/{{channel}}"
            )
        if parts[1] != TOPIC_VERSION:
            raise TopicError(
                f"topic {topic!r} has version {parts[1]!r}; this build reads {TOPIC_VERSION}"
            )
        try:
            channel = Channel(parts[5])
        except ValueError:
            raise TopicError(
                f"topic {topic!r} has unknown channel {parts[5]!r}; one of {[c.value for c in Channel]}"
            ) from None
        return cls(parts[2], parts[3], parts[4], channel)


@functools.lru_cache(maxsize=65536)
def _parse(topic: str) -> TopicAddress:
    return TopicAddress._parse_uncached(topic)


def device_subtree(site: str, device_kind: str, device_id: str) -> str:
    """The topic filter covering everything of one device (``.../{device_id}/#``)."""
    base = TopicAddress(site, device_kind, device_id, Channel.ALERTS).topic.rsplit("/", 1)[0]
    return base + "/#"


def fleet_filter(channel: Channel, site: str = "+") -> str:
    """The filter matching one channel of every device (of one site, or all sites)."""
    return "/".join((ROOT, TOPIC_VERSION, site, "+", "+", channel.value))


def workorder_events_topic(site: str) -> str:
    """Where work-order events go out on MQTT for other systems (written by the bridge only)."""
    return "/".join(
        (ROOT, TOPIC_VERSION, check_segment(site, "site"), "center", "workorders", "events")
    )


@dataclass(frozen=True, slots=True)
class KafkaTopics:
    """Kafka topic names, one per stream of the pipeline, under a configurable prefix."""

    prefix: str = "citywatch"

    def __post_init__(self) -> None:
        check_segment(self.prefix, "kafka topic prefix")

    @property
    def alerts(self) -> str:
        return f"{self.prefix}.alerts"

    @property
    def telemetry(self) -> str:
        return f"{self.prefix}.telemetry"

    @property
    def status(self) -> str:
        return f"{self.prefix}.status"

    @property
    def evidence(self) -> str:
        return f"{self.prefix}.evidence"

    @property
    def receipts(self) -> str:
        return f"{self.prefix}.receipts"

    @property
    def workorder_events(self) -> str:
        return f"{self.prefix}.workorder-events"

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}.dead-letters"

    def for_channel(self, channel: Channel) -> str:
        """The Kafka topic an uplink MQTT channel is bridged to."""
        return {
            Channel.ALERTS: self.alerts,
            Channel.TELEMETRY: self.telemetry,
            Channel.STATUS: self.status,
            Channel.EVIDENCE: self.evidence,
            Channel.RECEIPTS: self.receipts,
        }[channel]

    def all(self) -> tuple[str, ...]:
        return (
            self.alerts,
            self.telemetry,
            self.status,
            self.evidence,
            self.receipts,
            self.workorder_events,
            self.dead_letters,
        )
