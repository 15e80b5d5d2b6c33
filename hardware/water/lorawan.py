"""LoRaWAN uplinks as ChirpStack's MQTT integration publishes them, and back (for the simulator).

ChirpStack v4 publishes ``application/{application_id}/device/{dev_eui}/event/up`` with
``deviceInfo.devEui`` (hex), ``time``, ``fCnt``, ``fPort``, a base64 ``data`` and an
``rxInfo`` list (``gatewayId``, ``rssi``, ``snr``). ChirpStack v3 used the same topic layout
but other field names: a top-level ``devEUI`` (base64 with its JSON marshaller, hex with the
legacy one), ``applicationID``, and ``rxInfo`` with ``gatewayID`` and ``loRaSNR``. Both
parse into one :class:`Uplink`; :func:`readings_from_uplink` runs the unit's payload codec
and returns plain :class:`WaterReading`\\ s.

Every malformed message raises an :class:`UplinkError` subclass with a message that says
what was wrong; the caller counts, logs and goes on.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from citywatch.hardware.water.codecs import CODECS, CodecError
from citywatch.hardware.water.reading import WaterReading

__all__ = [
    "MalformedUplink",
    "PayloadError",
    "Uplink",
    "UplinkError",
    "encode_chirpstack_v3",
    "encode_chirpstack_v4",
    "parse_uplink",
    "readings_from_uplink",
    "uplink_topic",
]

_TOPIC = re.compile(r"^application/([^/]+)/device/([^/]+)/event/up$")
_HEX_EUI = re.compile(r"^[0-9A-Fa-f]{16}$")
MAX_UPLINK_BYTES = 64 * 1024
"""A ChirpStack uplink event is a few hundred bytes; anything this large is not one."""


class UplinkError(ValueError):
    """A message on the uplink topic that yields no reading; the message says why."""


class MalformedUplink(UplinkError):
    """Not a ChirpStack uplink event: bad JSON, a missing or mistyped field, a topic mismatch."""


class PayloadError(UplinkError):
    """A well-formed uplink whose ``data`` does not follow the configured codec."""


@dataclass(frozen=True)
class Uplink:
    """The parts of one uplink event that matter to a water-level gateway."""

    format: Literal["chirpstack_v4", "chirpstack_v3"]
    dev_eui: str
    """Lower-case hex, 16 digits."""
    application_id: str | None
    f_cnt: int | None
    f_port: int | None
    data: bytes
    time: datetime | None
    """When the network server received it (aware UTC); ``None`` if the event has no time."""
    rssi: float | None = None
    snr: float | None = None


def uplink_topic(application_id: str, dev_eui: str) -> str:
    """The MQTT topic ChirpStack (v3 and v4) publishes a device's uplinks on."""
    return f"application/{application_id}/device/{dev_eui.lower()}/event/up"


