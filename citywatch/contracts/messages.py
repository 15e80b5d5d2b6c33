"""Message models for everything on the wire: alerts, telemetry, status, evidence, receipts
and work-order events.

Every message carries ``v`` (schema version) and ``type`` (its discriminator), a stable ``id``
(a resend carries the same id, so every sink can upsert by it) and timezone-aware UTC times.
Unknown fields are ignored so that a newer minor version can add optional fields.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from citywatch.contracts.topics import Channel, TopicAddress, check_segment
from citywatch.contracts.version import SCHEMA_VERSION

_ID = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$")]
AttributeValue = str | int | float | bool


def utc(value: datetime) -> datetime:
    """Normalise an aware datetime to UTC (the only zone used inside citywatch)."""
    return value.astimezone(UTC)


class WireModel(BaseModel):
    """Base of every wire message: immutable, unknown fields ignored, times in UTC, and
    storable as it is: no NaN or infinity (``allow_inf_nan=False`` on every contract model)
    and no text PostgreSQL refuses (:func:`unstorable`). A message the database would refuse
    is refused here, so it is dead-lettered alone instead of failing its whole batch."""

    model_config = ConfigDict(
        frozen=True, extra="ignore", use_enum_values=False, allow_inf_nan=False
    )

    v: str = SCHEMA_VERSION

    @model_validator(mode="after")
    def _storable(self, info: ValidationInfo) -> WireModel:
        # JSON can only carry NUL or a surrogate as a \u escape (raw ones are invalid JSON or
        # UTF-8): decode() says when the bytes had none, which is nearly always.
        if info.context is not None and info.context.get(NO_ESCAPES):
            return self
        if not _storable(self):
            raise ValueError(unstorable(self) or "not storable")
        return self


def _storable(value: object) -> bool:
    """:func:`unstorable` as a plain yes or no, without building paths (a few µs an alert
    against ~50 µs; it runs for models built in Python and JSON with ``\\u`` escapes)."""
    if isinstance(value, str):
        return "\x00" not in value and (value.isascii() or _valid_unicode(value))
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_storable(key) and _storable(item) for key, item in value.items())
    if isinstance(value, tuple | list):
        return all(_storable(item) for item in value)
    if isinstance(value, BaseModel):
        return all(_storable(item) for item in value.__dict__.values())
    return True


def _valid_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


NO_ESCAPES = "no_unicode_escapes"
"""Validation-context key: the JSON being validated contains no ``\\u`` escape."""


def unstorable(value: object, path: str = "") -> str | None:
    """Why ``value`` cannot be stored as it is, or None.

    PostgreSQL text and jsonb refuse NUL characters and lone UTF-16 surrogates (JSON's
    ``"\\ud800"`` decodes to one), and jsonb refuses NaN and infinities; all pass JSON
    parsing and plain pydantic types, so one such string or number anywhere (attribute keys
    and values included) used to fail the database write of a whole batch.
    """
    if isinstance(value, str):
        if "\x00" in value:
            return f"{path or 'text'}: contains a NUL character"
        if not (value.isascii() or _valid_unicode(value)):
            return f"{path or 'text'}: contains a lone surrogate (not valid Unicode)"
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{path or 'number'}: {value} is not finite"
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            problem = unstorable(getattr(value, name), f"{path}.{name}" if path else name)
            if problem is not None:
                return problem
    elif isinstance(value, dict):
        for key, item in value.items():
            where = (
                f"{path}.{key}" if isinstance(key, str) and key.isprintable() else f"{path}.<key>"
            )
            problem = unstorable(key, f"{path} key") or unstorable(item, where)
            if problem is not None:
                return problem
    elif isinstance(value, tuple | list):
        for index, item in enumerate(value):
            problem = unstorable(item, f"{path}.{index}")
            if problem is not None:
                return problem
    return None


class DeviceKind(StrEnum):
    """What sends a message: a device behind a gateway, or the gateway itself (its status)."""

    CAMERA = "camera"
    SENSOR = "sensor"
    DOCK = "dock"
    GATEWAY = "gateway"


class AlertKind(StrEnum):
    """What an alert is about; config maps each kind to a category and a department."""

    WATERLOGGING = "waterlogging"
    ILLEGAL_PARKING = "illegal_parking"
    STREET_VENDING = "street_vending"
    SMOKE = "smoke"
    DEVICE_FAULT = "device_fault"


class Phase(StrEnum):
    """Alert lifecycle: one ``start``, any number of ``update``s, one ``end``."""

    START = "start"
    UPDATE = "update"
    END = "end"


class DeviceRef(BaseModel):
    """Which device a message is from; must match the MQTT topic it arrived on."""

    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False)

    site: str
    kind: DeviceKind
    id: str

    @field_validator("site", "id")
    @classmethod
    def _topic_safe(cls, value: str) -> str:
        return check_segment(value, "device field")

    def address(self, channel: Channel) -> TopicAddress:
        """The MQTT topic of this device's ``channel``."""
        return TopicAddress(self.site, self.kind.value, self.id, channel)


