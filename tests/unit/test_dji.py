"""DJI Cloud API messages: fixtures in the dock's format decode; malformed ones give typed errors."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from citywatch.hardware.dock import dji
from citywatch.hardware.dock.dji import (
    AircraftOsd,
    DjiError,
    DockOsd,
    FlightTaskProgress,
    MediaUploaded,
    OtherMessage,
    Topology,
    decode,
    reply_for,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "dji"
DOCK = "4TADKCM0010016"


def fixture(path: Path) -> tuple[str, bytes, dict[str, object]]:
    spec = json.loads(path.read_text())
    raw = spec["raw"].encode() if "raw" in spec else json.dumps(spec["payload"]).encode()
    return spec["topic"], raw, spec


def load(name: str) -> dji.DjiMessage:
    topic, raw, _ = fixture(DATA / "valid" / f"{name}.json")
    return decode(topic, raw, DOCK)


def test_update_topo_lists_the_aircraft() -> None:
    """update_topo with a sub-device names the aircraft; an empty list means it is offline."""
    assert load("topo_online").value == Topology(DOCK, ("1581F5BKD225D00A0001",))
    assert load("topo_offline").value == Topology(DOCK, ())


def test_dock_osd_decodes_by_serial() -> None:
    """OSD on the dock's own sn is dock state: mode, aircraft inside, charge."""
    value = load("dock_osd").value
    assert isinstance(value, DockOsd)
    assert (value.mode_code, value.drone_in_dock, value.drone_battery_percent) == (0, True, 87)


def test_aircraft_osd_reads_position_heights_and_battery() -> None:
    """Aircraft OSD: latitude/longitude, ellipsoid height, elevation, battery, mode."""
    value = load("aircraft_osd").value
    assert value == AircraftOsd("1581F5BKD225D00A0001", 31.4281, 119.4719, 100.2, 80.0, 76, 5, 52.3)


def test_aircraft_osd_accepts_lat_lng_and_numbers_as_strings() -> None:
    """lat/lng spellings, a flat capacity_percent and stringly numbers all decode."""
    message = load("aircraft_osd_strings_lng")
    assert isinstance(message.value, AircraftOsd)
    assert (message.value.lat, message.value.lon, message.value.battery_percent) == (
        31.4282,
        119.4720,
        75,
    )
    assert message.envelope.timestamp == datetime.fromtimestamp(1751335211, UTC)


def test_flighttask_progress_has_status_percent_and_flight_id() -> None:
    """flighttask_progress: output.status, output.progress.percent, output.ext.flight_id."""
    message = load("flighttask_progress")
    assert message.value == FlightTaskProgress(
        "d36f5b1b-9c0f-4a52-b0fc-7a1b5a3c9a10", "in_progress", 35
    )
    assert message.envelope.need_reply


def test_file_upload_callback_ties_the_photo_to_its_shoot_position() -> None:
    """The photo's object key, flight id, shoot position, altitudes and gimbal yaw."""
    value = load("file_upload_callback").value
    assert isinstance(value, MediaUploaded)
    assert value.object_key.endswith("_0003_W.jpeg")
    assert value.flight_id == "d36f5b1b-9c0f-4a52-b0fc-7a1b5a3c9a10"
    assert (value.lat, value.lon) == (31.4283, 119.4722)
    assert (value.relative_altitude_m, value.absolute_altitude_m) == (80.0, 100.2)
    assert value.gimbal_yaw_deg == 52.3
    assert value.gimbal_pitch_deg is None
    assert value.created == datetime(2025, 7, 1, 2, 0, 16, tzinfo=UTC)


def test_file_upload_callback_variant_spellings() -> None:
    """gimbal_yaw/gimbal_pitch, latitude/longitude, a top-level flight_id, need_reply "1"."""
    message = load("file_upload_callback_variant")
    value = message.value
    assert isinstance(value, MediaUploaded)
    assert (value.gimbal_yaw_deg, value.gimbal_pitch_deg, value.relative_altitude_m) == (
        -120.5,
        -45,
        60,
    )
    assert (value.lat, value.lon, value.flight_id) == (31.4290, 119.4730, "f-2")
    assert message.envelope.need_reply


@pytest.mark.parametrize("name", ["services_reply", "state"])
def test_uninterpreted_messages_decode_as_other(name: str) -> None:
    """Well-formed messages the agent does not use decode without error."""
    assert isinstance(load(name).value, OtherMessage)


def test_events_reply_answers_need_reply_with_the_same_tid_and_bid() -> None:
    """need_reply 1 → thing/product/{sn}/events_reply with tid, bid, method and result 0."""
    message = load("file_upload_callback")
    now = datetime(2025, 7, 1, 2, 0, 17, tzinfo=UTC)
    reply = reply_for(message, now)
    assert reply is not None
    topic, payload = reply
    body = json.loads(payload)
    assert topic == f"thing/product/{DOCK}/events_reply"
    assert body == {
        "tid": "t-7",
        "bid": "b-7",
        "timestamp": 1751335217000,
        "method": "file_upload_callback",
        "data": {"result": 0},
    }


def test_update_topo_gets_a_status_reply_and_osd_none() -> None:
    """The dock retries update_topo until answered; OSD needs no reply."""
    now = datetime.now(UTC)
    reply = reply_for(load("topo_online"), now)
    assert reply is not None and reply[0] == f"sys/product/{DOCK}/status_reply"
    assert reply_for(load("dock_osd"), now) is None


MALFORMED = sorted((DATA / "malformed").glob("*.json"))


@pytest.mark.parametrize("path", MALFORMED, ids=[p.stem for p in MALFORMED])
def test_malformed_fixture_raises_its_typed_error(path: Path) -> None:
    """Each malformed fixture raises the DjiError subclass it names, with a message."""
    topic, raw, spec = fixture(path)
    with pytest.raises(DjiError) as info:
        decode(topic, raw, DOCK)
    assert type(info.value).__name__ == spec["error"]
    assert str(info.value)


def test_there_are_malformed_fixtures() -> None:
    """Guards the parametrised test against an empty fixture folder."""
    assert len(MALFORMED) >= 10


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_escape_as_other_errors(payload: bytes) -> None:
    """Any bytes on a DJI topic either decode or raise DjiError."""
    for topic in ("thing/product/X/osd", "thing/product/X/events", "sys/product/X/status"):
        with contextlib.suppress(DjiError):
            decode(topic, payload, "X")


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["tid", "bid", "timestamp", "method", "need_reply", "data", "gateway"]),
        st.one_of(
            st.none(),
            st.integers(),
            st.text(max_size=5),
            st.floats(),
            st.lists(st.integers(), max_size=2),
        ),
    )
)
def test_arbitrary_envelopes_never_escape_as_other_errors(body: dict[str, object]) -> None:
    """Envelopes with any field types either decode or raise DjiError."""
    payload = json.dumps(body).encode()
    for topic in ("thing/product/X/osd", "thing/product/X/events", "sys/product/X/status"):
        with contextlib.suppress(DjiError):
            decode(topic, payload, "X")
