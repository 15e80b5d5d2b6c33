"""The camera rule engine (pure): detections of each processed frame in, alert lifecycle out.

One :class:`CameraRules` per camera, used identically by the live agent and by replay: call
:meth:`CameraRules.step` once per processed frame with the frame's video time (``pts_s``,
which times dwell, persistence and cooldown) and its wall-clock time (which only decides
schedules, in the site's time zone). Each episode (one object under one rule, or one zone
under the smoke rule) yields one ``start`` once its condition holds, ``update``s at dwell
milestones or when the confidence rises, and one ``end`` — never one event per frame.

This module composes the rules; each lives in its own: the episode bookkeeping every rule
shares in :mod:`~citywatch.edge.camera.episodes`, the parking and vending rules in
:mod:`~citywatch.edge.camera.stationary_rules`, the smoke rule in :mod:`~citywatch.edge.camera.smoke_rule`.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo

from citywatch.config.camera import CameraConfig, CameraRule, SmokeRule
from citywatch.edge.camera.episodes import RuleEvent, RuleFrame, RuleState
from citywatch.edge.camera.smoke_rule import SmokeRuleState
from citywatch.edge.camera.stationary_rules import StationaryRuleState
from citywatch.edge.camera.tracking import Tracker
from citywatch.edge.camera.zones import ZoneMap, drop_masked
from citywatch.models.detections import Detections

__all__ = ["CameraRules"]


def _state_for(rule: CameraRule, zones: ZoneMap) -> RuleState:
    if isinstance(rule, SmokeRule):
        return SmokeRuleState(rule, zones)
    return StationaryRuleState(rule, zones)


class CameraRules:
    """Every rule of one camera, with the tracker and the object memory they share."""

    def __init__(self, camera: CameraConfig, frame_w: int, frame_h: int, tz: tzinfo | str) -> None:
        self.camera = camera
        self.tz: tzinfo = ZoneInfo(tz) if isinstance(tz, str) else tz
        self.zones = ZoneMap(camera.zones, frame_w, frame_h)
        self.tracker = Tracker(camera.tracker, camera.source.detect_fps)
        self._rules: dict[str, RuleState] = {
            rule.name: _state_for(rule, self.zones) for rule in camera.rules
        }
        self._last: RuleFrame | None = None

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
        frame = RuleFrame(
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
        states: dict[str, RuleState] = {}
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

    def _frame_at(self, pts_s: float, time: datetime) -> RuleFrame:
        return RuleFrame(
            pts_s=pts_s,
            time=time.astimezone(UTC),
            local=time.astimezone(self.tz),
            detections=Detections.empty(),
            tracks=(),
            smoke_confirmed=None,
        )
