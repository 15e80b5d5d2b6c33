"""Drone docks as the DJI Cloud API speaks over MQTT, decoded into plain domain values.

Topics: ``thing/product/{sn}/osd`` (periodic, ~0.5 Hz), ``/state`` (on change), ``/events``
(answered on ``/events_reply`` when ``need_reply`` is 1), ``/services`` and
``/services_reply``, ``/requests``, and ``sys/product/{gateway_sn}/status`` whose
``update_topo`` lists the aircraft under the dock (an empty ``sub_devices``: the aircraft
went offline). Every payload is an envelope ``{tid, bid, timestamp (ms), method, gateway,
need_reply, data}``.

Field spellings vary between firmware and SDK versions and between integrators' bridges
(``lng``/``lon``/``longitude``, ``gimbal_yaw_degree``/``gimbal_yaw``, numbers sent as
strings): the readers below accept each spelling seen in the wild. Anything that is not a
usable message raises a :class:`DjiError` subclass saying what was wrong; the caller counts,
logs and goes on. The encoders at the bottom are what the simulated dock publishes.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

__all__ = [
    "AircraftOsd",
    "DjiError",
    "DjiMessage",
    "DjiTopic",
    "DockOsd",
    "Envelope",
    "FlightTaskProgress",
    "MalformedDjiMessage",
    "MediaUploaded",
    "OtherMessage",
    "Topology",
    "UnknownDjiTopic",
    "decode",
    "encode_envelope",
    "reply_for",
    "thing_topic",
    "topo_topic",
]

MAX_MESSAGE_BYTES = 256 * 1024
"""DJI messages are a few kB at most; anything this large is not one."""
_THING = re.compile(
    r"^thing/product/([^/]+)/(osd|state|events|events_reply|services|services_reply|requests|requests_reply)$"
)
_SYS = re.compile(r"^sys/product/([^/]+)/(status|status_reply)$")


class DjiError(ValueError):
    """A message on a DJI topic that yields nothing usable; the message says why."""


class UnknownDjiTopic(DjiError):
    """The topic is not one of the DJI Cloud API's thing/sys product topics."""


class MalformedDjiMessage(DjiError):
    """Bad JSON, a missing envelope field, or a data field of the wrong type."""


class DjiChannel(StrEnum):
    OSD = "osd"
    STATE = "state"
    EVENTS = "events"
    EVENTS_REPLY = "events_reply"
    SERVICES = "services"
    SERVICES_REPLY = "services_reply"
    REQUESTS = "requests"
    REQUESTS_REPLY = "requests_reply"
    STATUS = "status"
    STATUS_REPLY = "status_reply"


@dataclass(frozen=True, slots=True)
class DjiTopic:
    """``thing/product/{sn}/{channel}`` or ``sys/product/{sn}/{channel}``."""

    sn: str
    channel: DjiChannel

    @property
    def topic(self) -> str:
        root = "sys" if self.channel in (DjiChannel.STATUS, DjiChannel.STATUS_REPLY) else "thing"
        return f"{root}/product/{self.sn}/{self.channel.value}"

    @classmethod
    def parse(cls, topic: str) -> DjiTopic:
        match = _THING.match(topic) or _SYS.match(topic)
        if match is None:
            raise UnknownDjiTopic(
                f"topic {topic!r} is not thing/product/{{sn}}/{{osd|state|events|services|..}}"
                " or sys/product/{sn}/status"
            )
        return cls(match.group(1), DjiChannel(match.group(2)))


@dataclass(frozen=True, slots=True)
class Envelope:
    """The envelope of every DJI message, without its ``data``."""

    tid: str
    bid: str
    timestamp: datetime
    method: str | None
    gateway: str | None
    need_reply: bool


# -- domain values ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Topology:
    """``update_topo``: the aircraft currently attached to a dock (empty: aircraft offline)."""

    gateway_sn: str
    sub_devices: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DockOsd:
    """The dock's periodic state."""

    sn: str
    mode_code: int | None
    drone_in_dock: bool | None
    drone_battery_percent: float | None
    temperature_c: float | None
    wind_speed_ms: float | None


