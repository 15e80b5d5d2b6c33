"""The camera rule engine (pure): detections of each processed frame in, alert lifecycle out.

One :class:`CameraRules` per camera, used identically by the live agent and by replay: call
:meth:`CameraRules.step` once per processed frame with the frame's video time (``pts_s``,
which times dwell, persistence and cooldown) and its wall-clock time (which only decides
schedules, in the site's time zone). Each episode (one object under one rule, or one zone
under the smoke rule) yields one ``start`` once its condition holds, ``update``s at dwell
milestones or when the confidence rises, and one ``end`` — never one event per frame.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np

from citywatch.config.camera import (
    CameraConfig,
    CameraRule,
    IllegalParkingRule,
    RuleBase,
    Schedule,
    SmokeRule,
    StreetVendingRule,
)
from citywatch.contracts.messages import AlertKind, Phase
from citywatch.edge.stationary import StationaryObject, StationaryObjects, StationaryParams
from citywatch.edge.tracking import TrackedObject, Tracker
from citywatch.edge.zones import ZoneMap, anchor_points, area_fractions, drop_masked
from citywatch.models.detections import Detections, iou

__all__ = ["CONFIDENCE_STEP", "CameraRules", "Reason", "RuleEvent", "schedule_active"]

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
    "low_confidence",  # end: the smoothed confidence fell below min_confidence
    "cleared",  # end: smoke fell below half the min_fraction
    "schedule",  # end: the rule's active hours are over
    "config",  # end: the rule or its zone was removed by a config reload
    "flush",  # end: the stream ended
]

Box = tuple[float, float, float, float]
AnyRule = IllegalParkingRule | StreetVendingRule | SmokeRule
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_EPS_S = 1e-6


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
class _Episode:
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


@dataclass(frozen=True, slots=True)
class _Frame:
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


def _next_milestone(rule: RuleBase, dwell_s: float) -> float | None:
    if rule.update_every is None or rule.update_every.total_seconds() <= 0:
        return None
    every = rule.update_every.total_seconds()
    return (int(dwell_s // every) + 1) * every


def _confidence_rose(ep: _Episode, confidence: float, pts_s: float) -> bool:
    return (
        confidence >= ep.sent_confidence + CONFIDENCE_STEP - _EPS_S
        and pts_s - ep.last_sent_s >= CONFIDENCE_UPDATE_GAP_S - _EPS_S
    )


class _RuleState:
    """Episodes and cooldowns of one rule; subclasses decide when the condition holds."""

    rule: AnyRule

    def __init__(self, rule: AnyRule, zones: ZoneMap) -> None:
        self.rule = rule
        self.zones = zones
        self.kind = AlertKind(rule.type)
        self.episodes: dict[str, _Episode] = {}
        self._ended: deque[_Ended] = deque()

    def step(self, frame: _Frame) -> list[RuleEvent]:
        raise NotImplementedError

    def reconfigure(self, rule: AnyRule, zones: ZoneMap, frame: _Frame | None) -> list[RuleEvent]:
        """Take a changed ``rule`` of the same type; end the episodes in zones it dropped."""
        self.rule, self.zones = rule, zones
        gone = [ep for ep in self.episodes.values() if ep.zone not in rule.zones]
        if frame is None:
            return []
        return [self._end_episode(ep, frame, "config") for ep in gone]

    def end_all(self, frame: _Frame, reason: Reason) -> list[RuleEvent]:
        return [self._end_episode(ep, frame, reason) for ep in list(self.episodes.values())]

    def _end_episode(self, ep: _Episode, frame: _Frame, reason: Reason) -> RuleEvent:
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
        ep: _Episode,
        frame: _Frame,
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


class _StationaryRuleState(_RuleState):
    """Illegal parking and street vending: an object standing in a zone past a dwell time."""

    rule: IllegalParkingRule | StreetVendingRule

    def __init__(self, rule: IllegalParkingRule | StreetVendingRule, zones: ZoneMap) -> None:
        super().__init__(rule, zones)
        self.objects = StationaryObjects(StationaryParams.from_rule(rule), rule.classes)
        self._person_seen_s: dict[int, float] = {}

    def reconfigure(self, rule: AnyRule, zones: ZoneMap, frame: _Frame | None) -> list[RuleEvent]:
        if not isinstance(rule, SmokeRule):
            self.objects.params = StationaryParams.from_rule(rule)
            self.objects.classes = frozenset(rule.classes)
        return super().reconfigure(rule, zones, frame)

    def step(self, frame: _Frame) -> list[RuleEvent]:
        events: list[RuleEvent] = []
        for obj in self.objects.update(frame.pts_s, frame.tracks):
            self._person_seen_s.pop(obj.object_id, None)
            ep = self.episodes.get(self._key(obj))
            if ep is not None:
                events.append(self._end(ep, frame, obj, "lost", dwell_at=obj.last_seen_s))
        self._note_people(frame)
        active = schedule_active(self.rule.schedule, frame.local)
        for obj in self.objects.objects:
            ep = self.episodes.get(self._key(obj))
            event = self._follow(ep, obj, frame, active) if ep else self._start(obj, frame, active)
            if event is not None:
                events.append(event)
        return events

    def _key(self, obj: StationaryObject) -> str:
        return f"{self.rule.name}:{obj.object_id}"

    def _anchor(self, obj: StationaryObject) -> tuple[float, float]:
        """Where the object stands: its median position while stationary, so a jittering
        box on a zone's edge does not flap in and out of the zone."""
        if obj.reference is not None:
            return obj.reference
        x, y = anchor_points(np.array(obj.xyxy), self.rule.anchor)[0].tolist()
        return (x, y)

    def _start(self, obj: StationaryObject, frame: _Frame, active: bool) -> RuleEvent | None:
        rule, pts = self.rule, frame.pts_s
        if not (active and obj.seen_at(pts) and obj.is_stationary):
            return None
        dwell = obj.dwell_s(pts)
        if dwell < rule.dwell.total_seconds() - _EPS_S or obj.confidence < rule.min_confidence:
            return None
        area = float(area_fractions(np.array(obj.xyxy), self.zones.frame_w, self.zones.frame_h)[0])
        if not rule.min_area <= area <= rule.max_area:
            return None
        if self._needs_person(obj, pts):
            return None
        zone = self.zones.first_zone(self._anchor(obj), rule.zones)
        if zone is None or self._cooling(zone, obj.xyxy, pts):
            return None
        ep = _Episode(
            key=self._key(obj),
            zone=zone,
            start_s=pts,
            start_time=frame.time,
            sent_confidence=obj.confidence,
            next_milestone_s=_next_milestone(rule, dwell),
            place=obj.xyxy,
            last_sent_s=pts,
        )
        self.episodes[ep.key] = ep
        return self._emit(Phase.START, "dwell", ep, frame, obj)

    def _follow(
        self, ep: _Episode, obj: StationaryObject, frame: _Frame, active: bool
    ) -> RuleEvent | None:
        pts = frame.pts_s
        if obj.is_stationary:
            ep.dwell_s = obj.dwell_s(min(pts, obj.last_seen_s))
        if not active:
            return self._end(ep, frame, obj, "schedule")
        if not obj.is_stationary:
            return self._end(ep, frame, obj, "moved")
        if not bool(self.zones.contains(ep.zone, np.array([self._anchor(obj)]))[0]):
            return self._end(ep, frame, obj, "left_zone")
        if obj.confidence < self.rule.min_confidence:
            return self._end(ep, frame, obj, "low_confidence")
        if not obj.seen_at(pts):
            return None
        dwell = obj.dwell_s(pts)
        if ep.next_milestone_s is not None and dwell >= ep.next_milestone_s - _EPS_S:
            ep.next_milestone_s = _next_milestone(self.rule, dwell)
            ep.sent_confidence = obj.confidence
            return self._emit(Phase.UPDATE, "milestone", ep, frame, obj)
        if _confidence_rose(ep, obj.confidence, pts):
            ep.sent_confidence = obj.confidence
            return self._emit(Phase.UPDATE, "confidence", ep, frame, obj)
        return None

    def _end(
        self,
        ep: _Episode,
        frame: _Frame,
        obj: StationaryObject,
        reason: Reason,
        dwell_at: float | None = None,
    ) -> RuleEvent:
        return self._emit(Phase.END, reason, ep, frame, obj, dwell_at)

    def _end_episode(self, ep: _Episode, frame: _Frame, reason: Reason) -> RuleEvent:
        obj = next(o for o in self.objects.objects if self._key(o) == ep.key)
        return self._end(ep, frame, obj, reason)

    def _emit(
        self,
        phase: Phase,
        reason: Reason,
        ep: _Episode,
        frame: _Frame,
        obj: StationaryObject,
        dwell_at: float | None = None,
    ) -> RuleEvent:
        return self._event(
            phase,
            reason,
            ep,
            frame,
            confidence=obj.confidence,
            dwell_s=(
                obj.dwell_s(frame.pts_s if dwell_at is None else dwell_at)
                if obj.is_stationary
                else ep.dwell_s
            ),
            xyxy=obj.xyxy,
            class_name=obj.class_name,
            object_id=obj.object_id,
            track_id=obj.track_id,
        )

    def _note_people(self, frame: _Frame) -> None:
        rule = self.rule
        if not isinstance(rule, StreetVendingRule) or not rule.require_person:
            return
        dets = frame.detections
        is_person = np.array(
            [name in rule.person_classes for name in dets.class_name], dtype=bool
        ) & (dets.confidence >= rule.min_confidence)
        if not is_person.any():
            return
        feet = anchor_points(dets.xyxy[is_person], "bottom_center")
        for obj in self.objects.objects:
            if not obj.seen_at(frame.pts_s):
                continue
            x1, y1, x2, y2 = obj.xyxy
            dx = np.maximum.reduce([x1 - feet[:, 0], np.zeros(len(feet)), feet[:, 0] - x2])
            dy = np.maximum.reduce([y1 - feet[:, 1], np.zeros(len(feet)), feet[:, 1] - y2])
            if (np.hypot(dx, dy) <= rule.person_distance * (x2 - x1)).any():
                self._person_seen_s[obj.object_id] = frame.pts_s

    def _needs_person(self, obj: StationaryObject, pts_s: float) -> bool:
        rule = self.rule
        if not isinstance(rule, StreetVendingRule) or not rule.require_person:
            return False
        seen = self._person_seen_s.get(obj.object_id)
        window = rule.stationary_window.total_seconds()
        return seen is None or pts_s - seen > window + _EPS_S


