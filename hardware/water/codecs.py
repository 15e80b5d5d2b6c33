"""Payload codecs of LoRaWAN water-level units: the bytes in an uplink's ``data`` field.

Each codec turns one unit's binary layout into a :class:`DecodedPayload` and refuses bytes
that do not follow it with a :class:`CodecError` naming the offset and what was wrong. The
network server's own JavaScript codec (its ``object`` field) is never trusted: it may be
missing, outdated or written for another firmware.

Milesight EM500-UDL (ultrasonic distance/level sensor) uses the vendor's channel/type
layout: a sequence of ``channel id (1 byte), channel type (1 byte), value (fixed length by
type)``, little-endian, as documented in the vendor's public decoder repository. Without a
length byte an unknown channel cannot be skipped, so it is an error, not silently ignored.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

__all__ = [
    "CODECS",
    "CodecError",
    "DecodedPayload",
    "decode_em500_udl",
    "encode_em500_udl",
]


class CodecError(ValueError):
    """The payload does not follow the unit's layout (truncated, unknown channel, bad value).

    Usually a codec configured for the wrong unit or firmware: check the sensor's
    ``transport.codec`` against the device's datasheet.
    """


@dataclass(frozen=True)
class DecodedPayload:
    """The values one uplink carried; absent channels are ``None``."""

    distance_mm: float | None = None
    battery_pct: float | None = None
    alarm: str | None = None
    """The unit's own alarm state, if it sent one (``normal``, ``threshold_alarm``, ...)."""
    history: tuple[tuple[datetime, float], ...] = ()
    """Stored readings retransmitted after a gap: (time, distance_mm), oldest first."""
    info: dict[str, str] = field(default_factory=dict)
    """Device attributes sent at join or on request (firmware, serial number, ...)."""


_ALARMS = {0: "normal", 1: "threshold_alarm", 2: "mutation_alarm"}

# (channel id, channel type) → value length in bytes, for channels carrying device info or
# answers to configuration downlinks (kept in ``info`` as hex).
_INFO_CHANNELS: dict[tuple[int, int], tuple[str, int]] = {
    (0xFF, 0x01): ("ipso_version", 1),
    (0xFF, 0x09): ("hardware_version", 2),
    (0xFF, 0x0A): ("firmware_version", 2),
    (0xFF, 0xFF): ("tsl_version", 2),
    (0xFF, 0x16): ("serial_number", 8),
    (0xFF, 0x0F): ("lorawan_class", 1),
    (0xFF, 0xFE): ("reset_event", 1),
    (0xFF, 0x0B): ("device_status", 1),
    (0xFF, 0x02): ("collection_interval", 2),
    (0xFF, 0x03): ("report_interval", 2),
    (0xFF, 0x10): ("reboot", 1),
    (0xFF, 0x11): ("timestamp", 4),
    (0xFF, 0x17): ("time_zone", 2),
    (0xFF, 0x28): ("report_status", 1),
    (0xFF, 0x4A): ("sync_time", 1),
}


def _take(data: bytes, offset: int, length: int, what: str) -> bytes:
    if offset + length > len(data):
        raise CodecError(
            f"EM500-UDL payload truncated: {what} at byte {offset - 2} needs {length} bytes,"
            f" {len(data) - offset} left (payload {data.hex()})"
        )
    return data[offset : offset + length]


def decode_em500_udl(data: bytes) -> DecodedPayload:
    """Decode a Milesight EM500-UDL uplink (channel/type layout, little-endian)."""
    if not data:
        raise CodecError("EM500-UDL payload is empty")
    distance_mm: float | None = None
    battery_pct: float | None = None
    alarm: str | None = None
    history: list[tuple[datetime, float]] = []
    info: dict[str, str] = {}
    i = 0
    while i < len(data):
        if i + 2 > len(data):
            raise CodecError(
                f"EM500-UDL payload truncated: a lone byte 0x{data[i]:02x} at {i}"
                f" (payload {data.hex()})"
            )
        channel, kind = data[i], data[i + 1]
        i += 2
        if (channel, kind) == (0x01, 0x75):
            battery_pct = float(_take(data, i, 1, "battery")[0])
            if battery_pct > 100:
                raise CodecError(f"EM500-UDL battery {battery_pct:g}% is above 100%")
            i += 1
        elif (channel, kind) == (0x03, 0x82):
            (raw,) = struct.unpack("<H", _take(data, i, 2, "distance"))
            distance_mm = float(raw)
            i += 2
        elif (channel, kind) == (0x83, 0xE9):
            # Distance alarm record: distance and change in tenths of a millimetre (as the
            # vendor's decoder scales them), then the alarm type.
            raw_distance, _mutation, raw_alarm = struct.unpack(
                "<HHB", _take(data, i, 5, "distance alarm")
            )
            distance_mm = raw_distance / 10
            alarm = _ALARMS.get(raw_alarm, f"unknown_{raw_alarm}")
            i += 5
        elif (channel, kind) == (0x20, 0xCE):
            stamp, raw = struct.unpack("<IH", _take(data, i, 6, "history record"))
            history.append((datetime.fromtimestamp(stamp, UTC), float(raw)))
            i += 6
        elif (channel, kind) in _INFO_CHANNELS:
            name, length = _INFO_CHANNELS[(channel, kind)]
            info[name] = _take(data, i, length, name).hex()
            i += length
        else:
            raise CodecError(
                f"EM500-UDL payload has unknown channel 0x{channel:02x} type 0x{kind:02x} at"
                f" byte {i - 2} (payload {data.hex()}): is transport.codec right for this unit?"
            )
    history.sort(key=lambda point: point[0])
    return DecodedPayload(
        distance_mm=distance_mm,
        battery_pct=battery_pct,
        alarm=alarm,
        history=tuple(history),
        info=info,
    )


def encode_em500_udl(
    distance_mm: float | None,
    battery_pct: float | None = None,
    history: tuple[tuple[datetime, float], ...] = (),
) -> bytes:
    """The payload an EM500-UDL would send (for the simulator and tests)."""
    out = bytearray()
    if battery_pct is not None:
        out += bytes((0x01, 0x75, max(0, min(100, round(battery_pct)))))
    if distance_mm is not None:
        out += bytes((0x03, 0x82)) + struct.pack("<H", max(0, min(0xFFFF, round(distance_mm))))
    for time, distance in history:
        out += bytes((0x20, 0xCE)) + struct.pack(
            "<IH", int(time.timestamp()), max(0, min(0xFFFF, round(distance)))
        )
    return bytes(out)


CODECS: dict[str, Callable[[bytes], DecodedPayload]] = {
    "milesight_em500_udl": decode_em500_udl,
}
"""Codec name (``transport.codec`` in the config) → decoder."""