@dataclass(frozen=True, slots=True)
class AircraftOsd:
    """The aircraft's periodic state: position, heights, battery and flight mode."""

    sn: str
    lat: float
    lon: float
    height_m: float | None
    """Ellipsoid height (DJI ``height``)."""
    elevation_m: float | None
    """Height above the take-off point (DJI ``elevation``)."""
    battery_percent: float | None
    mode_code: int | None
    heading_deg: float | None


@dataclass(frozen=True, slots=True)
class FlightTaskProgress:
    """``flighttask_progress``: how far a flight task has got."""

    flight_id: str | None
    status: str
    percent: float | None


@dataclass(frozen=True, slots=True)
class MediaUploaded:
    """``file_upload_callback``: one photo in object storage, tied to where it was taken."""

    object_key: str
    name: str | None
    flight_id: str | None
    lat: float
    lon: float
    absolute_altitude_m: float | None
    relative_altitude_m: float | None
    """Above the take-off point: the height above ground on flat ground."""
    gimbal_yaw_deg: float
    gimbal_pitch_deg: float | None
    """Not in every firmware's metadata; ``None`` when absent (the agent assumes nadir)."""
    created: datetime | None


@dataclass(frozen=True, slots=True)
class OtherMessage:
    """A well-formed message citywatch does not interpret (state, services, other events)."""


Value = Topology | DockOsd | AircraftOsd | FlightTaskProgress | MediaUploaded | OtherMessage


@dataclass(frozen=True, slots=True)
class DjiMessage:
    topic: DjiTopic
    envelope: Envelope
    value: Value