@dataclass(frozen=True, slots=True)
class _SmokeSample:
    pts_s: float
    hit: bool
    confidence: float
    xyxy: Box | None
    class_name: str


class _SmokeZone:
    def __init__(self, first_pts_s: float) -> None:
        self.first_pts_s = first_pts_s
        self.samples: deque[_SmokeSample] = deque()
        self.last_box: tuple[Box, str] | None = None


class _SmokeRuleState(_RuleState):
    """Smoke: present in at least ``min_fraction`` of the processed frames of a window."""

    rule: SmokeRule

    def __init__(self, rule: SmokeRule, zones: ZoneMap) -> None:
        super().__init__(rule, zones)
        self._zones: dict[str, _SmokeZone] = {}

    def step(self, frame: _Frame) -> list[RuleEvent]:
        rule, pts, dets = self.rule, frame.pts_s, frame.detections
        window = rule.window.total_seconds()
        counts = frame.smoke_confirmed is True or not rule.confirm_with_classical
        area = area_fractions(dets.xyxy, self.zones.frame_w, self.zones.frame_h)
        candidate = (
            np.array([name in rule.classes for name in dets.class_name], dtype=bool)
            & (dets.confidence >= rule.min_confidence)
            & (area >= rule.min_area)
            & (area <= rule.max_area)
        )
        anchors = anchor_points(dets.xyxy, rule.anchor)
        active = schedule_active(rule.schedule, frame.local)
        events: list[RuleEvent] = []
        for zone in rule.zones:
            state = self._zones.setdefault(zone, _SmokeZone(pts))
            inside = np.flatnonzero(candidate & self.zones.contains(zone, anchors))
            if counts and len(inside):
                best = int(inside[np.argmax(dets.confidence[inside])])
                x1, y1, x2, y2 = dets.xyxy[best].tolist()
                box: Box = (x1, y1, x2, y2)
                name = dets.class_name[best]
                sample = _SmokeSample(pts, True, float(dets.confidence[best]), box, name)
                state.last_box = (box, name)
            else:
                sample = _SmokeSample(pts, False, 0.0, None, "")
            state.samples.append(sample)
            while state.samples and state.samples[0].pts_s < pts - window - _EPS_S:
                state.samples.popleft()
            event = self._judge(zone, state, frame, active, window)
            if event is not None:
                events.append(event)
        return events

    def _judge(
        self, zone: str, state: _SmokeZone, frame: _Frame, active: bool, window: float
    ) -> RuleEvent | None:
        rule, pts = self.rule, frame.pts_s
        hits = [s for s in state.samples if s.hit]
        fraction = len(hits) / len(state.samples)
        confidence = float(np.mean([s.confidence for s in hits])) if hits else 0.0
        ep = self.episodes.get(f"{rule.name}:{zone}")
        if ep is None:
            covered = pts - state.first_pts_s >= window - _EPS_S
            if not (active and covered and fraction >= rule.min_fraction - _EPS_S):
                return None
            if self._cooling(zone, None, pts):
                return None
            ep = _Episode(
                key=f"{rule.name}:{zone}",
                zone=zone,
                start_s=pts,
                start_time=frame.time,
                sent_confidence=confidence,
                next_milestone_s=_next_milestone(rule, pts - hits[0].pts_s),
                place=state.last_box[0] if state.last_box else (0.0, 0.0, 0.0, 0.0),
                last_sent_s=pts,
                since_s=hits[0].pts_s,
            )
            self.episodes[ep.key] = ep
            return self._emit(Phase.START, "persistence", ep, frame, confidence)
        if not active:
            return self._emit(Phase.END, "schedule", ep, frame, confidence)
        if fraction < rule.min_fraction / 2:
            return self._emit(Phase.END, "cleared", ep, frame, confidence)
        if ep.next_milestone_s is not None and pts - ep.since_s >= ep.next_milestone_s - _EPS_S:
            ep.next_milestone_s = _next_milestone(rule, pts - ep.since_s)
            ep.sent_confidence = confidence
            return self._emit(Phase.UPDATE, "milestone", ep, frame, confidence)
        if _confidence_rose(ep, confidence, pts):
            ep.sent_confidence = confidence
            return self._emit(Phase.UPDATE, "confidence", ep, frame, confidence)
        return None

    def reconfigure(self, rule: AnyRule, zones: ZoneMap, frame: _Frame | None) -> list[RuleEvent]:
        events = super().reconfigure(rule, zones, frame)
        self._zones = {name: z for name, z in self._zones.items() if name in rule.zones}
        return events

    def _end_episode(self, ep: _Episode, frame: _Frame, reason: Reason) -> RuleEvent:
        return self._emit(Phase.END, reason, ep, frame, ep.sent_confidence)

    def _emit(
        self, phase: Phase, reason: Reason, ep: _Episode, frame: _Frame, confidence: float
    ) -> RuleEvent:
        state = self._zones.get(ep.zone)
        last = state.last_box if state is not None else None
        xyxy, class_name = last if last is not None else ((0.0, 0.0, 0.0, 0.0), "")
        return self._event(
            phase,
            reason,
            ep,
            frame,
            confidence=confidence,
            dwell_s=frame.pts_s - ep.since_s,
            xyxy=xyxy,
            class_name=class_name or self.rule.classes[0],
        )


