"""The stationary-object rules (illegal parking, street vending): an object standing in a
zone past a dwell time, and for vending, with a person near it.

What ends an episode: the schedule closing, the object lost beyond ``lost_grace``
(immediately), or an end condition that held for ``end_after``: moved, left the zone, or
its smoothed confidence under ``end_confidence`` (a lower floor than ``min_confidence``,
so a car whose confidence hovers around the start floor stays one episode). Back still in
its place within ``end_after``, the object continues its episode and its dwell clock."""

from __future__ import annotations

import numpy as np

from citywatch.config.camera import IllegalParkingRule, SmokeRule, StreetVendingRule
from citywatch.contracts.messages import Phase
from citywatch.edge.camera.episodes import (
    EPS_S,
    AnyRule,
    Episode,
    Reason,
    RuleEvent,
    RuleFrame,
    RuleState,
    confidence_rose,
    next_milestone,
    schedule_active,
)
from citywatch.edge.camera.stationary import StationaryObject, StationaryObjects, StationaryParams
from citywatch.edge.camera.zones import ZoneMap, anchor_points, area_fractions

__all__ = ["StationaryRuleState"]


class StationaryRuleState(RuleState):
    """Illegal parking and street vending: an object standing in a zone past a dwell time."""

    rule: IllegalParkingRule | StreetVendingRule

    def __init__(self, rule: IllegalParkingRule | StreetVendingRule, zones: ZoneMap) -> None:
        super().__init__(rule, zones)
        self.objects = StationaryObjects(StationaryParams.from_rule(rule), rule.classes)
        self._person_seen_s: dict[int, float] = {}

    def reconfigure(
        self, rule: AnyRule, zones: ZoneMap, frame: RuleFrame | None
    ) -> list[RuleEvent]:
        if not isinstance(rule, SmokeRule):
            self.objects.params = StationaryParams.from_rule(rule)
            self.objects.classes = frozenset(rule.classes)
        return super().reconfigure(rule, zones, frame)

    def step(self, frame: RuleFrame) -> list[RuleEvent]:
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

    def _start(self, obj: StationaryObject, frame: RuleFrame, active: bool) -> RuleEvent | None:
        rule, pts = self.rule, frame.pts_s
        if not (active and obj.seen_at(pts) and obj.is_stationary):
            return None
        dwell = obj.dwell_s(pts)
        if dwell < rule.dwell.total_seconds() - EPS_S or obj.confidence < rule.min_confidence:
            return None
        area = float(area_fractions(np.array(obj.xyxy), self.zones.frame_w, self.zones.frame_h)[0])
        if not rule.min_area <= area <= rule.max_area:
            return None
        if self._needs_person(obj, pts):
            return None
        zone = self.zones.first_zone(self._anchor(obj), rule.zones)
        if zone is None or self._cooling(zone, obj.xyxy, pts):
            return None
        ep = Episode(
            key=self._key(obj),
            zone=zone,
            start_s=pts,
            start_time=frame.time,
            sent_confidence=obj.confidence,
            next_milestone_s=next_milestone(rule, dwell),
            place=obj.xyxy,
            last_sent_s=pts,
        )
        self.episodes[ep.key] = ep
        return self._emit(Phase.START, "dwell", ep, frame, obj)

    def _follow(
        self, ep: Episode, obj: StationaryObject, frame: RuleFrame, active: bool
    ) -> RuleEvent | None:
        pts = frame.pts_s
        if obj.is_stationary:
            ep.dwell_s = obj.dwell_s(min(pts, obj.last_seen_s))
        if not active:
            return self._end(ep, frame, obj, "schedule")
        reason = self._end_condition(ep, obj)
        if reason is not None:
            ep.ending = (reason, pts if ep.ending is None else ep.ending[1])
            if pts - ep.ending[1] >= self.rule.end_after.total_seconds() - EPS_S:
                return self._end(ep, frame, obj, reason)
            return None
        ep.ending = None
        if not obj.seen_at(pts):
            return None
        dwell = obj.dwell_s(pts)
        if ep.next_milestone_s is not None and dwell >= ep.next_milestone_s - EPS_S:
            ep.next_milestone_s = next_milestone(self.rule, dwell)
            ep.sent_confidence = obj.confidence
            return self._emit(Phase.UPDATE, "milestone", ep, frame, obj)
        if confidence_rose(ep, obj.confidence, pts):
            ep.sent_confidence = obj.confidence
            return self._emit(Phase.UPDATE, "confidence", ep, frame, obj)
        return None

    def _end_condition(self, ep: Episode, obj: StationaryObject) -> Reason | None:
        """Why the episode would end now; it ends once that held for ``end_after``."""
        if not obj.is_stationary:
            return "moved"
        if not bool(self.zones.contains(ep.zone, np.array([self._anchor(obj)]))[0]):
            return "left_zone"
        if obj.confidence < min(self.rule.end_confidence, self.rule.min_confidence):
            return "low_confidence"
        return None

    def _end(
        self,
        ep: Episode,
        frame: RuleFrame,
        obj: StationaryObject,
        reason: Reason,
        dwell_at: float | None = None,
    ) -> RuleEvent:
        return self._emit(Phase.END, reason, ep, frame, obj, dwell_at)

    def _end_episode(self, ep: Episode, frame: RuleFrame, reason: Reason) -> RuleEvent:
        obj = next(o for o in self.objects.objects if self._key(o) == ep.key)
        return self._end(ep, frame, obj, reason)

    def _emit(
        self,
        phase: Phase,
        reason: Reason,
        ep: Episode,
        frame: RuleFrame,
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

    def _note_people(self, frame: RuleFrame) -> None:
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
        return seen is None or pts_s - seen > window + EPS_S
