"""The sensor gateway agent: read each sensor, run its logic, publish alerts and telemetry.

An I/O shell around :mod:`citywatch.edge.sensor.logic`: it owns the clock and the loop.
Simulated sensors are sampled here; Modbus buses and LoRaWAN network servers feed an inbox
from their own threads (:mod:`citywatch.edge.sensor.sources`). Everything one pass of the
loop decides is stored in the outbox in one transaction.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from citywatch.config import CitywatchConfig
from citywatch.config.sensor import SensorConfig, SimulatedTransport
from citywatch.contracts import Alert, Telemetry
from citywatch.edge.outbox import PutResult
from citywatch.edge.sensor.levels import LevelTracker
from citywatch.edge.sensor.logic import SensorLogic
from citywatch.edge.sensor.sources import Counts, Inbox, open_sources
from citywatch.hardware.water.reading import WaterReading

__all__ = [
    "AgentClock",
    "Publisher",
    "SensorAgentStats",
    "SensorChannel",
    "build_channels",
    "run_sensor_agent",
    "run_sensor_gateway",
]

log = logging.getLogger(__name__)
SILENCE_CHECK_S = 1.0


class Publisher(Protocol):
    """What the agent needs of a session (an :class:`EdgeSession`, or a test double)."""

    def publish_many(self, messages: Sequence[Alert | Telemetry]) -> PutResult: ...

    def pump(self) -> int: ...


class Sampler(Protocol):
    """A sensor the agent polls itself (the simulated transport); ``None`` when it missed."""

    def sample(self, time: datetime, elapsed_s: float) -> WaterReading | None: ...


SamplerFactory = Callable[[SensorConfig, int], Sampler]
"""Builds the sampler of a ``transport: simulated`` sensor from its config and index. The
composition root (CLI, demo, tests) passes the simulator's, so gateway code never imports it."""


@dataclass
class SensorChannel:
    """Everything the agent keeps for one sensor."""

    config: SensorConfig
    logic: SensorLogic
    source: Sampler | None
    """Sampled by the agent itself (simulated transport); ``None`` for inbox-fed sensors."""
    next_sample: float = 0.0

    @property
    def tracker(self) -> LevelTracker:
        return self.logic.tracker


@dataclass
class SensorAgentStats:
    readings: int = 0
    alerts: list[Alert] = field(default_factory=list)
    telemetry: int = 0
    dropouts: int = 0
    """Samples a simulated sensor did not answer."""
    counts: Counts = field(default_factory=Counts)
    """Source errors and readings by name (``modbus.ModbusReadError``, ``lorawan.readings``)."""


class AgentClock:
    """UTC that never goes back: the wall clock at start plus monotonic time since.

    An NTP step backwards would otherwise make readings look older than the last one. The
    offset from the true time is what the session reports as clock skew.
    """

    def __init__(self) -> None:
        self._wall = datetime.now(UTC)
        self._mono = time.monotonic()

    def __call__(self) -> datetime:
        return self._wall + timedelta(seconds=time.monotonic() - self._mono)


def build_channels(
    config: CitywatchConfig,
    gateway_id: str,
    started_at: datetime | None = None,
    simulator: SamplerFactory | None = None,
) -> list[SensorChannel]:
    """One channel per sensor behind ``gateway_id``, simulated ones sampled by ``simulator``."""
    started_at = started_at or datetime.now(UTC)
    sensors = [s for s in config.devices.sensors if s.gateway == gateway_id]
    if not sensors:
        raise ValueError(f"gateway {gateway_id!r} has no sensors in the config")
    channels = []
    for index, sensor in enumerate(sensors):
        source = None
        if isinstance(sensor.transport, SimulatedTransport):
            if simulator is None:
                raise ValueError(
                    f"sensor {sensor.id!r} has transport: simulated, but this gateway runs no"
                    " simulator; give it a modbus or lorawan transport"
                )
            source = simulator(sensor, index)
        logic = SensorLogic(config.site.id, sensor, config.level_policy(sensor), started_at)
        # Spread the first samples over one interval so a large gateway polls evenly.
        offset = sensor.sample_interval.total_seconds() * index / len(sensors)
        channels.append(SensorChannel(sensor, logic, source, next_sample=offset))
    return channels