def _state_for(rule: CameraRule, zones: ZoneMap) -> _RuleState:
    if isinstance(rule, SmokeRule):
        return _SmokeRuleState(rule, zones)
    return _StationaryRuleState(rule, zones)


class CameraRules:
    """Every rule of one camera, with the tracker and the object memory they share."""

    def __init__(self, camera: CameraConfig, frame_w: int, frame_h: int, tz: tzinfo | str) -> None:
        self.camera = camera
        self.tz: tzinfo = ZoneInfo(tz) if isinstance(tz, str) else tz
        self.zones = ZoneMap(camera.zones, frame_w, frame_h)
        self.tracker = Tracker(camera.tracker, camera.source.detect_fps)
        self._rules: dict[str, _RuleState] = {
            rule.name: _state_for(rule, self.zones) for rule in camera.rules
        }
        self._last: _Frame | None = None

    @property
    def open_episodes(self) -> list[str]:
        """Keys of the episodes started and not yet ended."""
        return [key for state in self._rules.values() for key in state.episodes]

    def step(
        self,
        pts_s: float,
        time: datetime,
        detections: Detections,
        smoke_confirmed: bool | None = None,
    ) -> list[RuleEvent]:
        """Evaluate every rule on one processed frame; the lifecycle events it causes.

        ``pts_s`` is the frame's video time (strictly increasing), ``time`` its aware
        wall-clock time; ``smoke_confirmed`` is the classical smoke detector's verdict on
        this frame, ``None`` when it did not run.
        """
        if time.tzinfo is None or time.utcoffset() is None:
            raise ValueError(f"frame time {time} has no time zone: pass an aware UTC time")
        if self._last is not None and pts_s <= self._last.pts_s:
            raise ValueError(
                f"frame pts {pts_s} is not after the previous {self._last.pts_s}: the stream"
                " restarted its clock; flush() and start a new CameraRules"
            )
        kept = drop_masked(detections, self.zones)
        frame = _Frame(
            pts_s=pts_s,
            time=time.astimezone(UTC),
            local=time.astimezone(self.tz),
            detections=kept,
            tracks=self.tracker.update(kept, pts_s),
            smoke_confirmed=smoke_confirmed,
        )
        self._last = frame
        return [event for state in self._rules.values() for event in state.step(frame)]

    def flush(self, pts_s: float, time: datetime) -> list[RuleEvent]:
        """End every open episode (the stream ended)."""
        frame = self._frame_at(pts_s, time)
        return [event for state in self._rules.values() for event in state.end_all(frame, "flush")]

    def update_config(self, camera: CameraConfig) -> list[RuleEvent]:
        """Apply changed zones, rules and tracker settings, keeping the state that still fits.

        Objects keep their dwell clocks and open episodes stay open when their rule (same
        name and type) still watches their zone; the episodes of removed rules or zones end
        (reason ``config``) at the last processed frame.
        """
        zones = ZoneMap(camera.zones, self.zones.frame_w, self.zones.frame_h)
        if (camera.tracker, camera.source.detect_fps) != (
            self.camera.tracker,
            self.camera.source.detect_fps,
        ):
            self.tracker.reset(camera.tracker, camera.source.detect_fps)
        frame, events = self._last, []
        states: dict[str, _RuleState] = {}
        for rule in camera.rules:
            old = self._rules.pop(rule.name, None)
            if old is not None and type(old.rule) is type(rule):
                events += old.reconfigure(rule, zones, frame)
                states[rule.name] = old
            else:
                if old is not None and frame is not None:
                    events += old.end_all(frame, "config")
                states[rule.name] = _state_for(rule, zones)
        for removed in self._rules.values():
            if frame is not None:
                events += removed.end_all(frame, "config")
        self.camera, self.zones, self._rules = camera, zones, states
        return events

    def _frame_at(self, pts_s: float, time: datetime) -> _Frame:
        return _Frame(
            pts_s=pts_s,
            time=time.astimezone(UTC),
            local=time.astimezone(self.tz),
            detections=Detections.empty(),
            tracks=(),
            smoke_confirmed=None,
        )
