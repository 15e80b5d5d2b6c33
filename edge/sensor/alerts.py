"""Turn a waterlogging sensor's level, rate and fault changes into messages (pure).

One flooding episode (dry → wet → dry) is one alert lifecycle: ``start`` when the first
level is confirmed, ``update`` on each level change, ``end`` when the water has receded. A
fast rise is its own episode (rule ``rate_of_rise``), and so is each sensor fault (kind
``device_fault``, rule ``fault_<type>``): they start and end independently. Ids are derived
from the data, so a replay of the same readings produces the same ids.

A fault or a fast rise can hold for hours with nothing new to say (a unit stuck for a day,
a radio silent all night), and the stream ages out an episode it has not heard from; so
:meth:`SensorAlerts.refreshes` repeats the last message of each open rate or fault episode as
an ``update`` once ``every`` has passed since it was last sent, exactly as a held flood level
is repeated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from citywatch.config.sensor import LevelPolicy, SensorConfig
from citywatch.contracts import Alert, AlertKind, DeviceKind, DeviceRef, Location, Phase, Telemetry
from citywatch.contracts.messages import AttributeValue
from citywatch.edge.sensor.faults import FaultChange
from citywatch.edge.sensor.levels import LevelChange
from citywatch.edge.sensor.rate import RateChange

RULE = "depth_level"
RATE_RULE = "rate_of_rise"
FAULT_RULE_PREFIX = "fault_"


@dataclass
class Episode:
    """The alert lifecycle of one sensor's current episode under one rule."""

    episode_id: str
    seq: int = 0
    last: Alert | None = None
    """The episode's last message (a refresh repeats it as an update)."""


@dataclass
class SensorAlerts:
    site: str
    sensor: SensorConfig
    policy: LevelPolicy
    episode: Episode | None = field(default=None)
    """The current flooding (depth level) episode."""
    episodes: dict[str, Episode] = field(default_factory=dict)
    """Current rate-of-rise and fault episodes, by rule."""

    @property
    def device(self) -> DeviceRef:
        return DeviceRef(site=self.site, kind=DeviceKind.SENSOR, id=self.sensor.id)

    def alert_for(self, change: LevelChange) -> Alert:
        """The alert message announcing ``change`` (start, update or end of the episode)."""
        if change.phase == "start" or self.episode is None:
            self.episode = Episode(episode_id=f"{self.sensor.id}.{_stamp(change.since)}")
        else:
            self.episode.seq += 1
        episode = self.episode
        level = change.level if change.level is not None else change.previous
        threshold = next((lv.depth_cm for lv in self.policy.levels if lv.name == level), None)
        alert = self._alert(
            episode,
            AlertKind.WATERLOGGING,
            RULE,
            change.phase,
            change.time,
            {
                "depth_cm": round(change.depth_cm, 1),
                "peak_depth_cm": round(change.peak_depth_cm, 1),
                "previous_level": change.previous or "dry",
                **({"level_depth_cm": threshold} if threshold is not None else {}),
            },
            level=change.level or "dry",
        )
        if change.phase == "end":
            self.episode = None
        return alert

    def rate_alert(self, change: RateChange) -> Alert:
        """The alert message of a fast rise starting or ending."""
        episode = self._episode(RATE_RULE, "rise", change.phase, change.since)
        return self._alert(
            episode,
            AlertKind.WATERLOGGING,
            RATE_RULE,
            change.phase,
            change.time,
            {
                "rate_cm_per_min": round(change.rate_cm_per_min, 2),
                "peak_rate_cm_per_min": round(change.peak_rate_cm_per_min, 2),
                "depth_cm": round(change.depth_cm, 1),
                "threshold_cm_per_min": self.sensor.rate_of_rise.rise_cm_per_min,
            },
        )

    def fault_alert(self, change: FaultChange, distance_mm: float | None) -> Alert:
        """The device-fault alert message of a sensor fault starting or clearing."""
        rule = f"{FAULT_RULE_PREFIX}{change.fault}"
        episode = self._episode(rule, change.fault, change.phase, change.since)
        attributes: dict[str, AttributeValue] = {"fault": change.fault, "detail": change.detail}
        if distance_mm is not None:
            attributes["distance_mm"] = round(distance_mm, 1)
        return self._alert(
            episode, AlertKind.DEVICE_FAULT, rule, change.phase, change.time, attributes
        )

    def _episode(self, rule: str, tag: str, phase: str, since: datetime) -> Episode:
        episode = self.episodes.get(rule)
        if phase == "start" or episode is None:
            episode = Episode(episode_id=f"{self.sensor.id}.{tag}.{_stamp(since)}")
        else:
            episode.seq += 1
        if phase == "end":
            self.episodes.pop(rule, None)
        else:
            self.episodes[rule] = episode
        return episode

    def refreshes(self, time: datetime, every: timedelta | None) -> list[Alert]:
        """An ``update`` for each open rate or fault episode not heard of for ``every``
        before ``time`` (the condition still holds: its work order must not age out)."""
        if every is None:
            return []
        out = []
        for episode in self.episodes.values():
            last = episode.last
            if last is None or time - last.event_time < every:
                continue
            episode.seq += 1
            refreshed = last.model_copy(
                update={
                    "id": f"{episode.episode_id}.{episode.seq}",
                    "seq": episode.seq,
                    "phase": Phase.UPDATE,
                    "event_time": time,
                }
            )
            episode.last = refreshed
            out.append(refreshed)
        return out

    def _alert(
        self,
        episode: Episode,
        kind: AlertKind,
        rule: str,
        phase: str,
        time: datetime,
        attributes: dict[str, AttributeValue],
        level: str | None = None,
    ) -> Alert:
        position = self.sensor.placement.position
        alert = Alert(
            id=f"{episode.episode_id}.{episode.seq}",
            episode_id=episode.episode_id,
            seq=episode.seq,
            device=self.device,
            kind=kind,
            rule=rule,
            phase=Phase(phase),
            event_time=time,
            location=Location(
                zone=self.sensor.name or self.sensor.id,
                lat=position.lat if position else None,
                lon=position.lon if position else None,
            ),
            confidence=1.0,
            level=level,
            attributes={**attributes, "district": self.sensor.placement.district},
        )
        episode.last = alert
        return alert

    def telemetry(
        self,
        time: datetime,
        depth_cm: float | None,
        distance_mm: float,
        battery_pct: float | None,
        extra: dict[str, float] | None = None,
    ) -> Telemetry:
        """A periodic measurement message for the reading taken at ``time``."""
        metrics: dict[str, float] = {}
        if math.isfinite(distance_mm):
            metrics["distance_mm"] = round(distance_mm, 1)
        if battery_pct is not None:
            metrics["battery_pct"] = round(battery_pct, 1)
        if depth_cm is not None:
            metrics["depth_cm"] = round(depth_cm, 1)
        for name, value in (extra or {}).items():
            if math.isfinite(value):
                metrics[name] = round(value, 3)
        return Telemetry(
            id=f"{self.sensor.id}.t{_stamp(time)}",
            device=self.device,
            event_time=time,
            metrics=metrics,
        )


def _stamp(time: datetime) -> int:
    return int(time.timestamp() * 1000)