def parse_uplink(payload: bytes | str, topic: str | None = None) -> Uplink:
    """Parse a ChirpStack v4 or v3 uplink event; check it against its topic when given."""
    if len(payload) > MAX_UPLINK_BYTES:
        raise MalformedUplink(f"uplink is {len(payload)} bytes; an uplink event is far smaller")
    try:
        raw = json.loads(payload)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedUplink(f"uplink is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise MalformedUplink(f"uplink is a JSON {type(raw).__name__}, not an object")
    if isinstance(raw.get("deviceInfo"), dict):
        uplink = _parse_v4(raw)
    elif "devEUI" in raw:
        uplink = _parse_v3(raw)
    else:
        raise MalformedUplink(
            "uplink has neither deviceInfo (ChirpStack v4) nor devEUI (ChirpStack v3):"
            f" keys {sorted(raw)[:8]}"
        )
    if topic is not None:
        match = _TOPIC.match(topic)
        if match is None:
            raise MalformedUplink(
                f"topic {topic!r} is not application/{{id}}/device/{{devEui}}/event/up"
            )
        if match.group(2).lower() != uplink.dev_eui:
            raise MalformedUplink(
                f"topic names device {match.group(2)} but the event is from {uplink.dev_eui}"
            )
    return uplink


def _parse_v4(raw: dict[str, Any]) -> Uplink:
    info = raw["deviceInfo"]
    dev_eui = _hex_eui(info.get("devEui"), "deviceInfo.devEui")
    rx = _first_rx(raw)
    return Uplink(
        format="chirpstack_v4",
        dev_eui=dev_eui,
        application_id=_optional_str(info.get("applicationId"), "deviceInfo.applicationId"),
        f_cnt=_optional_int(raw.get("fCnt"), "fCnt"),
        f_port=_optional_int(raw.get("fPort"), "fPort"),
        data=_data(raw.get("data")),
        time=_optional_time(raw.get("time"), "time")
        or _optional_time(rx.get("gwTime"), "rxInfo[0].gwTime")
        or _optional_time(rx.get("nsTime"), "rxInfo[0].nsTime"),
        rssi=_optional_float(rx.get("rssi"), "rxInfo[0].rssi"),
        snr=_optional_float(rx.get("snr"), "rxInfo[0].snr"),
    )


def _parse_v3(raw: dict[str, Any]) -> Uplink:
    value = raw.get("devEUI")
    if isinstance(value, str) and _HEX_EUI.match(value):
        dev_eui = value.lower()
    else:
        dev_eui = _base64_eui(value)
    rx = _first_rx(raw)
    application = raw.get("applicationID")
    return Uplink(
        format="chirpstack_v3",
        dev_eui=dev_eui,
        application_id=None if application is None else str(application),
        f_cnt=_optional_int(raw.get("fCnt"), "fCnt"),
        f_port=_optional_int(raw.get("fPort"), "fPort"),
        data=_data(raw.get("data")),
        time=_optional_time(raw.get("time"), "time")
        or _optional_time(rx.get("time"), "rxInfo[0].time"),
        rssi=_optional_float(rx.get("rssi"), "rxInfo[0].rssi"),
        snr=_optional_float(rx.get("loRaSNR"), "rxInfo[0].loRaSNR"),
    )


def readings_from_uplink(uplink: Uplink, codec: str, received_at: datetime) -> list[WaterReading]:
    """The readings an uplink carries, oldest first: retransmitted history, then the current.

    The current reading is timed by the network server (``time``), else by ``received_at``.
    An uplink with no distance (a join-time info frame, an empty MAC-only frame) gives none.
    """
    decoder = CODECS.get(codec)
    if decoder is None:
        raise PayloadError(f"no codec named {codec!r}; known: {sorted(CODECS)}")
    if not uplink.data:
        return []
    try:
        decoded = decoder(uplink.data)
    except CodecError as exc:
        raise PayloadError(f"device {uplink.dev_eui} fCnt {uplink.f_cnt}: {exc}") from None
    readings = [
        WaterReading(distance_mm=distance, battery_pct=decoded.battery_pct, time=time)
        for time, distance in decoded.history
    ]
    if decoded.distance_mm is not None:
        time = uplink.time or received_at
        readings.append(
            WaterReading(
                distance_mm=decoded.distance_mm,
                battery_pct=decoded.battery_pct,
                time=time.astimezone(UTC),
            )
        )
    return readings


# -- encoding (the simulator's network server) ------------------------------------------------
def encode_chirpstack_v4(
    *,
    dev_eui: str,
    application_id: str,
    data: bytes,
    time: datetime,
    f_cnt: int,
    f_port: int = 85,
    device_name: str = "",
    gateway_id: str = "0016c001f153a14c",
    rssi: int = -80,
    snr: float = 7.5,
) -> tuple[str, bytes]:
    """(topic, payload) of a ChirpStack v4 uplink event carrying ``data``."""
    event = {
        "deduplicationId": f"{dev_eui.lower()}-{f_cnt}",
        "time": time.astimezone(UTC).isoformat(),
        "deviceInfo": {
            "tenantId": "52f14cd4-c6f1-4fbd-8f87-4025e1d49242",
            "tenantName": "citywatch-sim",
            "applicationId": application_id,
            "applicationName": "waterlogging",
            "deviceProfileName": "Milesight EM500-UDL",
            "deviceName": device_name or dev_eui.lower(),
            "devEui": dev_eui.lower(),
        },
        "devAddr": dev_eui.lower()[-8:],
        "adr": True,
        "dr": 5,
        "fCnt": f_cnt,
        "fPort": f_port,
        "confirmed": False,
        "data": base64.b64encode(data).decode(),
        "rxInfo": [
            {
                "gatewayId": gateway_id,
                "uplinkId": f_cnt,
                "rssi": rssi,
                "snr": snr,
                "context": "AAAAAA==",
            }
        ],
        "txInfo": {
            "frequency": 486300000,
            "modulation": {"lora": {"bandwidth": 125000, "spreadingFactor": 7}},
        },
    }
    return uplink_topic(application_id, dev_eui), json.dumps(event).encode()


def encode_chirpstack_v3(
    *,
    dev_eui: str,
    application_id: int,
    data: bytes,
    time: datetime,
    f_cnt: int,
    f_port: int = 85,
    device_name: str = "",
) -> tuple[str, bytes]:
    """(topic, payload) of a ChirpStack v3 uplink event (JSON marshaller: base64 ids)."""
    event = {
        "applicationID": str(application_id),
        "applicationName": "waterlogging",
        "deviceName": device_name or dev_eui.lower(),
        "devEUI": base64.b64encode(bytes.fromhex(dev_eui)).decode(),
        "rxInfo": [
            {
                "gatewayID": base64.b64encode(bytes.fromhex("0016c001f153a14c")).decode(),
                "time": time.astimezone(UTC).isoformat(),
                "rssi": -80,
                "loRaSNR": 7.5,
                "channel": 1,
            }
        ],
        "txInfo": {"frequency": 486300000, "dr": 5},
        "adr": True,
        "fCnt": f_cnt,
        "fPort": f_port,
        "data": base64.b64encode(data).decode(),
    }
    return uplink_topic(str(application_id), dev_eui), json.dumps(event).encode()


# -- field helpers ------------------------------------------------------------------------------
def _hex_eui(value: object, where: str) -> str:
    if not isinstance(value, str) or not _HEX_EUI.match(value):
        raise MalformedUplink(f"{where} must be a 16-digit hex DevEUI, got {value!r}")
    return value.lower()


def _base64_eui(value: object) -> str:
    if not isinstance(value, str):
        raise MalformedUplink(f"devEUI must be a string, got {value!r}")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedUplink(f"devEUI {value!r} is neither 16 hex digits nor base64") from None
    if len(raw) != 8:
        raise MalformedUplink(f"devEUI {value!r} decodes to {len(raw)} bytes, not 8")
    return raw.hex()


def _data(value: object) -> bytes:
    if value is None:
        return b""
    if not isinstance(value, str):
        raise MalformedUplink(f"data must be a base64 string, got {type(value).__name__}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedUplink(f"data {value[:40]!r} is not valid base64") from None


def _first_rx(raw: dict[str, Any]) -> dict[str, Any]:
    rx = raw.get("rxInfo")
    if rx is None or rx == []:
        return {}
    if not isinstance(rx, list) or not isinstance(rx[0], dict):
        raise MalformedUplink("rxInfo must be a list of objects")
    return rx[0]


def _optional_int(value: object, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedUplink(f"{where} must be a non-negative integer, got {value!r}")
    return value


def _optional_float(value: object, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedUplink(f"{where} must be a number, got {value!r}")
    return float(value)


def _optional_str(value: object, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedUplink(f"{where} must be a string, got {value!r}")
    return value


def _optional_time(value: object, where: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedUplink(f"{where} must be an RFC 3339 time string, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise MalformedUplink(f"{where} {value!r} is not an RFC 3339 time") from None
    if parsed.tzinfo is None:
        raise MalformedUplink(f"{where} {value!r} has no time zone")
    return parsed.astimezone(UTC)
