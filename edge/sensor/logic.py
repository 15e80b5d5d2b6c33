"""Everything a gateway decides about one waterlogging sensor, from its readings alone (pure).

One reading goes through, in order: fault detection on the raw value (stuck, out of range,
erratic, battery), the depth conversion and the median spike filter, then, only while the
sensor is trusted, the level tracker (hysteresis, minimum duration) and the rate-of-rise
tracker, both fed the median dated at its window's middle reading (so the filter's delay
does not add to ``min_duration``); telemetry goes out at its own interval, carrying every
sample since the last one when ``telemetry_every_sample`` is set. Silence is checked by
:meth:`tick`. The output is the list of messages to publish, in the order they were
decided; times are the readings' own, so a replay of recorded readings yields the same
messages with the same ids. While the water holds at a level the level is repeated as an
update every ``update_every`` (a flood held for hours at "closure" is still a flood: its
work order must not age out for want of messages); an open fault or fast-rise episode is
repeated the same way (:meth:`SensorAlerts.refreshes`), on readings and on :meth:`tick`, since
a silent sensor sends no readings at all.
"""

from __future__ import annotations

from datetime import UTC, datetime

from citywatch.config.sensor import LevelPolicy, SensorConfig
from citywatch.contracts import Alert, Reading, Telemetry
from citywatch.edge.sensor.alerts import SensorAlerts
from citywatch.edge.sensor.faults import FaultChange, FaultDetector
from citywatch.edge.sensor.levels import LevelTracker, depth_from_distance
from citywatch.edge.sensor.rate import RateOfRiseTracker
from citywatch.edge.sensor.spikes import MedianFilter
from citywatch.hardware.water.reading import WaterReading

__all__ = ["SensorLogic"]

Message = Alert | Telemetry


class SensorLogic:
    """The pure core of one sensor: readings in, alert and telemetry messages out."""

    def __init__(
        self, site: str, sensor: SensorConfig, policy: LevelPolicy, started_at: datetime
    ) -> None:
        self.sensor = sensor
        self.tracker = LevelTracker(policy)
        self.median = MedianFilter(sensor.spike_filter.window)
        self.rate = RateOfRiseTracker(sensor.rate_of_rise)
        self.faults = FaultDetector(
            sensor.faults,
            mount_height_cm=sensor.mount_height_cm,
            blind_zone_cm=sensor.blind_zone_cm,
            sample_interval=sensor.sample_interval,
            started_at=started_at,
        )
        self.alerts = SensorAlerts(site=site, sensor=sensor, policy=policy)
        self.readings = 0
        self.late = 0
        """Readings dropped because they were not newer than the last one (a retransmitted
        LoRaWAN history record, a duplicate uplink)."""
        self.last: WaterReading | None = None
        self.filtered_depth_cm: float | None = None
        self._last_time: datetime | None = None
        self._next_telemetry: datetime | None = None
        self._held: list[Reading] = []
        """Samples since the last telemetry message (``telemetry_every_sample``)."""
        self._update_every = policy.update_every
        self._level_sent_at: datetime | None = None
        """When the flooding episode's last alert went out (for ``update_every``)."""

    def observe(self, reading: WaterReading) -> list[Message]:
        """Take one reading; return the messages it causes, in order."""
        time = reading.time.astimezone(UTC)
        if self._last_time is not None and time <= self._last_time:
            self.late += 1
            return []
        self._last_time = time
        self.readings += 1
        self.last = reading
        sensor = self.sensor
        out: list[Message] = []
        was_trusted = self.faults.trusted

        usable = self.faults.usable(reading.distance_mm, reading.flagged_invalid)
        depth = (
            depth_from_distance(reading.distance_mm, sensor.mount_height_cm, sensor.blind_zone_cm)
            if usable
            else None
        )
        filtered: float | None = None
        centre = time
        if depth is not None:
            centre, filtered = self.median.push(time, depth)
        changes = self.faults.observe(
            time, reading.distance_mm, reading.battery_pct, reading.flagged_invalid
        )
        out += self._fault_alerts(changes)
        out += self.alerts.refreshes(time, self._update_every)

        if self.faults.trusted and filtered is not None:
            if not was_trusted:
                # The window spans the fault: start the slope afresh.
                self.rate.reset()
            self.filtered_depth_cm = filtered
            level_change = self.tracker.observe(time, filtered, since=centre)
            if level_change is None and self._refresh_due(time):
                level_change = self.tracker.holding(time)
            if level_change is not None:
                self._level_sent_at = time
                out.append(self.alerts.alert_for(level_change))
            rate_change = self.rate.observe(centre, filtered)
            if rate_change is not None:
                out.append(self.alerts.rate_alert(rate_change))
        elif not self.faults.trusted:
            self.filtered_depth_cm = None

        due = self._next_telemetry is None or time >= self._next_telemetry
        if due or sensor.telemetry_every_sample:
            extra = {"status": float(reading.status), "faults": float(len(self.faults.active))}
            if self.rate.rate_cm_per_min is not None:
                extra["rate_cm_per_min"] = self.rate.rate_cm_per_min
            message = self.alerts.telemetry(
                time, self.filtered_depth_cm, reading.distance_mm, reading.battery_pct, extra
            )
            if due:
                self._next_telemetry = time + sensor.telemetry_interval
                if self._held:
                    message = message.model_copy(update={"earlier": tuple(self._held)})
                    self._held = []
                out.append(message)
            else:
                self._held.append(Reading(event_time=time, metrics=message.metrics))
        return out

    def _refresh_due(self, time: datetime) -> bool:
        """Whether a held level is due to be repeated (``update_every`` since the last)."""
        every, sent = self._update_every, self._level_sent_at
        return every is not None and sent is not None and time - sent >= every

    def tick(self, now: datetime) -> list[Message]:
        """Check for silence at ``now`` (the shell's clock); return the fault alerts raised
        and the refreshes of open fault episodes that fell due."""
        now = now.astimezone(UTC)
        return self._fault_alerts(self.faults.check_silence(now)) + self.alerts.refreshes(
            now, self._update_every
        )

    def _fault_alerts(self, changes: list[FaultChange]) -> list[Message]:
        distance = self.last.distance_mm if self.last is not None else None
        return [self.alerts.fault_alert(change, distance) for change in changes]

    @property
    def level(self) -> str | None:
        return self.tracker.level

    @property
    def depth_cm(self) -> float | None:
        return self.tracker.depth_cm
