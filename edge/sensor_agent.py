"""The sensor gateway agent: read each sensor, track its level, publish alerts and telemetry.

An I/O shell around :mod:`citywatch.edge.levels` and :mod:`citywatch.edge.sensor_alerts`:
it owns the clock and the loop; decisions are made by the pure cores.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from citywatch.config import CitywatchConfig
from citywatch.config.sensor import SensorConfig
from citywatch.contracts import Alert
from citywatch.edge.levels import LevelTracker, depth_from_distance
from citywatch.edge.sensor_alerts import SensorAlerts
from citywatch.edge.session import EdgeSession
from citywatch.hardware.water_sim import SimulatedWaterSensor

log = logging.getLogger(__name__)


@dataclass
class SensorChannel:
    """Everything the agent keeps for one sensor."""

    config: SensorConfig
    source: SimulatedWaterSensor
    tracker: LevelTracker
    alerts: SensorAlerts
    next_sample: float = 0.0
    next_telemetry: float = 0.0


@dataclass
class SensorAgentStats:
    readings: int = 0
    alerts: list[Alert] = field(default_factory=list)
    telemetry: int = 0


def build_channels(config: CitywatchConfig, gateway_id: str) -> list[SensorChannel]:
    """One channel per sensor behind ``gateway_id`` (only simulated transports run here yet)."""
    channels = []
    for index, sensor in enumerate(s for s in config.devices.sensors if s.gateway == gateway_id):
        if sensor.transport.type != "simulated":
            raise NotImplementedError(
                f"sensor {sensor.id}: transport {sensor.transport.type!r} is not available in this"
                " build; use transport.type: simulated"
            )
        policy = config.level_policy(sensor)
        channels.append(
            SensorChannel(
                config=sensor,
                source=SimulatedWaterSensor(sensor.mount_height_cm, sensor.simulation, seed=index),
                tracker=LevelTracker(policy),
                alerts=SensorAlerts(site=config.site.id, sensor=sensor, policy=policy),
            )
        )
    if not channels:
        raise ValueError(f"gateway {gateway_id!r} has no sensors in the config")
    return channels


def run_sensor_agent(
    channels: list[SensorChannel],
    session: EdgeSession,
    stop: threading.Event,
    duration_s: float | None = None,
    on_alert: Callable[[Alert], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    stats: SensorAgentStats | None = None,
) -> SensorAgentStats:
    """Sample every sensor at its interval until ``stop`` is set or ``duration_s`` elapsed.

    ``stats`` may be passed in to watch progress from another thread.
    """
    stats = stats if stats is not None else SensorAgentStats()
    started = clock()
    while not stop.is_set():
        elapsed = clock() - started
        if duration_s is not None and elapsed >= duration_s:
            break
        now = datetime.now(UTC)
        for channel in channels:
            if elapsed < channel.next_sample:
                continue
            channel.next_sample = elapsed + channel.config.sample_interval.total_seconds()
            reading = channel.source.read(now, elapsed)
            stats.readings += 1
            depth = depth_from_distance(
                reading.distance_mm, channel.config.mount_height_cm, channel.config.blind_zone_cm
            )
            if depth is not None:
                change = channel.tracker.observe(now, depth)
                if change is not None:
                    alert = channel.alerts.alert_for(change)
                    session.publish_alert(alert)
                    stats.alerts.append(alert)
                    log.info(
                        "%s %s: %s (%.1f cm)",
                        channel.config.id,
                        alert.phase.value,
                        alert.attributes["level"],
                        change.depth_cm,
                    )
                    if on_alert is not None:
                        on_alert(alert)
            if elapsed >= channel.next_telemetry:
                channel.next_telemetry = elapsed + channel.config.telemetry_interval.total_seconds()
                session.publish_telemetry(
                    channel.alerts.telemetry(now, depth, reading.distance_mm, reading.battery_pct)
                )
                stats.telemetry += 1
        session.pump()
        stop.wait(0.2)
    return stats
