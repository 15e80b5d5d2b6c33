"""The wire contract: topics, message models, versioning and the codec."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from citywatch.contracts import (
    Alert,
    Channel,
    DeviceRef,
    KafkaTopics,
    Location,
    MalformedMessage,
    MessageTooLarge,
    Receipt,
    Telemetry,
    TopicAddress,
    TopicError,
    UnsupportedVersion,
    WrongMessageType,
    decode,
    encode,
)
from citywatch.contracts.topics import device_subtree, fleet_filter

SENSOR = DeviceRef(site="demo", kind="sensor", id="wl-01")


def make_alert(**changes: object) -> Alert:
    fields: dict[str, object] = dict(
        id="wl-01.1700000000000.0",
        episode_id="wl-01.1700000000000",
        seq=0,
        device=SENSOR,
        kind="waterlogging",
        rule="depth_level",
        phase="start",
        event_time=datetime(2026, 7, 1, 8, 0, tzinfo=UTC),
        location=Location(lat=31.43, lon=119.48),
        confidence=1.0,
        attributes={"depth_cm": 16.5, "level": "lane"},
    )
    fields.update(changes)
    return Alert.model_validate(fields)


def test_alert_round_trips_through_the_codec() -> None:
    """encode then decode gives back an equal alert."""
    alert = make_alert()
    assert decode(encode(alert), Alert) == alert


def test_every_message_carries_the_schema_version() -> None:
    """The encoded JSON has the schema version (1.1) and its type."""
    raw = json.loads(encode(make_alert()))
    assert raw["v"] == "1.2" and raw["type"] == "alert"


def test_event_time_is_normalised_to_utc() -> None:
    """A local time from a gateway is stored as the same instant in UTC."""
    shanghai = timezone(timedelta(hours=8))
    alert = make_alert(event_time=datetime(2026, 7, 1, 16, 0, tzinfo=shanghai))
    assert alert.event_time == datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
    assert alert.event_time.utcoffset() == timedelta(0)


def test_naive_event_time_is_refused() -> None:
    """A time without a zone is ambiguous and rejected."""
    data = json.loads(encode(make_alert()))
    data["event_time"] = "2026-07-01T08:00:00"
    with pytest.raises(MalformedMessage, match="event_time"):
        decode(json.dumps(data).encode())


@pytest.mark.parametrize(
    ("version", "error"),
    [
        ("2.0", UnsupportedVersion),
        ("0.9", UnsupportedVersion),
        (1, UnsupportedVersion),
        ("x", UnsupportedVersion),
    ],
)
def test_unknown_major_version_is_a_typed_error(version: object, error: type[Exception]) -> None:
    """Another major version (or a malformed one) raises UnsupportedVersion."""
    data = json.loads(encode(make_alert()))
    data["v"] = version
    with pytest.raises(error):
        decode(json.dumps(data).encode())


def test_newer_minor_version_with_extra_fields_is_accepted() -> None:
    """1.7 may add optional fields; a 1.0 reader ignores them."""
    data = json.loads(encode(make_alert()))
    data.update(v="1.7", future_field={"x": 1})
    assert decode(json.dumps(data).encode(), Alert).id == make_alert().id


def sampled(count: int) -> Telemetry:
    """A sensor's report at 08:00:10 carrying ``count`` earlier one-second samples."""
    last = datetime(2026, 7, 1, 8, 0, 10, tzinfo=UTC)
    earlier = [
        {"event_time": last - timedelta(seconds=count - n), "metrics": {"depth_cm": n}}
        for n in range(count)
    ]
    return Telemetry.model_validate(
        dict(
            id="wl-01.t1",
            device=SENSOR,
            event_time=last,
            metrics={"depth_cm": 9.0},
            earlier=earlier,
        )
    )


def test_telemetry_carries_earlier_readings_each_with_its_own_row_id() -> None:
    """One message with nine earlier samples is ten readings, oldest first, its own last;
    the row ids are stable, so a resent message upserts the same rows."""
    report = decode(encode(sampled(9)), Telemetry)
    rows = report.readings()
    assert [r[0] for r in rows] == [f"wl-01.t1.{n}" for n in range(9)] + ["wl-01.t1"]
    assert [r[1].second for r in rows] == list(range(1, 11))
    assert rows[-1][2] == {"depth_cm": 9.0}
    assert decode(encode(sampled(9)), Telemetry).readings() == rows


def test_telemetry_without_earlier_readings_is_one_reading_and_omits_the_field() -> None:
    """A 1.0-style message is unchanged on the wire and is a single reading."""
    single = Telemetry(id="t1", device=SENSOR, event_time=datetime.now(UTC), metrics={"a": 1})
    assert "earlier" not in json.loads(encode(single))
    assert [r[0] for r in single.readings()] == ["t1"]


def test_earlier_readings_must_be_older_and_bounded() -> None:
    """A reading at or after the message's own time, or more than 1,000 of them, is refused
    with the field named (the stream dead-letters such a message)."""
    late = json.loads(encode(sampled(3)))
    late["earlier"][1]["event_time"] = late["event_time"]
    with pytest.raises(MalformedMessage, match="older than event_time"):
        decode(json.dumps(late).encode(), Telemetry)
    too_many = json.loads(encode(sampled(3)))
    too_many["earlier"] = too_many["earlier"] * 334
    with pytest.raises(MalformedMessage, match="earlier"):
        decode(json.dumps(too_many).encode(), Telemetry)


