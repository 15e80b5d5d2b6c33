"""Turn a waterlogging sensor's level changes into alert messages (pure).

One flooding episode (dry → wet → dry) is one alert lifecycle: ``start`` when the first
level is confirmed, ``update`` on each level change, ``end`` when the water has receded.
Ids are derived from the data, so a replay of the same readings produces the same ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from citywatch.config.sensor import LevelPolicy, SensorConfig
from citywatch.contracts import Alert, AlertKind, DeviceKind, DeviceRef, Location, Phase, Telemetry
from citywatch.edge.levels import LevelChange

RULE = "depth_level"


@dataclass
class Episode:
    """The alert lifecycle of one sensor's current flooding episode."""

    episode_id: str
    seq: int = 0


@dataclass
class SensorAlerts:
    site: str
    sensor: SensorConfig
    policy: LevelPolicy
    episode: Episode | None = field(default=None)

    @property
    def device(self) -> DeviceRef:
        return DeviceRef(site=self.site, kind=DeviceKind.SENSOR, id=self.sensor.id)

    def alert_for(self, change: LevelChange) -> Alert:
        """The alert message announcing ``change`` (start, update or end of the episode)."""
        if change.phase == "start" or self.episode is None:
            stamp = int(change.since.timestamp() * 1000)
            self.episode = Episode(episode_id=f"{self.sensor.id}.{stamp}")
        else:
            self.episode.seq += 1
        episode = self.episode
        level = change.level if change.level is not None else change.previous
        threshold = next((lv.depth_cm for lv in self.policy.levels if lv.name == level), None)
        position = self.sensor.placement.position
        alert = Alert(
            id=f"{episode.episode_id}.{episode.seq}",
            episode_id=episode.episode_id,
            seq=episode.seq,
            device=self.device,
            kind=AlertKind.WATERLOGGING,
            rule=RULE,
            phase=Phase(change.phase),
            event_time=change.time,
            location=Location(
                zone=self.sensor.name or self.sensor.id,
                lat=position.lat if position else None,
                lon=position.lon if position else None,
            ),
            confidence=1.0,
            attributes={
                "depth_cm": round(change.depth_cm, 1),
                "peak_depth_cm": round(change.peak_depth_cm, 1),
                "level": change.level or "dry",
                "previous_level": change.previous or "dry",
                **({"level_depth_cm": threshold} if threshold is not None else {}),
                "district": self.sensor.placement.district,
            },
        )
        if change.phase == "end":
            self.episode = None
        return alert

    def telemetry(
        self, time: datetime, depth_cm: float | None, distance_mm: float, battery_pct: float
    ) -> Telemetry:
        """A periodic measurement message for the reading taken at ``time``."""
        metrics = {"distance_mm": round(distance_mm, 1), "battery_pct": round(battery_pct, 1)}
        if depth_cm is not None:
            metrics["depth_cm"] = round(depth_cm, 1)
        stamp = int(time.timestamp() * 1000)
        return Telemetry(
            id=f"{self.sensor.id}.t{stamp}", device=self.device, event_time=time, metrics=metrics
        )
