"""Turn the camera rule engine's events into wire ``Alert`` messages (pure).

Ids are derived from the data only (camera, rule, subject, the episode's start time and the
message's position in it), so a replay of a recording produces exactly the messages the
live agent sent, and a resend carries the same id.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from citywatch.config.camera import CameraConfig
from citywatch.contracts import Alert, DeviceKind, DeviceRef, Location
from citywatch.contracts.messages import AttributeValue, EvidenceRef
from citywatch.edge.camera.episodes import RuleEvent
from citywatch.edge.camera.ground import GroundProjection

__all__ = ["alert_for", "episode_id"]

_MAX_ID = 120
"""Ids must fit the wire's 128 characters with room for ``.seq``."""


def episode_id(camera_id: str, event: RuleEvent) -> str:
    """The id shared by every message of ``event``'s episode on ``camera_id``.

    ``camera.rule.subject.start`` with the subject the object id (``o7``) or the zone, and
    the start as milliseconds of the episode's first wall-clock time: the engine reuses
    object ids after a restart, the start time tells the episodes apart.
    """
    subject = f"o{event.object_id}" if event.object_id is not None else event.zone
    readable = f"{camera_id}.{event.rule}.{subject}.{_stamp(event.episode_start_time)}"
    if len(readable) <= _MAX_ID:
        return readable
    digest = hashlib.sha256(readable.encode()).hexdigest()[:24]
    return f"{camera_id[: _MAX_ID - 25]}.{digest}"


def alert_for(
    event: RuleEvent,
    *,
    site: str,
    camera: CameraConfig,
    evidence: tuple[EvidenceRef, ...] = (),
    ground: GroundProjection | None = None,
) -> Alert:
    """The alert message announcing ``event`` of ``camera`` at ``site``: at the ground
    position of the object when the camera is calibrated, else at the camera's."""
    episode = episode_id(camera.id, event)
    position = camera.placement.position
    lat: float | None = position.lat if position else None
    lon: float | None = position.lon if position else None
    accuracy_m: float | None = None
    if ground is not None:
        lat, lon = ground.lat_lon(*event.anchor)
        accuracy_m = ground.accuracy_m
    x1, y1, x2, y2 = event.box
    attributes: dict[str, AttributeValue] = {
        "rule_type": event.kind.value,
        "reason": event.reason,
        "class": event.class_name,
        "pts_s": round(event.pts_s, 3),
        "anchor_x": round(event.anchor[0], 4),
        "anchor_y": round(event.anchor[1], 4),
        "x1": round(x1, 4),
        "y1": round(y1, 4),
        "x2": round(x2, 4),
        "y2": round(y2, 4),
        "district": camera.placement.district,
    }
    return Alert(
        id=f"{episode}.{event.seq}",
        episode_id=episode,
        seq=event.seq,
        device=DeviceRef(site=site, kind=DeviceKind.CAMERA, id=camera.id),
        kind=event.kind,
        rule=event.rule,
        phase=event.phase,
        event_time=event.time,
        location=Location(zone=event.zone, lat=lat, lon=lon, accuracy_m=accuracy_m),
        confidence=event.confidence,
        dwell_s=round(event.dwell_s, 1),
        track_id=str(event.object_id) if event.object_id is not None else None,
        evidence=evidence,
        attributes=attributes,
    )


def _stamp(time: datetime) -> int:
    return int(time.timestamp() * 1000)
