"""Validation of bridged messages before anything is stored (pure).

Beyond the contract (size, JSON, version, type), the stream checks that the sender is a
registered device and that the device named in the payload is the one whose MQTT topic the
message arrived on: the broker ACL proves who published, the payload only claims it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from citywatch.config import CitywatchConfig
from citywatch.contracts import ContractError, MalformedMessage, TopicAddress, decode
from citywatch.contracts.messages import CHANNEL_TYPES, WireModel

MQTT_TOPIC_HEADER = "mqtt_topic"


class UnknownDevice(ContractError):
    """The topic names a device that is not in the registry."""


class DeviceMismatch(ContractError):
    """The payload's device differs from the device of the topic it was published on."""


class MissingTopic(ContractError):
    """A record reached the stream without the MQTT topic header the bridge always sets."""


@dataclass(frozen=True)
class Registry:
    """Known devices as (site, kind, id), from the config's device registry."""

    devices: frozenset[tuple[str, str, str]]

    @classmethod
    def from_config(cls, config: CitywatchConfig) -> Registry:
        site = config.site.id
        known = {(site, "gateway", g.id) for g in config.devices.gateways}
        known |= {(site, kind, device.id) for kind, device in config.devices.all()}
        return cls(frozenset(known))

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
) -> tuple[TopicAddress, WireModel]:
    """The message in a bridged record, or a :class:`ContractError` saying what is wrong."""
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
    return address, message
