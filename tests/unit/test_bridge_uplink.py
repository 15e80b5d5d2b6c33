"""The bridge's routing without the stack (stream/bridge_uplink.py): the keys are those of
:func:`~citywatch.stream.partitioning.partition_key`, and only alerts' and docks' payloads
are read for them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from citywatch.contracts import (
    Alert,
    Channel,
    ContractError,
    DeviceRef,
    KafkaTopics,
    Location,
    TopicAddress,
    encode,
)
from citywatch.stream.bridge_uplink import Router
from citywatch.stream.partitioning import cell_key, partition_key

TOPICS = KafkaTopics("citywatch")
SENSOR = DeviceRef(site="demo", kind="sensor", id="wl-underpass-01")
CAMERA = DeviceRef(site="demo", kind="camera", id="cam-renmin-101")
POSITIONS = {("sensor", SENSOR.id): (31.43, 119.48), ("camera", CAMERA.id): (31.44, 119.47)}
RESOLUTION = 6


def parked_at(lat: float, lon: float) -> bytes:
    return encode(Alert(
        id="a.1.0", episode_id="a.1", seq=0, device=CAMERA, kind="illegal_parking", rule="r",
        phase="start", event_time=datetime(2026, 7, 1, tzinfo=UTC),
        location=Location(lat=lat, lon=lon), confidence=0.9,
    ))  # fmt: skip


def test_an_alert_is_keyed_by_its_own_position_read_from_each_payload() -> None:
    """Two alerts of one camera at two places: two cells, as partition_key gives them."""
    router = Router(TOPICS, POSITIONS, RESOLUTION)
    topic = CAMERA.address(Channel.ALERTS).topic
    here, there = parked_at(31.43, 119.48), parked_at(31.10, 119.10)
    assert router.route(topic, here) == (TOPICS.alerts, cell_key(31.43, 119.48, RESOLUTION))
    assert router.route(topic, there) == (TOPICS.alerts, cell_key(31.10, 119.10, RESOLUTION))
    address = TopicAddress.parse(topic)
    assert router.route(topic, there)[1] == partition_key(address, there, POSITIONS, RESOLUTION)


@pytest.mark.parametrize(
    "payload", [b"{}", b"not json at all", b""], ids=["object", "text", "empty"]
)
def test_telemetry_is_keyed_by_its_devices_place_whatever_its_payload(payload: bytes) -> None:
    """A placed sensor's telemetry: its configured cell, the payload never read (the bridge
    does not parse the bulk of what it forwards; the worker validates it)."""
    router = Router(TOPICS, POSITIONS, RESOLUTION)
    topic = SENSOR.address(Channel.TELEMETRY).topic
    assert router.route(topic, payload) == (TOPICS.telemetry, cell_key(31.43, 119.48, RESOLUTION))


def test_a_device_without_a_place_is_keyed_by_device() -> None:
    """No configured position and no payload position: the device key (its order kept)."""
    router = Router(TOPICS, {}, RESOLUTION)
    topic = SENSOR.address(Channel.STATUS).topic
    assert router.route(topic, b"{}") == (TOPICS.status, b"device:demo/sensor/wl-underpass-01")


def test_a_topic_that_is_not_a_device_topic_is_refused_with_the_reason() -> None:
    """Not citywatch/v1/{site}/{kind}/{id}/{channel}: a ContractError (dead-lettered)."""
    with pytest.raises(ContractError, match="is not citywatch/v1"):
        Router(TOPICS, POSITIONS, RESOLUTION).route("elsewhere/x", b"{}")