class Location(BaseModel):
    """Where: a zone name (cameras), a WGS84 point (sensors, docks), or both."""

    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False)

    zone: str | None = None
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    accuracy_m: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _zone_or_point(self) -> Location:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("lat and lon go together: give both or neither")
        if self.zone is None and self.lat is None:
            raise ValueError("a location needs a zone, a lat/lon point, or both")
        return self

    @property
    def has_point(self) -> bool:
        return self.lat is not None and self.lon is not None


class EvidenceKind(StrEnum):
    SNAPSHOT = "snapshot"
    CROP = "crop"
    CLIP = "clip"
    SERIES = "series"
    FRAME = "frame"


class EvidenceRef(BaseModel):
    """A pointer to evidence kept on the gateway or in object storage (never inline)."""

    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False)

    kind: EvidenceKind
    uri: str = Field(min_length=1, max_length=1024)
    content_type: str = "application/octet-stream"
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


LIFTED = frozenset({"level", "dwell_s"})
"""Attributes of older schema versions that are typed fields of :class:`Alert` now."""
MAX_ATTRIBUTES = 64
"""Attributes one alert may carry (a camera alert has about 15)."""


class Alert(WireModel):
    """One lifecycle message of one detected problem at one device.

    ``episode_id`` is shared by the start, updates and end of one occurrence (one object
    under one rule); ``id`` is unique per message and stable across resends.
    """

    type: Literal["alert"] = "alert"
    id: _ID
    episode_id: _ID
    seq: int = Field(ge=0, description="position of this message within its episode")
    device: DeviceRef
    kind: AlertKind
    rule: str = Field(min_length=1, max_length=64)
    phase: Phase
    event_time: AwareDatetime
    location: Location
    confidence: float = Field(ge=0.0, le=1.0)
    track_id: str | None = None
    evidence: tuple[EvidenceRef, ...] = ()
    level: str | None = Field(
        default=None,
        min_length=1,
        max_length=32,
        description="the water-level band a waterlogging alert reports (dedup and priority"
        " read it); schema 1.2, lifted from attributes['level'] of older senders",
    )
    dwell_s: float | None = Field(
        default=None,
        ge=0,
        description="how long the object had stood when a camera dwell rule fired; schema"
        " 1.2, lifted from attributes['dwell_s'] of older senders",
    )
    attributes: dict[str, AttributeValue] = Field(default_factory=dict, max_length=MAX_ATTRIBUTES)

    _utc = field_validator("event_time")(utc)

    def stored_attributes(self) -> dict[str, AttributeValue]:
        """The attributes with ``level`` and ``dwell_s`` folded back in: how the alerts
        table keeps them (one JSON column the command center shows as it is)."""
        typed = {name: getattr(self, name) for name in sorted(LIFTED)}
        return {**self.attributes, **{k: v for k, v in typed.items() if v is not None}}

    @model_validator(mode="before")
    @classmethod
    def _lift_typed_attributes(cls, data: object) -> object:
        """A 1.0/1.1 gateway sends ``level`` and ``dwell_s`` as attributes: lift them into
        their fields, so readers never look them up by string key (rolling upgrades)."""
        if not isinstance(data, dict):
            return data
        attributes = data.get("attributes")
        if not isinstance(attributes, dict) or not LIFTED.intersection(attributes):
            return data
        data = dict(data)
        kept = dict(attributes)
        for name in LIFTED:
            if name in kept and data.get(name) is None:
                data[name] = kept.pop(name)
        data["attributes"] = kept
        return data


MAX_EARLIER_READINGS = 1000
"""Readings one telemetry message may carry besides its own (the 256 KiB cap also holds)."""


