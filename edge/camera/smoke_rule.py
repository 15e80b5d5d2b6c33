"""The smoke rule: smoke present in at least ``min_fraction`` of the processed frames of a
window, per zone, optionally confirmed by the classical smoke detector.

An open episode ends ("cleared") only once no smoke was seen in the zone for
``clear_after`` and the window's share is under half ``min_fraction``: a gust that blows the
plume out of sight for 15 s leaves one fire one episode."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from citywatch.config.camera import SmokeRule
from citywatch.contracts.messages import Phase
from citywatch.edge.camera.episodes import (
    EPS_S,
    AnyRule,
    Box,
    Episode,
    Reason,
    RuleEvent,
    RuleFrame,
    RuleState,
    confidence_rose,
    next_milestone,
    schedule_active,
)
from citywatch.edge.camera.zones import ZoneMap, anchor_points, area_fractions

__all__ = ["SmokeRuleState"]


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
        self.last_hit_s: float | None = None


class SmokeRuleState(RuleState):
    """Smoke: present in at least ``min_fraction`` of the processed frames of a window."""

    rule: SmokeRule

    def __init__(self, rule: SmokeRule, zones: ZoneMap) -> None:
        super().__init__(rule, zones)
        self._zones: dict[str, _SmokeZone] = {}

    def step(self, frame: RuleFrame) -> list[RuleEvent]:
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
                state.last_hit_s = pts
            else:
                sample = _SmokeSample(pts, False, 0.0, None, "")
            state.samples.append(sample)
            while state.samples and state.samples[0].pts_s < pts - window - EPS_S:
                state.samples.popleft()
            event = self._judge(zone, state, frame, active, window)
            if event is not None:
                events.append(event)
        return events

    def _judge(
        self, zone: str, state: _SmokeZone, frame: RuleFrame, active: bool, window: float
    ) -> RuleEvent | None:
        rule, pts = self.rule, frame.pts_s
        hits = [s for s in state.samples if s.hit]
        fraction = len(hits) / len(state.samples)
        confidence = float(np.mean([s.confidence for s in hits])) if hits else 0.0
        ep = self.episodes.get(f"{rule.name}:{zone}")
        if ep is None:
            covered = pts - state.first_pts_s >= window - EPS_S
            if not (active and covered and fraction >= rule.min_fraction - EPS_S):
                return None
            if self._cooling(zone, None, pts):
                return None
            ep = Episode(
                key=f"{rule.name}:{zone}",
                zone=zone,
                start_s=pts,
                start_time=frame.time,
                sent_confidence=confidence,
                next_milestone_s=next_milestone(rule, pts - hits[0].pts_s),
                place=state.last_box[0] if state.last_box else (0.0, 0.0, 0.0, 0.0),
                last_sent_s=pts,
                since_s=hits[0].pts_s,
            )
            self.episodes[ep.key] = ep
            return self._emit(Phase.START, "persistence", ep, frame, confidence)
        if not active:
            return self._emit(Phase.END, "schedule", ep, frame, confidence)
        clear_s = pts - (state.last_hit_s if state.last_hit_s is not None else ep.start_s)
        if fraction < rule.min_fraction / 2:
            if clear_s >= rule.clear_after.total_seconds() - EPS_S:
                return self._emit(Phase.END, "cleared", ep, frame, confidence)
            return None  # a gust: no updates while the plume is out of sight
        if ep.next_milestone_s is not None and pts - ep.since_s >= ep.next_milestone_s - EPS_S:
            ep.next_milestone_s = next_milestone(rule, pts - ep.since_s)
            ep.sent_confidence = confidence
            return self._emit(Phase.UPDATE, "milestone", ep, frame, confidence)
        if confidence_rose(ep, confidence, pts):
            ep.sent_confidence = confidence
            return self._emit(Phase.UPDATE, "confidence", ep, frame, confidence)
        return None

    def reconfigure(
        self, rule: AnyRule, zones: ZoneMap, frame: RuleFrame | None
    ) -> list[RuleEvent]:
        events = super().reconfigure(rule, zones, frame)
        self._zones = {name: z for name, z in self._zones.items() if name in rule.zones}
        return events

    def _end_episode(self, ep: Episode, frame: RuleFrame, reason: Reason) -> RuleEvent:
        return self._emit(Phase.END, reason, ep, frame, ep.sent_confidence)

    def _emit(
        self, phase: Phase, reason: Reason, ep: Episode, frame: RuleFrame, confidence: float
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