# -- decoding ---------------------------------------------------------------------------------
def decode(topic: str, payload: bytes, dock_sn: str | None = None) -> DjiMessage:
    """Decode one MQTT message of a dock; ``dock_sn`` tells the dock's OSD from the aircraft's."""
    where = DjiTopic.parse(topic)
    if len(payload) > MAX_MESSAGE_BYTES:
        raise MalformedDjiMessage(f"{topic}: {len(payload)} bytes is too large for a DJI message")
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedDjiMessage(f"{topic}: not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise MalformedDjiMessage(f"{topic}: the envelope is {type(body).__name__}, not an object")
    envelope = _envelope(topic, body)
    data = body.get("data", {})
    if not isinstance(data, dict):
        raise MalformedDjiMessage(f"{topic}: 'data' is {type(data).__name__}, not an object")
    value = _value(topic, where, envelope, data, dock_sn)
    return DjiMessage(where, envelope, value)


def _envelope(topic: str, body: Mapping[str, Any]) -> Envelope:
    for key in ("tid", "bid", "timestamp"):
        if key not in body:
            raise MalformedDjiMessage(f"{topic}: the envelope has no {key!r}")
    stamp_ms = _number(topic, body, "timestamp")
    try:
        timestamp = datetime.fromtimestamp(stamp_ms / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        raise MalformedDjiMessage(f"{topic}: timestamp {stamp_ms} ms is not a time") from None
    method = body.get("method")
    gateway = body.get("gateway")
    if method is not None and not isinstance(method, str):
        raise MalformedDjiMessage(f"{topic}: 'method' must be a string")
    if gateway is not None and not isinstance(gateway, str):
        raise MalformedDjiMessage(f"{topic}: 'gateway' must be a string")
    need_reply = body.get("need_reply", 0)
    if need_reply not in (0, 1, True, False, "0", "1"):
        raise MalformedDjiMessage(f"{topic}: need_reply must be 0 or 1, got {need_reply!r}")
    return Envelope(
        tid=str(body["tid"]),
        bid=str(body["bid"]),
        timestamp=timestamp,
        method=method,
        gateway=gateway,
        need_reply=need_reply in (1, True, "1"),
    )


def _value(
    topic: str,
    where: DjiTopic,
    envelope: Envelope,
    data: Mapping[str, Any],
    dock_sn: str | None,
) -> Value:
    channel = where.channel
    if channel is DjiChannel.STATUS and envelope.method == "update_topo":
        subs = data.get("sub_devices", [])
        if not isinstance(subs, list):
            raise MalformedDjiMessage(f"{topic}: 'sub_devices' must be a list")
        sns = []
        for sub in subs:
            if not isinstance(sub, dict) or not isinstance(sub.get("sn"), str):
                raise MalformedDjiMessage(f"{topic}: every sub_device needs a string 'sn'")
            sns.append(sub["sn"])
        return Topology(where.sn, tuple(sns))
    if channel is DjiChannel.OSD:
        if (dock_sn is not None and where.sn == dock_sn) or "drone_in_dock" in data:
            return _dock_osd(topic, where.sn, data)
        return _aircraft_osd(topic, where.sn, data)
    if channel is DjiChannel.EVENTS and envelope.method == "flighttask_progress":
        return _progress(topic, data)
    if channel is DjiChannel.EVENTS and envelope.method == "file_upload_callback":
        return _media(topic, data)
    return OtherMessage()


def _dock_osd(topic: str, sn: str, data: Mapping[str, Any]) -> DockOsd:
    charge = data.get("drone_charge_state")
    battery = None
    if isinstance(charge, dict):
        battery = _optional(topic, charge, "capacity_percent")
    in_dock = data.get("drone_in_dock")
    return DockOsd(
        sn=sn,
        mode_code=_optional_int(topic, data, "mode_code"),
        drone_in_dock=None if in_dock is None else _flag(topic, "drone_in_dock", in_dock),
        drone_battery_percent=battery,
        temperature_c=_optional(topic, data, "environment_temperature", "temperature"),
        wind_speed_ms=_optional(topic, data, "wind_speed"),
    )


def _aircraft_osd(topic: str, sn: str, data: Mapping[str, Any]) -> AircraftOsd:
    lat, lon = _lat_lon(topic, data)
    battery = data.get("battery")
    percent = (
        _optional(topic, battery, "capacity_percent")
        if isinstance(battery, dict)
        else _optional(topic, data, "capacity_percent", "battery_percent")
    )
    return AircraftOsd(
        sn=sn,
        lat=lat,
        lon=lon,
        height_m=_optional(topic, data, "height"),
        elevation_m=_optional(topic, data, "elevation"),
        battery_percent=percent,
        mode_code=_optional_int(topic, data, "mode_code"),
        heading_deg=_optional(topic, data, "attitude_head", "heading"),
    )


def _progress(topic: str, data: Mapping[str, Any]) -> FlightTaskProgress:
    output = data.get("output", data)
    if not isinstance(output, dict):
        raise MalformedDjiMessage(f"{topic}: flighttask_progress 'output' must be an object")
    status = output.get("status")
    if not isinstance(status, str) or not status:
        raise MalformedDjiMessage(f"{topic}: flighttask_progress has no 'status'")
    progress = output.get("progress", {})
    percent = _optional(topic, progress, "percent") if isinstance(progress, dict) else None
    ext = output.get("ext", {})
    flight_id = ext.get("flight_id") if isinstance(ext, dict) else None
    flight_id = flight_id or output.get("flight_id") or data.get("flight_id")
    return FlightTaskProgress(
        flight_id=str(flight_id) if flight_id else None, status=status, percent=percent
    )


def _media(topic: str, data: Mapping[str, Any]) -> MediaUploaded:
    file = data.get("file", data)
    if not isinstance(file, dict):
        raise MalformedDjiMessage(f"{topic}: file_upload_callback 'file' must be an object")
    object_key = file.get("object_key")
    if not isinstance(object_key, str) or not object_key:
        raise MalformedDjiMessage(f"{topic}: file_upload_callback has no 'object_key'")
    metadata = file.get("metadata")
    if not isinstance(metadata, dict):
        raise MalformedDjiMessage(f"{topic}: file {object_key} has no 'metadata' object")
    position = metadata.get("shoot_position")
    if not isinstance(position, dict):
        raise MalformedDjiMessage(f"{topic}: file {object_key} has no 'shoot_position'")
    lat, lon = _lat_lon(topic, position)
    yaw = _optional(topic, metadata, "gimbal_yaw_degree", "gimbal_yaw", "yaw")
    if yaw is None:
        raise MalformedDjiMessage(f"{topic}: file {object_key} has no gimbal yaw")
    ext = file.get("ext", {})
    flight_id = (ext.get("flight_id") if isinstance(ext, dict) else None) or data.get("flight_id")
    created = metadata.get("create_time")
    return MediaUploaded(
        object_key=object_key,
        name=file.get("name") if isinstance(file.get("name"), str) else None,
        flight_id=str(flight_id) if flight_id else None,
        lat=lat,
        lon=lon,
        absolute_altitude_m=_optional(topic, metadata, "absolute_altitude"),
        relative_altitude_m=_optional(topic, metadata, "relative_altitude"),
        gimbal_yaw_deg=yaw,
        gimbal_pitch_deg=_optional(topic, metadata, "gimbal_pitch_degree", "gimbal_pitch"),
        created=_time(created),
    )


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else None


def _lat_lon(topic: str, data: Mapping[str, Any]) -> tuple[float, float]:
    lat = _optional(topic, data, "latitude", "lat")
    lon = _optional(topic, data, "longitude", "lng", "lon")
    if lat is None or lon is None:
        raise MalformedDjiMessage(f"{topic}: no position (latitude/lat and longitude/lng/lon)")
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise MalformedDjiMessage(f"{topic}: position ({lat}, {lon}) is not on Earth")
    if lat == 0 and lon == 0:
        raise MalformedDjiMessage(f"{topic}: position (0, 0) means no GNSS fix")
    return lat, lon


def _optional(topic: str, data: Mapping[str, Any], *keys: str) -> float | None:
    for key in keys:
        if key in data and data[key] is not None:
            return _number(topic, data, key)
    return None


def _optional_int(topic: str, data: Mapping[str, Any], key: str) -> int | None:
    value = _optional(topic, data, key)
    return None if value is None else int(value)


def _number(topic: str, data: Mapping[str, Any], key: str) -> float:
    value = data[key]
    if isinstance(value, bool):
        raise MalformedDjiMessage(f"{topic}: {key!r} is a boolean, not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise MalformedDjiMessage(f"{topic}: {key!r} is {value!r}, not a number") from None
    if not math.isfinite(number):
        raise MalformedDjiMessage(f"{topic}: {key!r} is {value!r}, not a finite number")
    return number


def _flag(topic: str, key: str, value: Any) -> bool:
    if value in (0, 1, True, False, "0", "1"):
        return value in (1, True, "1")
    raise MalformedDjiMessage(f"{topic}: {key!r} must be 0 or 1, got {value!r}")


# -- replies and encoding ---------------------------------------------------------------------
def reply_for(message: DjiMessage, now: datetime) -> tuple[str, bytes] | None:
    """The reply a message asks for: ``events_reply`` when ``need_reply`` is 1, and
    ``status_reply`` to ``update_topo`` (the dock retries its topology until answered)."""
    envelope = message.envelope
    if message.topic.channel is DjiChannel.EVENTS and envelope.need_reply:
        channel = DjiChannel.EVENTS_REPLY
    elif message.topic.channel is DjiChannel.STATUS and envelope.method == "update_topo":
        channel = DjiChannel.STATUS_REPLY
    else:
        return None
    topic = DjiTopic(message.topic.sn, channel).topic
    body = {
        "tid": envelope.tid,
        "bid": envelope.bid,
        "timestamp": int(now.timestamp() * 1000),
        "method": envelope.method,
        "data": {"result": 0},
    }
    return topic, json.dumps(body).encode()


def thing_topic(sn: str, channel: str) -> str:
    return DjiTopic(sn, DjiChannel(channel)).topic


def topo_topic(gateway_sn: str) -> str:
    return DjiTopic(gateway_sn, DjiChannel.STATUS).topic


def encode_envelope(
    *,
    at: datetime,
    data: Mapping[str, Any],
    method: str | None = None,
    gateway: str | None = None,
    need_reply: bool = False,
    bid: str | None = None,
    tid: str | None = None,
) -> bytes:
    """A DJI envelope as the dock sends it (for the simulator and fixtures)."""
    body: dict[str, Any] = {
        "tid": tid or str(uuid.uuid4()),
        "bid": bid or str(uuid.uuid4()),
        "timestamp": int(at.timestamp() * 1000),
        "data": dict(data),
    }
    if method is not None:
        body["method"] = method
    if gateway is not None:
        body["gateway"] = gateway
    if need_reply:
        body["need_reply"] = 1
    return json.dumps(body, ensure_ascii=False).encode()
