"""Validation of bridged messages before anything is stored (pure).

Beyond the contract (size, JSON, version, type, storable text and numbers), the stream
checks that the sender is a registered device, that the device named in the payload is the
one whose MQTT topic the message arrived on (the broker ACL proves who published, the payload
only claims it), that its times are plausible (after the site's epoch, not past the receive
time plus the allowed clock skew) and that water depths lie within what the sensor can
measure. A message failing any check is dead-lettered alone, with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from citywatch.config import CitywatchConfig
from citywatch.contracts import ContractError, MalformedMessage, TopicAddress, decode
from citywatch.contracts.messages import CHANNEL_TYPES, Alert, Telemetry, WireModel

MQTT_TOPIC_HEADER = "mqtt_topic"


class UnknownDevice(ContractError):
    """The topic names a device that is not in the registry."""


class DeviceMismatch(ContractError):
    """The payload's device differs from the device of the topic it was published on."""


class MissingTopic(ContractError):
    """A record reached the stream without the MQTT topic header the bridge always sets."""


class ImplausibleTime(ContractError):
    """An event time before the site's epoch or too far in the future: a broken clock."""


class OutOfRange(ContractError):
    """A measurement the device cannot physically have made (a depth below the road)."""


DEPTH_KEYS = ("depth_cm", "peak_depth_cm")
"""Alert attributes and telemetry metrics that are a water depth."""


@dataclass(frozen=True)
class Registry:
    """Known devices as (site, kind, id), from the config's device registry, with what the
    stream accepts from them (time bounds, each sensor's measurable depth)."""

    devices: frozenset[tuple[str, str, str]]
    earliest: datetime = datetime(2020, 1, 1, tzinfo=UTC)
    max_skew: timedelta = timedelta(minutes=5)
    max_depth_cm: Mapping[tuple[str, str], float] = field(default_factory=dict)
    """(site, sensor id) → its mount height: no depth can exceed it."""

    @classmethod
    def from_config(cls, config: CitywatchConfig) -> Registry:
        site = config.site.id
        known = {(site, "gateway", g.id) for g in config.devices.gateways}
        known |= {(site, kind, device.id) for kind, device in config.devices.all()}
        return cls(
            frozenset(known),
            earliest=config.intake.earliest_event_time,
            max_skew=config.intake.max_clock_skew,
            max_depth_cm={(site, s.id): s.mount_height_cm for s in config.devices.sensors},
        )

    def __contains__(self, address: TopicAddress) -> bool:
        return (address.site, address.device_kind, address.device_id) in self.devices


def topic_header(headers: Mapping[str, bytes] | Iterable[tuple[str, bytes]] | None) -> bytes | None:
    """The MQTT topic the bridge put in a record's headers (a mapping or Kafka's pairs)."""
    if isinstance(headers, Mapping):
        return headers.get(MQTT_TOPIC_HEADER)
    for name, value in headers or ():
        if name == MQTT_TOPIC_HEADER:
            return value
    return None


@lru_cache(maxsize=4096)
def _address(raw_topic: bytes) -> TopicAddress:
    """A topic parsed once: a site's devices publish on a few thousand topics, again and
    again (an invalid one raises, and errors are not cached)."""
    return TopicAddress.parse(raw_topic.decode("utf-8", errors="replace"))


def validate_record(
    value: bytes | None,
    headers: Mapping[str, bytes] | Iterable[tuple[str, bytes]] | None,
    registry: Registry,
    received_at: datetime | None = None,
) -> tuple[TopicAddress, WireModel]:
    """The message in a bridged record, or a :class:`ContractError` saying what is wrong.

    ``received_at`` bounds event times from above (plus the allowed skew): the record's
    Kafka timestamp, so a replay judges as the live run did; now when not given.
    """
    raw_topic = topic_header(headers)
    if raw_topic is None:
        raise MissingTopic(
            f"record has no {MQTT_TOPIC_HEADER!r} header; was it produced by the bridge?"
        )
    if value is None:
        raise MalformedMessage("record has no value (a tombstone?)")
    address = _address(raw_topic)
    if address not in registry:
        raise UnknownDevice(
            f"device {address.device_kind}/{address.device_id} of site {address.site} is not registered"
        )
    message = decode(value, CHANNEL_TYPES[address.channel])
    device = getattr(message, "device", None)
    if device is not None and (device.site, device.kind.value, device.id) != (
        address.site,
        address.device_kind,
        address.device_id,
    ):
        raise DeviceMismatch(
            f"payload claims device {device.kind.value}/{device.id} (site {device.site}) but was"
            f" published on the topic of {address.device_kind}/{address.device_id}"
        )
    check_times(message, registry, received_at or datetime.now(UTC))
    check_depths(message, address, registry)
    return address, message


def event_times(message: WireModel) -> Iterator[datetime]:
    """Every event time a message claims (a telemetry message's earlier readings too)."""
    time = getattr(message, "event_time", None)
    if isinstance(time, datetime):
        yield time
    if isinstance(message, Telemetry):
        yield from (reading.event_time for reading in message.earlier or ())


def check_times(message: WireModel, registry: Registry, received_at: datetime) -> None:
    """Raise :class:`ImplausibleTime` for a time before the epoch or past the allowed skew."""
    latest = received_at + registry.max_skew
    for time in event_times(message):
        if time < registry.earliest:
            raise ImplausibleTime(
                f"event time {time.isoformat()} is before the site's epoch"
                f" {registry.earliest.isoformat()} (intake.earliest_event_time): is the device's"
                " clock set?"
            )
        if time > latest:
            raise ImplausibleTime(
                f"event time {time.isoformat()} is {(time - received_at).total_seconds():.0f} s"
                f" after it was received ({received_at.isoformat()}); the allowed clock skew is"
                f" {registry.max_skew.total_seconds():.0f} s (intake.max_clock_skew)"
            )


def check_depths(message: WireModel, address: TopicAddress, registry: Registry) -> None:
    """Raise :class:`OutOfRange` for a water depth below the road or above the sensor."""
    if address.device_kind != "sensor":
        return
    values: list[Mapping[str, object]] = []
    if isinstance(message, Alert):
        values.append(message.attributes)
    elif isinstance(message, Telemetry):
        values += [metrics for _, _, metrics in message.readings()]
    ceiling = registry.max_depth_cm.get((address.site, address.device_id))
    for mapping in values:
        for key in DEPTH_KEYS:
            depth = mapping.get(key)
            if not isinstance(depth, int | float) or isinstance(depth, bool):
                continue
            if depth < 0 or (ceiling is not None and depth > ceiling):
                within = f"0–{ceiling:g}" if ceiling is not None else "≥ 0"
                raise OutOfRange(
                    f"{key} {depth:g} cm is outside what sensor {address.device_id} can measure"
                    f" ({within} cm: depth lies between the road and the sensor's mount height)"
                )