def test_wrong_type_for_the_channel_is_a_typed_error() -> None:
    """A telemetry message where an alert is expected raises WrongMessageType."""
    telemetry = Telemetry(
        id="t1", device=SENSOR, event_time=datetime.now(UTC), metrics={"depth_cm": 1}
    )
    with pytest.raises(WrongMessageType, match="expected a 'alert'"):
        decode(encode(telemetry), Alert)


def test_wrong_field_type_names_the_field() -> None:
    """confidence as text fails with the field path in the message."""
    data = json.loads(encode(make_alert()))
    data["confidence"] = "high"
    with pytest.raises(MalformedMessage, match="confidence"):
        decode(json.dumps(data).encode())


def test_oversized_message_is_refused_before_parsing() -> None:
    """Evidence travels by reference; a 1 MB message is refused."""
    with pytest.raises(MessageTooLarge):
        decode(b"{" + b" " * 1_000_000 + b"}")


@pytest.mark.parametrize("payload", [b"not json", b"[1, 2]", b"\xff\xfe", b'{"v": "1.0"}'])
def test_garbage_is_malformed_or_untyped(payload: bytes) -> None:
    """Non-JSON, non-objects and objects without a type are contract errors."""
    with pytest.raises((MalformedMessage, WrongMessageType)):
        decode(payload)


@given(st.binary(max_size=512))
def test_decode_never_raises_anything_but_contract_errors(payload: bytes) -> None:
    """Whatever bytes arrive, decode raises only ContractError subclasses (dead-letterable)."""
    from citywatch.contracts import ContractError

    with contextlib.suppress(ContractError):
        decode(payload)


def test_location_needs_a_zone_or_a_point() -> None:
    """A location with neither zone nor lat/lon, or half a point, is invalid."""
    with pytest.raises(ValueError, match="zone"):
        Location()
    with pytest.raises(ValueError, match="together"):
        Location(lat=31.0)
    assert Location(zone="curb").zone == "curb"


def test_topic_layout_round_trips() -> None:
    """A device topic parses back into its parts."""
    address = SENSOR.address(Channel.ALERTS)
    assert address.topic == "citywatch/v1/demo/sensor/wl-01/alerts"
    assert TopicAddress.parse(address.topic) == address
    assert address.with_channel(Channel.RECEIPTS).topic.endswith("/wl-01/receipts")


@pytest.mark.parametrize(
    "topic",
    [
        "citywatch/v2/demo/sensor/wl-01/alerts",
        "citywatch/v1/demo/sensor/wl-01/unknown",
        "other/v1/demo/sensor/wl-01/alerts",
        "citywatch/v1/demo/sensor/alerts",
        "citywatch/v1/demo/sensor/+/alerts",
    ],
)
def test_malformed_topics_are_refused(topic: str) -> None:
    """Wrong root, version, channel, depth or a wildcard level raises TopicError."""
    with pytest.raises(TopicError):
        TopicAddress.parse(topic)


def test_device_ids_cannot_escape_their_subtree() -> None:
    """An id with a slash or wildcard cannot be a device id."""
    with pytest.raises(ValueError):
        DeviceRef(site="demo", kind="sensor", id="a/b")
    with pytest.raises(ValueError):
        DeviceRef(site="demo", kind="sensor", id="#")


def test_filters_and_kafka_names() -> None:
    """The ACL subtree, the fleet filter and Kafka topic names follow the layout."""
    assert device_subtree("demo", "sensor", "wl-01") == "citywatch/v1/demo/sensor/wl-01/#"
    assert fleet_filter(Channel.ALERTS) == "citywatch/v1/+/+/+/alerts"
    topics = KafkaTopics()
    assert topics.for_channel(Channel.ALERTS) == "citywatch.alerts"
    assert topics.dead_letters == "citywatch.dead-letters"


def test_receipt_refers_to_the_message_it_confirms() -> None:
    """A receipt carries the id of the stored message and the device to return to."""
    receipt = Receipt(
        id="r.1", message_id="a.1", device=SENSOR, status="stored", received_at=datetime.now(UTC)
    )
    assert decode(encode(receipt), Receipt).message_id == "a.1"


@pytest.mark.parametrize(
    "changes",
    [{"rule": "a\x00b"}, {"attributes": {"x": float("nan")}}, {"confidence": float("inf")},
     {"attributes": {"z": "\udc00"}}, {"attributes": {str(n): n for n in range(65)}}],
    ids=["NUL", "NaN attribute", "infinite confidence", "lone surrogate", "65 attributes"],
)  # fmt: skip
def test_a_gateway_cannot_build_an_alert_the_stream_would_refuse(
    changes: dict[str, object],
) -> None:
    """The same storability rules hold where messages are made: the edge fails early and loudly."""
    with pytest.raises(ValidationError):
        make_alert(**changes)


def test_level_and_dwell_of_an_older_gateway_are_lifted_into_their_fields() -> None:
    """A 1.1 gateway sends ``level`` and ``dwell_s`` as attributes; readers get typed fields
    either way, and the alerts table keeps them in its attributes column as before."""
    legacy = make_alert(v="1.1", attributes={"depth_cm": 16.5, "level": "lane", "dwell_s": 42.0})
    assert (legacy.level, legacy.dwell_s) == ("lane", 42.0)
    assert legacy.attributes == {"depth_cm": 16.5}
    current = make_alert(level="lane", dwell_s=42.0, attributes={"depth_cm": 16.5})
    assert decode(encode(current), Alert) == current
    assert json.loads(encode(current))["level"] == "lane"
    assert current.stored_attributes() == {"depth_cm": 16.5, "dwell_s": 42.0, "level": "lane"}
