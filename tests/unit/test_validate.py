"""What the stream refuses before anything is stored (each becomes a dead letter)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from citywatch.config import load_config
from citywatch.contracts import (
    Alert,
    Channel,
    ContractError,
    DeviceRef,
    Location,
    MalformedMessage,
    Telemetry,
    TopicError,
    WrongMessageType,
    encode,
)
from citywatch.contracts.messages import Reading
from citywatch.stream.validate import (
    DeviceMismatch,
    ImplausibleTime,
    MissingTopic,
    OutOfRange,
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


ALERTS_TOPIC = headers(SENSOR.address(Channel.ALERTS).topic)
TELEMETRY_TOPIC = headers(SENSOR.address(Channel.TELEMETRY).topic)


def raw_alert(**changes: object) -> dict[str, object]:
    """A valid alert as the JSON object a device sends, with ``changes`` applied."""
    message: dict[str, object] = json.loads(alert())
    message["attributes"] = {"depth_cm": 20.0, "level": "lane"}
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        target = message
        for name in parents:
            target = target[name]  # type: ignore[assignment,index]
        target[leaf] = value  # type: ignore[index]
    return message


def as_bytes(message: dict[str, object]) -> bytes:
    """JSON as Python writes it: non-ASCII as \\u escapes, NaN and Infinity as literals."""
    return json.dumps(message, allow_nan=True).encode()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"rule": "depth\x00level"}, "rule: contains a NUL"),
        ({"location__zone": "under\ud800pass"}, "location.zone: contains a lone surrogate"),
        ({"attributes__note": "a\x00b"}, "attributes.note: contains a NUL"),
        ({"attributes__x\x00": 1}, "attributes key: contains a NUL"),
        ({"attributes__ratio": float("nan")}, "attributes.ratio"),
        ({"attributes__ratio": float("inf")}, "attributes.ratio"),
        ({"confidence": float("nan")}, "confidence"),
    ],
    ids=[
        "NUL in rule",
        "surrogate in zone",
        "NUL in value",
        "NUL in key",
        "NaN",
        "inf",
        "NaN conf",
    ],
)
def test_what_the_database_would_refuse_is_refused_before_it(
    changes: dict[str, object], field: str
) -> None:
    """NUL, lone surrogates, NaN and infinities pass JSON but not PostgreSQL: refused here,
    naming the field, so the record is dead-lettered alone instead of failing its batch."""
    with pytest.raises(MalformedMessage, match=re.escape(field)):
        validate_record(as_bytes(raw_alert(**changes)), ALERTS_TOPIC, REGISTRY)


def test_escaped_text_that_is_valid_unicode_passes() -> None:
    """An escaped surrogate pair (an emoji) and escaped Chinese are real text: accepted."""
    message = raw_alert(rule="积水😀", location__zone="人民路")
    _, parsed = validate_record(as_bytes(message), ALERTS_TOPIC, REGISTRY)
    assert isinstance(parsed, Alert) and parsed.rule == "积水😀"


@pytest.mark.parametrize(
    "event_time",
    [
        "0001-01-01T00:00:00Z",
        "1970-01-01T00:00:00Z",
        "2101-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
    ],
)
def test_alerts_from_a_broken_clock_are_refused(event_time: str) -> None:
    """Times before the site's epoch or past the allowed skew are a clock fault, not an event
    (stored, they became work orders escalated to the district at once)."""
    with pytest.raises(ImplausibleTime):
        validate_record(as_bytes(raw_alert(event_time=event_time)), ALERTS_TOPIC, REGISTRY)


def test_event_time_may_lead_the_receive_time_by_the_allowed_skew_only() -> None:
    """Four minutes ahead passes (5 min skew by default); six minutes ahead does not; the
    bound is the record's receive time when given, so a replay judges as the live run did."""
    received = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
    ahead = raw_alert(event_time=(received + timedelta(minutes=4)).isoformat())
    validate_record(as_bytes(ahead), ALERTS_TOPIC, REGISTRY, received_at=received)
    too_far = raw_alert(event_time=(received + timedelta(minutes=6)).isoformat())
    with pytest.raises(ImplausibleTime, match="allowed clock skew is 300 s"):
        validate_record(as_bytes(too_far), ALERTS_TOPIC, REGISTRY, received_at=received)


def test_an_earlier_reading_from_a_broken_clock_refuses_its_telemetry() -> None:
    """Every time a telemetry message carries is checked, its earlier readings too."""
    now = datetime.now(UTC)
    message = Telemetry(id="t.1", device=SENSOR, event_time=now, metrics={"depth_cm": 3.0},
                        earlier=(Reading(event_time=datetime(1970, 1, 1, tzinfo=UTC), metrics={"depth_cm": 2.0}),))  # fmt: skip
    with pytest.raises(ImplausibleTime, match="epoch"):
        validate_record(encode(message), TELEMETRY_TOPIC, REGISTRY)


@pytest.mark.parametrize(
    ("attributes", "error"),
    [
        ({"depth_cm": -500.0}, "depth_cm -500 cm"),
        ({"depth_cm": -999}, "depth_cm -999 cm"),
        ({"depth_cm": 20.0, "peak_depth_cm": 301.0}, "peak_depth_cm 301 cm"),
    ],
)
def test_depths_a_sensor_cannot_measure_are_refused(
    attributes: dict[str, object], error: str
) -> None:
    """A depth lies between the road (0) and the sensor's mount height (300 cm here)."""
    with pytest.raises(OutOfRange, match=error):
        validate_record(as_bytes(raw_alert(attributes=attributes)), ALERTS_TOPIC, REGISTRY)
    telemetry = Telemetry(id="t.2", device=SENSOR, event_time=datetime.now(UTC),
                          metrics={"depth_cm": -500.0})  # fmt: skip
    with pytest.raises(OutOfRange):
        validate_record(encode(telemetry), TELEMETRY_TOPIC, REGISTRY)


def test_depths_within_the_sensors_range_pass() -> None:
    """A dry road (0) and the mount height itself are both measurable."""
    for depth in (0.0, 300.0):
        message = raw_alert(attributes={"depth_cm": depth, "peak_depth_cm": depth})
        validate_record(as_bytes(message), ALERTS_TOPIC, REGISTRY)


ANY_CHARACTER = st.characters(exclude_categories=())
"""Every code point, lone surrogates (Cs) and NUL included."""


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rule=st.text(ANY_CHARACTER, min_size=1, max_size=20),
    zone=st.text(ANY_CHARACTER, min_size=1, max_size=20),
    key=st.text(ANY_CHARACTER, min_size=1, max_size=10),
    value=st.one_of(st.text(ANY_CHARACTER, max_size=20), st.floats(), st.integers(), st.booleans()),
)
def test_whatever_passes_validation_can_be_stored(
    rule: str, zone: str, key: str, value: object
) -> None:
    """Any text or number a device sends ends refused with a reason or storable as it is:
    valid UTF-8 without NUL, finite numbers (what PostgreSQL text and jsonb take)."""
    message = raw_alert(rule=rule, location__zone=zone, attributes={key: value})
    try:
        _, parsed = validate_record(as_bytes(message), ALERTS_TOPIC, REGISTRY)
    except ContractError as exc:
        assert str(exc)
        return
    text = json.dumps(parsed.model_dump(mode="json"), allow_nan=False, ensure_ascii=False)
    assert "\x00" not in text
    text.encode("utf-8")
