"""What every camera rule shares: the lifecycle event it emits, the bookkeeping of one episode,
schedules, dwell milestones, and the cooldown after an episode ends.

An episode is one object under one rule, or one zone under the smoke rule. It yields one
``start`` once its condition holds, ``update``s at dwell milestones or when the confidence
rises, and one ``end``. :class:`RuleState` keeps a rule's episodes and turns their steps into
:class:`RuleEvent`; its subclasses (:mod:`~citywatch.edge.camera.stationary_rules`,
:mod:`~citywatch.edge.camera.smoke_rule`) decide when the condition holds.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np

from citywatch.config.camera import (
    IllegalParkingRule,
    RuleBase,
    Schedule,
    SmokeRule,
    StreetVendingRule,
)
from citywatch.contracts.messages import AlertKind, Phase
from citywatch.edge.camera.tracking import TrackedObject
from citywatch.edge.camera.zones import ZoneMap, anchor_points
from citywatch.models.detections import Detections, iou

__all__ = [
    "CONFIDENCE_STEP",
    "CONFIDENCE_UPDATE_GAP_S",
    "EPS_S",
    "SAME_PLACE_IOU",
    "AnyRule",
    "Box",
    "Episode",
    "Reason",
    "RuleEvent",
    "RuleFrame",
    "RuleState",
    "confidence_rose",
    "next_milestone",
    "schedule_active",
]

CONFIDENCE_STEP = 0.1
"""An open episode sends an update when its confidence rose this much over the last sent."""

CONFIDENCE_UPDATE_GAP_S = 10.0
"""Video seconds between an episode's messages before a confidence rise is worth an update."""

SAME_PLACE_IOU = 0.3
"""Boxes overlapping this much are the same place, for the cooldown after an episode."""

Reason = Literal[
    "dwell",  # start: an object stood in the zone past the dwell time
    "persistence",  # start: smoke in enough frames of the window
    "milestone",  # update: the dwell passed a multiple of update_every
    "confidence",  # update: the confidence rose by CONFIDENCE_STEP
    "moved",  # end: the object moved away
    "left_zone",  # end: the object's anchor is no longer in the zone
    "lost",  # end: the object was not seen for longer than lost_grace
    "low_confidence",  # end: the smoothed confidence stayed under end_confidence
    "cleared",  # end: no smoke for clear_after, and under half the min_fraction
    "schedule",  # end: the rule's active hours are over
    "config",  # end: the rule or its zone was removed by a config reload
    "flush",  # end: the stream ended
]

Box = tuple[float, float, float, float]
AnyRule = IllegalParkingRule | StreetVendingRule | SmokeRule
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
EPS_S = 1e-6


@dataclass(frozen=True, slots=True)
class RuleEvent:
    """One lifecycle step of one episode; ``camera_alerts`` turns it into an ``Alert``."""

    phase: Phase
    reason: Reason
    rule: str
    kind: AlertKind
    zone: str
    episode_key: str
    """Stable identity of what the episode is about: ``rule:object_id`` or ``rule:zone``."""
    seq: int
    """0 for the start, then 1, 2, … for updates and the end."""
    episode_start_s: float
    """Video time of the episode's start event."""
    episode_start_time: datetime
    """Wall-clock time of the episode's start event, UTC (part of the wire episode id)."""
    confidence: float
    dwell_s: float
    """Video seconds the object has stood still (smoke: seconds since it persisted)."""
    xyxy: Box
    """The box in pixels."""
    box: Box
    """The box as 0–1 of the frame."""
    anchor: tuple[float, float]
    """The rule's anchor point of the box, 0–1 of the frame."""
    pts_s: float
    time: datetime
    """Wall-clock time of the frame, UTC."""
    class_name: str
    object_id: int | None
    track_id: int | None


@dataclass
class Episode:
    key: str
    zone: str
    start_s: float
    start_time: datetime
    sent_confidence: float
    next_milestone_s: float | None
    place: Box
    """Where the object stood (its box at the start): what the cooldown compares."""
    last_sent_s: float
    since_s: float = 0.0
    """Smoke: video time of the first smoke frame of the window that started it."""
    seq: int = 0
    dwell_s: float = 0.0
    """The dwell last seen while the condition held (what an end reports after a move)."""
    ending: tuple[Reason, float] | None = None
    """The end condition that holds and since when (video s): the episode ends only once
    it held for the rule's hold time, and continues if the condition clears before."""


@dataclass(frozen=True, slots=True)
class RuleFrame:
    pts_s: float
    time: datetime
    local: datetime
    detections: Detections
    tracks: Sequence[TrackedObject]
    smoke_confirmed: bool | None