class Reading(BaseModel):
    """One timed measurement riding on a telemetry message (see ``Telemetry.earlier``)."""

    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False)

    event_time: AwareDatetime
    metrics: dict[str, float]

    _utc = field_validator("event_time")(utc)


class Telemetry(WireModel):
    """Periodic measurements of one device (QoS 0; may be shed when a gateway is offline).

    ``metrics`` were taken at ``event_time``; ``earlier`` (schema 1.1) carries readings taken
    before it that are sent together: a sensor sampling every second reports every ten, so
    the depth curve keeps every sample for one publish. Each reading is stored as its own
    row (id ``<id>.<n>``, so a resend upserts); a 1.0 reader ignores them.
    """

    type: Literal["telemetry"] = "telemetry"
    id: _ID
    device: DeviceRef
    event_time: AwareDatetime
    metrics: dict[str, float]
    earlier: tuple[Reading, ...] | None = Field(default=None, max_length=MAX_EARLIER_READINGS)

    _utc = field_validator("event_time")(utc)

    @model_validator(mode="after")
    def _earlier_comes_first(self) -> Telemetry:
        if self.earlier and any(r.event_time >= self.event_time for r in self.earlier):
            raise ValueError("every reading in 'earlier' must be older than event_time")
        return self

    def readings(self) -> list[tuple[str, datetime, dict[str, float]]]:
        """(row id, time, metrics) of every reading the message carries, its own last."""
        rows = [
            (f"{self.id}.{n}", r.event_time, r.metrics) for n, r in enumerate(self.earlier or ())
        ]
        rows.append((self.id, self.event_time, self.metrics))
        return rows


class DeviceState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class Status(WireModel):
    """The retained online/offline state of a device; also its last will."""

    type: Literal["status"] = "status"
    device: DeviceRef
    state: DeviceState
    event_time: AwareDatetime
    software: str | None = None
    clock_skew_ms: float | None = Field(
        default=None, description="gateway clock minus the broker-side clock, when known"
    )
    detail: str | None = None

    _utc = field_validator("event_time")(utc)


class Evidence(WireModel):
    """Announces a piece of evidence for an alert (the bytes stay where the ref points)."""

    type: Literal["evidence"] = "evidence"
    id: _ID
    device: DeviceRef
    alert_id: _ID
    ref: EvidenceRef
    event_time: AwareDatetime

    _utc = field_validator("event_time")(utc)


class ReceiptStatus(StrEnum):
    STORED = "stored"
    REJECTED = "rejected"


class Receipt(WireModel):
    """Proof, sent only after the database commit, that the center holds a message.

    A gateway deletes an alert from its outbox on ``stored``; ``rejected`` (dead-lettered)
    also ends resending, with the reason kept for the operator.
    """

    type: Literal["receipt"] = "receipt"
    id: _ID
    message_id: _ID
    device: DeviceRef
    status: ReceiptStatus
    received_at: AwareDatetime
    work_order_id: str | None = None
    reason: str | None = None

    _utc = field_validator("received_at")(utc)


class WorkOrderEvent(WireModel):
    """One transition of a work order (the audit trail other systems consume)."""

    type: Literal["workorder_event"] = "workorder_event"
    id: _ID
    work_order_id: _ID
    event: str = Field(min_length=1, max_length=32)
    state: str = Field(min_length=1, max_length=32)
    actor: str
    time: AwareDatetime
    reason: str | None = None
    kind: AlertKind | None = None
    category: str | None = None
    department: str | None = None
    priority: int | None = Field(default=None, ge=1, le=4)
    due_at: AwareDatetime | None = None
    alert_ids: tuple[str, ...] = ()

    _utc = field_validator("time")(utc)


Message = Alert | Telemetry | Status | Evidence | Receipt | WorkOrderEvent
MESSAGE_TYPES: dict[str, type[WireModel]] = {
    "alert": Alert,
    "telemetry": Telemetry,
    "status": Status,
    "evidence": Evidence,
    "receipt": Receipt,
    "workorder_event": WorkOrderEvent,
}
CHANNEL_TYPES: dict[Channel, type[WireModel]] = {
    Channel.ALERTS: Alert,
    Channel.TELEMETRY: Telemetry,
    Channel.STATUS: Status,
    Channel.EVIDENCE: Evidence,
    Channel.RECEIPTS: Receipt,
}
