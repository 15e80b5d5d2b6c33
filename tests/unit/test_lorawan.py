"""LoRaWAN uplinks: ChirpStack v4 and v3 fixtures decode, malformed ones fail clearly."""

from __future__ import annotations

import base64
import contextlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from citywatch.hardware.water.codecs import CodecError, decode_em500_udl, encode_em500_udl
from citywatch.hardware.water.lorawan import (
    MalformedUplink,
    PayloadError,
    UplinkError,
    encode_chirpstack_v3,
    encode_chirpstack_v4,
    parse_uplink,
    readings_from_uplink,
)

DATA = Path(__file__).parents[1] / "data" / "lorawan"
EUI = "24e124126c091234"
TOPIC = f"application/17c82e96-be03-4f38-aef3-f83d48582d97/device/{EUI}/event/up"
RECEIVED = datetime(2025, 7, 1, 8, 0, 9, tzinfo=UTC)


def fixture(name: str) -> bytes:
    return (DATA / name).read_bytes()


@pytest.mark.parametrize(
    ("name", "fmt", "time"),
    [
        (
            "chirpstack_v4_em500_udl.json",
            "chirpstack_v4",
            datetime(2025, 7, 1, 8, 0, 5, 775023, tzinfo=UTC),
        ),
        (
            "chirpstack_v3_em500_udl.json",
            "chirpstack_v3",
            datetime(2025, 7, 1, 8, 0, 5, 48445, tzinfo=UTC),
        ),
    ],
)
def test_chirpstack_uplink_decodes_to_distance_and_battery(
    name: str, fmt: str, time: datetime
) -> None:
    """v4 (deviceInfo, hex devEui) and v3 (base64 devEUI, loRaSNR) give the same reading."""
    uplink = parse_uplink(fixture(name), TOPIC)
    assert (uplink.format, uplink.dev_eui, uplink.f_cnt, uplink.f_port) == (fmt, EUI, 112, 85)
    assert (uplink.rssi, uplink.snr) == (-97.0, 6.5)
    (reading,) = readings_from_uplink(uplink, "milesight_em500_udl", RECEIVED)
    assert (reading.distance_mm, reading.battery_pct, reading.time) == (3000.0, 100.0, time)


def test_v3_legacy_hex_eui_with_history_gives_the_stored_reading_first() -> None:
    """The legacy v3 marshaller's hex devEUI is read; a history record comes before the current one."""
    uplink = parse_uplink(fixture("chirpstack_v3_legacy_hex_eui_history.json"))
    readings = readings_from_uplink(uplink, "milesight_em500_udl", RECEIVED)
    assert [(r.time, r.distance_mm) for r in readings] == [
        (datetime(2025, 7, 1, 9, 19, 12, tzinfo=UTC), 3000.0),
        (datetime(2025, 7, 1, 8, 0, 5, 48445, tzinfo=UTC), 4000.0),
    ]


def test_device_info_frame_gives_no_reading() -> None:
    """The join-time attribute frame (firmware, serial number) is valid and carries no distance."""
    uplink = parse_uplink(fixture("chirpstack_v4_device_info.json"))
    assert readings_from_uplink(uplink, "milesight_em500_udl", RECEIVED) == []
    assert decode_em500_udl(uplink.data).info["serial_number"] == "6136b29842150012"


MALFORMED = {
    "not_json.json": (MalformedUplink, "not valid JSON"),
    "array.json": (MalformedUplink, "not an object"),
    "bad_base64.json": (MalformedUplink, "not valid base64"),
    "short_dev_eui.json": (MalformedUplink, "16-digit hex DevEUI"),
    "fcnt_as_string.json": (MalformedUplink, "fCnt must be a non-negative integer"),
    "neither_v3_nor_v4.json": (MalformedUplink, "neither deviceInfo"),
    "bad_time.json": (MalformedUplink, "not an RFC 3339 time"),
    "v3_short_base64_eui.json": (MalformedUplink, "decodes to 2 bytes"),
    "truncated_distance.json": (PayloadError, "truncated: distance"),
    "unknown_channel.json": (PayloadError, "unknown channel 0x05 type 0x67"),
}


def test_every_malformed_fixture_is_covered() -> None:
    assert sorted(p.name for p in (DATA / "malformed").iterdir()) == sorted(MALFORMED)


@pytest.mark.parametrize(("name", "expected"), MALFORMED.items(), ids=list(MALFORMED))
def test_malformed_uplink_raises_a_typed_error_saying_what_is_wrong(
    name: str, expected: tuple[type[UplinkError], str]
) -> None:
    """Each malformed fixture fails with its own UplinkError subclass and message."""
    error, message = expected
    with pytest.raises(error, match=message):
        uplink = parse_uplink(fixture(f"malformed/{name}"))
        readings_from_uplink(uplink, "milesight_em500_udl", RECEIVED)


def test_topic_naming_another_device_is_refused() -> None:
    """A v4 event on another device's topic is malformed (a misrouted or forged message)."""
    with pytest.raises(MalformedUplink, match="topic names device"):
        parse_uplink(fixture("chirpstack_v4_em500_udl.json"), TOPIC.replace(EUI, "0" * 16))


def test_unknown_codec_is_a_payload_error() -> None:
    uplink = parse_uplink(fixture("chirpstack_v4_em500_udl.json"))
    with pytest.raises(PayloadError, match="no codec named"):
        readings_from_uplink(uplink, "dragino_ldds75", RECEIVED)


@given(
    distance=st.integers(0, 65535),
    battery=st.integers(0, 100),
    version=st.sampled_from(["v3", "v4"]),
)
def test_simulator_uplinks_round_trip_through_the_adapter(
    distance: int, battery: int, version: str
) -> None:
    """What the simulated network server publishes, the adapter reads back exactly."""
    data = encode_em500_udl(distance, battery)
    if version == "v4":
        topic, payload = encode_chirpstack_v4(
            dev_eui=EUI, application_id="app-1", data=data, time=RECEIVED, f_cnt=7
        )
    else:
        topic, payload = encode_chirpstack_v3(
            dev_eui=EUI, application_id=3, data=data, time=RECEIVED, f_cnt=7
        )
    (reading,) = readings_from_uplink(parse_uplink(payload, topic), "milesight_em500_udl", RECEIVED)
    assert (reading.distance_mm, reading.battery_pct, reading.time) == (distance, battery, RECEIVED)


@given(st.binary(max_size=40))
def test_codec_never_fails_with_anything_but_a_codec_error(data: bytes) -> None:
    """Arbitrary bytes decode or raise CodecError; nothing else escapes."""
    with contextlib.suppress(CodecError):
        decode_em500_udl(data)


@given(st.text(max_size=200) | st.binary(max_size=200))
def test_parser_never_fails_with_anything_but_an_uplink_error(payload: str | bytes) -> None:
    """Arbitrary messages on the uplink topic parse or raise UplinkError."""
    with contextlib.suppress(UplinkError):
        parse_uplink(payload)


def test_vendor_example_payload() -> None:
    """The vendor's documented example: 017564 03821E00 → battery 100 %, distance 30 mm."""
    decoded = decode_em500_udl(bytes.fromhex("01756403821e00"))
    assert (decoded.battery_pct, decoded.distance_mm) == (100.0, 30.0)
    assert base64.b64encode(encode_em500_udl(30, 100)) == base64.b64encode(
        bytes.fromhex("01756403821e00")
    )