@dataclass(frozen=True, slots=True)
class _Ended:
    pts_s: float
    zone: str
    xyxy: Box


def schedule_active(schedule: Schedule | None, local: datetime) -> bool:
    """Whether a rule with ``schedule`` is active at the site-local time ``local``.

    A window whose end is before its start runs past midnight into the next day; its day is
    the day it opened.
    """
    if schedule is None:
        return True
    day, now = _DAYS[local.weekday()], local.time().replace(tzinfo=None)
    if schedule.start <= schedule.end:
        return day in schedule.days and schedule.start <= now <= schedule.end
    if now >= schedule.start:
        return day in schedule.days
    return now <= schedule.end and _DAYS[(local.weekday() - 1) % 7] in schedule.days


def next_milestone(rule: RuleBase, dwell_s: float) -> float | None:
    if rule.update_every is None or rule.update_every.total_seconds() <= 0:
        return None
    every = rule.update_every.total_seconds()
    return (int(dwell_s // every) + 1) * every


def confidence_rose(ep: Episode, confidence: float, pts_s: float) -> bool:
    return (
        confidence >= ep.sent_confidence + CONFIDENCE_STEP - EPS_S
        and pts_s - ep.last_sent_s >= CONFIDENCE_UPDATE_GAP_S - EPS_S
    )


class RuleState:
    """Episodes and cooldowns of one rule; subclasses decide when the condition holds."""

    rule: AnyRule

    def __init__(self, rule: AnyRule, zones: ZoneMap) -> None:
        self.rule = rule
        self.zones = zones
        self.kind = AlertKind(rule.type)
        self.episodes: dict[str, Episode] = {}
        self._ended: deque[_Ended] = deque()

    def step(self, frame: RuleFrame) -> list[RuleEvent]:
        raise NotImplementedError

    def reconfigure(
        self, rule: AnyRule, zones: ZoneMap, frame: RuleFrame | None
    ) -> list[RuleEvent]:
        """Take a changed ``rule`` of the same type; end the episodes in zones it dropped."""
        self.rule, self.zones = rule, zones
        gone = [ep for ep in self.episodes.values() if ep.zone not in rule.zones]
        if frame is None:
            return []
        return [self._end_episode(ep, frame, "config") for ep in gone]

    def end_all(self, frame: RuleFrame, reason: Reason) -> list[RuleEvent]:
        return [self._end_episode(ep, frame, reason) for ep in list(self.episodes.values())]

    def _end_episode(self, ep: Episode, frame: RuleFrame, reason: Reason) -> RuleEvent:
        raise NotImplementedError

    def _cooling(self, zone: str, xyxy: Box | None, pts_s: float) -> bool:
        cooldown = self.rule.cooldown.total_seconds()
        while self._ended and pts_s - self._ended[0].pts_s >= cooldown:
            self._ended.popleft()
        return any(
            ended.zone == zone and (xyxy is None or iou(ended.xyxy, xyxy) >= SAME_PLACE_IOU)
            for ended in self._ended
        )

    def _event(
        self,
        phase: Phase,
        reason: Reason,
        ep: Episode,
        frame: RuleFrame,
        *,
        confidence: float,
        dwell_s: float,
        xyxy: Box,
        class_name: str,
        object_id: int | None = None,
        track_id: int | None = None,
    ) -> RuleEvent:
        if phase is not Phase.START:
            ep.seq += 1
        if phase is Phase.END:
            del self.episodes[ep.key]
            self._ended.append(_Ended(frame.pts_s, ep.zone, ep.place))
        ep.last_sent_s = frame.pts_s
        w, h = self.zones.frame_w, self.zones.frame_h
        ax, ay = anchor_points(np.array(xyxy), self.rule.anchor)[0].tolist()
        return RuleEvent(
            phase=phase,
            reason=reason,
            rule=self.rule.name,
            kind=self.kind,
            zone=ep.zone,
            episode_key=ep.key,
            seq=ep.seq,
            episode_start_s=ep.start_s,
            episode_start_time=ep.start_time,
            confidence=round(min(1.0, max(0.0, confidence)), 4),
            dwell_s=round(dwell_s, 3),
            xyxy=xyxy,
            box=(xyxy[0] / w, xyxy[1] / h, xyxy[2] / w, xyxy[3] / h),
            anchor=(ax / w, ay / h),
            pts_s=frame.pts_s,
            time=frame.time,
            class_name=class_name,
            object_id=object_id,
            track_id=track_id,
        )
