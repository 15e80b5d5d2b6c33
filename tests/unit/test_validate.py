"""What the stream refuses before anything is stored (each becomes a dead letter)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from citywatch.config import load_config
from citywatch.contracts import (
    Alert,
    Channel,
    DeviceRef,
    Location,
    MalformedMessage,
    TopicError,
    WrongMessageType,
    encode,
)
from citywatch.stream.validate import (
    DeviceMismatch,
    MissingTopic,
    Registry,
    UnknownDevice,
    validate_record,
)
from tests.conftest import DEMO_CONFIG

REGISTRY = Registry.from_config(load_config(DEMO_CONFIG))
SENSOR = DeviceRef(site="demo", kind="sensor", id="wl-underpass-01")


def alert(device: DeviceRef = SENSOR) -> bytes:
    return encode(
        Alert(id="a.0", episode_id="a", seq=0, device=device, kind="waterlogging", rule="depth_level",
              phase="start", event_time=datetime.now(UTC), location=Location(lat=31.4, lon=119.4), confidence=1)
    )  # fmt: skip


def headers(topic: str) -> dict[str, bytes]:
    return {"mqtt_topic": topic.encode()}


def test_valid_alert_from_its_own_topic_passes() -> None:
    """A registered device's alert on its own alerts topic is accepted."""
    address, message = validate_record(
        alert(), headers(SENSOR.address(Channel.ALERTS).topic), REGISTRY
    )
    assert address.device_id == "wl-underpass-01" and isinstance(message, Alert)


@pytest.mark.parametrize(
    ("value", "topic", "error"),
    [
        (alert(), None, MissingTopic),
        (alert(), "citywatch/v1/demo/sensor/not-registered/alerts", UnknownDevice),
        (
            alert(DeviceRef(site="demo", kind="sensor", id="wl-hebin-02")),
            SENSOR.address(Channel.ALERTS).topic,
            DeviceMismatch,
        ),
        (alert(), "citywatch/v1/demo/sensor/wl-underpass-01/nonsense", TopicError),
        (b"{not json", SENSOR.address(Channel.ALERTS).topic, MalformedMessage),
        (alert(), SENSOR.address(Channel.TELEMETRY).topic, WrongMessageType),
    ],
    ids=[
        "no topic header",
        "unknown device",
        "spoofed device",
        "bad topic",
        "not json",
        "alert on telemetry",
    ],
)
def test_refusals_are_typed(value: bytes, topic: str | None, error: type[Exception]) -> None:
    """Each kind of bad record raises its own ContractError subclass (its dead-letter class)."""
    with pytest.raises(error):
        validate_record(value, headers(topic) if topic else {}, REGISTRY)


def test_kafka_header_pairs_are_read_like_a_mapping() -> None:
    """Kafka hands headers over as (name, bytes) pairs; the bridge's topic is found among them."""
    topic = SENSOR.address(Channel.ALERTS).topic.encode()
    pairs = [("traceparent", b"00-abc"), ("mqtt_topic", topic)]
    address, _ = validate_record(alert(), pairs, REGISTRY)
    assert address.device_id == "wl-underpass-01"
    with pytest.raises(MissingTopic):
        validate_record(alert(), [("traceparent", b"00-abc")], REGISTRY)


def test_a_bad_topic_is_refused_every_time_it_comes() -> None:
    """Topics are parsed once and remembered, but only good ones: a bad one never gets in."""
    bad = headers("citywatch/v1/demo/sensor/wl-underpass-01/nonsense")
    for _ in range(2):
        with pytest.raises(TopicError):
            validate_record(alert(), bad, REGISTRY)