def run_sensor_agent(
    channels: list[SensorChannel],
    session: Publisher,
    stop: threading.Event,
    duration_s: float | None = None,
    on_alert: Callable[[Alert], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    stats: SensorAgentStats | None = None,
    inbox: Inbox | None = None,
    now: Callable[[], datetime] | None = None,
) -> SensorAgentStats:
    """Run every sensor until ``stop`` is set or ``duration_s`` elapsed.

    ``stats`` may be passed in to watch progress from another thread; ``inbox`` carries the
    readings of Modbus and LoRaWAN sensors (see :func:`open_sources`).
    """
    stats = stats if stats is not None else SensorAgentStats()
    now = now or AgentClock()
    by_id = {channel.config.id: channel for channel in channels}
    polled = [c for c in channels if c.source is not None]
    started = clock()
    last_check = -SILENCE_CHECK_S
    waiting: tuple[str, WaterReading] | None = None
    while not stop.is_set():
        elapsed = clock() - started
        if duration_s is not None and elapsed >= duration_s:
            break
        wall = now()
        batch: list[Alert | Telemetry] = []
        for channel in polled:
            if elapsed < channel.next_sample:
                continue
            interval = channel.config.sample_interval.total_seconds()
            channel.next_sample += interval
            if channel.next_sample < elapsed:  # fell behind: skip, do not burst
                channel.next_sample = elapsed + interval
            assert channel.source is not None
            reading = channel.source.sample(wall, elapsed)
            if reading is None:
                stats.dropouts += 1
                continue
            batch += _observe(channel, reading, stats)
        if inbox is not None:
            while True:
                if waiting is not None:
                    sensor_id, reading = waiting
                    waiting = None
                else:
                    try:
                        sensor_id, reading = inbox.get_nowait()
                    except queue.Empty:
                        break
                target = by_id.get(sensor_id)
                if target is not None:
                    batch += _observe(target, reading, stats)
        if elapsed - last_check >= SILENCE_CHECK_S:
            last_check = elapsed
            for channel in channels:
                batch += channel.logic.tick(wall)
        if batch:
            _publish(batch, session, stats, on_alert)
        session.pump()
        next_due = min((c.next_sample for c in polled), default=elapsed + 0.2)
        timeout = max(0.0, min(0.2, next_due - (clock() - started)))
        if inbox is not None:
            with contextlib.suppress(queue.Empty):
                waiting = inbox.get(timeout=timeout)
        elif timeout > 0:
            stop.wait(timeout)
    return stats


def run_sensor_gateway(
    config: CitywatchConfig,
    gateway_id: str,
    session: Publisher,
    stop: threading.Event,
    duration_s: float | None = None,
    secrets_dir: Path | None = None,
    stats: SensorAgentStats | None = None,
    simulator: SamplerFactory | None = None,
) -> SensorAgentStats:
    """Build the gateway's channels, open its Modbus and LoRaWAN sources, run until stopped."""
    channels = build_channels(config, gateway_id, simulator=simulator)
    stats = stats if stats is not None else SensorAgentStats()
    inbox: Inbox = queue.SimpleQueue()
    sources = open_sources(
        [c.config for c in channels if c.source is None],
        inbox,
        stats.counts,
        secrets_dir,
        client_prefix=f"citywatch-lorawan-{gateway_id}",
    )
    try:
        return run_sensor_agent(
            channels,
            session,
            stop,
            duration_s,
            stats=stats,
            inbox=inbox if sources else None,
        )
    finally:
        for source in sources:
            source.close()


def _observe(
    channel: SensorChannel, reading: WaterReading, stats: SensorAgentStats
) -> list[Alert | Telemetry]:
    stats.readings += 1
    return channel.logic.observe(reading)


def _publish(
    batch: list[Alert | Telemetry],
    session: Publisher,
    stats: SensorAgentStats,
    on_alert: Callable[[Alert], None] | None,
) -> None:
    session.publish_many(batch)
    for message in batch:
        if isinstance(message, Telemetry):
            stats.telemetry += 1
            continue
        stats.alerts.append(message)
        log.info(
            "%s %s %s %s: %s",
            message.device.id,
            message.rule,
            message.phase.value,
            message.id,
            message.level or message.attributes.get("fault", ""),
            extra={"device": message.device.id, "alert_id": message.id},
        )
        if on_alert is not None:
            on_alert(message)
