"""The sensor's pure core over simulated hydrographs with faults, replayed second by second.

One alert episode per real flood, none for spikes or a stuck sensor, a device-fault alert
for each injected fault (table-driven, the issue's definition of done).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from citywatch.config.sensor import (
    FaultPolicy,
    LevelPolicy,
    SensorConfig,
    SimulatedFault,
    SimulatedRain,
)
from citywatch.config.site import Placement
from citywatch.contracts import Alert, AlertKind, Phase, Telemetry
from citywatch.edge.sensor.logic import SensorLogic
from citywatch.hardware.water.reading import WaterReading
from citywatch.hardware.water.sim import SimulatedWaterSensor

T0 = datetime(2025, 7, 1, 8, 0, tzinfo=UTC)
POLICY = LevelPolicy()  # lane 15, underpass_closure 25, closure 40; hysteresis 2; 30 s
FAULTS = FaultPolicy(stuck_after=timedelta(minutes=5), silent_after=timedelta(minutes=1))


def minutes(m: float) -> timedelta:
    return timedelta(minutes=m)


def rain(
    peak: float = 30, rise: float = 10, plateau: float = 10, drain: float = 15, **kw: object
) -> SimulatedRain:
    return SimulatedRain(
        start_after=minutes(1),
        rise=minutes(rise),
        plateau=minutes(plateau),
        drain=minutes(drain),
        peak_depth_cm=peak,
        noise_cm=0.5,
        **kw,
    )


def fault(kind: str, start: float, duration: float | None = None, **kw: object) -> SimulatedFault:
    return SimulatedFault(
        type=kind,
        start_after=minutes(start),
        duration=None if duration is None else minutes(duration),
        **kw,
    )


def sensor_config(**update: object) -> SensorConfig:
    base = SensorConfig(
        id="wl-1",
        gateway="gw-1",
        placement=Placement(district="d-1"),
        mount_height_cm=300,
        blind_zone_cm=20,
        sample_interval=timedelta(seconds=1),
        telemetry_interval=timedelta(minutes=1),
        faults=FAULTS,
    )
    return base.model_copy(update=update)


@dataclass
class Run:
    alerts: list[Alert]
    telemetry: list[Telemetry]

    def episodes(self, rule: str) -> list[str]:
        """Episode ids of ``rule``, in the order they started."""
        return [a.episode_id for a in self.alerts if a.rule == rule and a.phase is Phase.START]

    def faults(self) -> Counter[str]:
        return Counter(
            str(a.attributes["fault"])
            for a in self.alerts
            if a.kind is AlertKind.DEVICE_FAULT and a.phase is Phase.START
        )


def replay(
    sensor: SensorConfig, simulated: SimulatedWaterSensor, duration_min: float, step_s: float = 1.0
) -> Run:
    """Sample the simulator every ``step_s`` into the sensor's logic; no wall clock anywhere."""
    logic = SensorLogic("demo", sensor, POLICY, started_at=T0)
    messages: list[Alert | Telemetry] = []
    for i in range(int(duration_min * 60 / step_s)):
        elapsed = i * step_s
        time = T0 + timedelta(seconds=elapsed)
        reading = simulated.sample(time, elapsed)
        if reading is not None:
            messages += logic.observe(reading)
        messages += logic.tick(time)
    return Run(
        alerts=[m for m in messages if isinstance(m, Alert)],
        telemetry=[m for m in messages if isinstance(m, Telemetry)],
    )


CASES = [
    # id, rain, faults, minutes, flood episodes, rate-of-rise episodes, device faults
    ("dry road", rain(peak=0), [], 30, 0, 0, {}),
    ("one flood", rain(), [], 45, 1, 1, {}),
    ("puddle below the first level", rain(peak=8, rise=20), [], 45, 0, 0, {}),
    ("two showers", rain(rise=5, plateau=3, drain=5, repeat_every=minutes(20)), [], 40, 2, 2, {}),
    (
        "occasional spikes on a dry road",
        rain(peak=0),
        [fault("spikes", 1, spike_probability=0.05)],
        30,
        0,
        0,
        {},
    ),
    (
        "occasional spikes during a flood",
        rain(),
        [fault("spikes", 1, spike_probability=0.05)],
        45,
        1,
        1,
        {},
    ),
    (
        "spike burst",
        rain(peak=0),
        [fault("spikes", 5, 5, spike_probability=0.5)],
        30,
        0,
        0,
        {"erratic": 1},
    ),
    ("stuck while the street floods", rain(), [fault("stuck", 0.5)], 45, 0, 0, {"stuck": 1}),
    ("dropout on a dry road", rain(peak=0), [fault("dropout", 5, 5)], 20, 0, 0, {"silent": 1}),
    ("dropout during the plateau", rain(), [fault("dropout", 13, 4)], 45, 1, 1, {"silent": 1}),
    ("short dropout", rain(peak=0), [fault("dropout", 5, 0.5)], 20, 0, 0, {}),
    (
        "battery low",
        rain(peak=0),
        [fault("battery_low", 5, battery_pct=8)],
        20,
        0,
        0,
        {"battery_low": 1},
    ),
    ("lost echo", rain(peak=0), [fault("no_echo", 5, 2)], 20, 0, 0, {"out_of_range": 1}),
    ("lost echo during a flood", rain(), [fault("no_echo", 14, 2)], 45, 1, 1, {"out_of_range": 1}),
]


@pytest.mark.parametrize(
    ("rain_event", "faults", "duration", "floods", "rises", "device_faults"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_one_alert_per_flood_none_for_spikes_or_stuck_and_one_fault_alert_per_fault(
    rain_event: SimulatedRain | None,
    faults: list[SimulatedFault],
    duration: float,
    floods: int,
    rises: int,
    device_faults: dict[str, int],
) -> None:
    """Each case counts flood episodes, rate-of-rise episodes and device faults raised."""
    sensor = sensor_config()
    run = replay(sensor, SimulatedWaterSensor(300, rain_event, seed=3, faults=faults), duration)
    assert len(run.episodes("depth_level")) == floods, [
        (a.phase.value, a.level, a.event_time.time()) for a in run.alerts
    ]
    assert len(run.episodes("rate_of_rise")) == rises
    assert run.faults() == Counter(device_faults)


@pytest.mark.parametrize("case", [c for c in CASES if c[4]], ids=lambda c: c[0])
def test_every_flood_episode_starts_and_ends_in_order(case: tuple[object, ...]) -> None:
    """A flood episode is start, updates, end: seq counts up and the last phase is end."""
    _, rain_event, faults, duration, *_ = case
    run = replay(
        sensor_config(),
        SimulatedWaterSensor(300, rain_event, seed=3, faults=faults),
        duration,  # type: ignore[arg-type]
    )
    for episode in run.episodes("depth_level"):
        messages = [a for a in run.alerts if a.episode_id == episode]
        assert [a.seq for a in messages] == list(range(len(messages)))
        assert messages[0].phase is Phase.START and messages[-1].phase is Phase.END
        assert all(a.kind is AlertKind.WATERLOGGING for a in messages)


def test_device_faults_are_never_flood_alerts_and_clear_when_the_fault_ends() -> None:
    """A stuck spell and a dropout each raise a device_fault that ends when readings recover."""
    faults = [fault("stuck", 2, 8), fault("dropout", 15, 3)]
    run = replay(
        sensor_config(), SimulatedWaterSensor(300, rain(peak=0), seed=1, faults=faults), 25
    )
    fault_alerts = [a for a in run.alerts if a.kind is AlertKind.DEVICE_FAULT]
    assert [(a.rule, a.phase.value) for a in fault_alerts] == [
        ("fault_stuck", "start"),
        ("fault_stuck", "end"),
        ("fault_silent", "start"),
        ("fault_silent", "end"),
    ]
    assert not [a for a in run.alerts if a.kind is AlertKind.WATERLOGGING]


def test_stuck_sensor_pauses_the_level_logic() -> None:
    """Once a sensor is known stuck at a wet reading, it raises no further level changes."""
    stuck_wet = [fault("stuck", 8, 20)]  # frozen at ~21 cm (lane) during the rise
    run = replay(sensor_config(), SimulatedWaterSensor(300, rain(), seed=2, faults=stuck_wet), 30)
    flood = [a for a in run.alerts if a.rule == "depth_level" and a.event_time < T0 + minutes(28)]
    assert [a.phase for a in flood] == [Phase.START]  # no end while the sensor is stuck
    assert run.faults() == Counter({"stuck": 1})


def test_telemetry_goes_out_at_its_own_interval() -> None:
    """One telemetry message per telemetry_interval of reading time, with depth and battery."""
    run = replay(sensor_config(), SimulatedWaterSensor(300, rain(peak=0), seed=1), 10)
    assert len(run.telemetry) == 10
    first = run.telemetry[0]
    assert {"distance_mm", "depth_cm", "battery_pct", "status", "faults"} <= set(first.metrics)


def test_telemetry_every_sample_carries_each_sample_once_in_one_message_per_interval() -> None:
    """With telemetry_every_sample, the messages are as many as without it, and together
    they hold every sample up to the last message exactly once, in time order (the depth
    curve at full rate); the alerts do not change."""
    sensor = sensor_config(telemetry_every_sample=True)
    run = replay(sensor, SimulatedWaterSensor(300, rain(), seed=1), 10)
    assert len(run.telemetry) == 10
    times = [t for m in run.telemetry for _, t, _ in m.readings()]
    assert times == [T0 + timedelta(seconds=s) for s in range(9 * 60 + 1)]
    assert all(len(m.earlier or ()) == 59 for m in run.telemetry[1:])
    assert (
        run.alerts == replay(sensor_config(), SimulatedWaterSensor(300, rain(), seed=1), 10).alerts
    )


def test_telemetry_every_sample_refuses_more_samples_than_a_message_holds() -> None:
    """An hour of one-second samples (3,600) cannot ride on one message: the config says so."""
    with pytest.raises(ValueError, match="at most 1001 fit"):
        SensorConfig.model_validate(
            sensor_config().model_dump()
            | {"telemetry_every_sample": True, "telemetry_interval": timedelta(hours=1)}
        )


def test_readings_older_than_the_last_are_dropped_and_counted() -> None:
    """A retransmitted history record older than the last reading changes nothing."""
    logic = SensorLogic("demo", sensor_config(), POLICY, started_at=T0)
    logic.observe(WaterReading(3000, 90, T0 + timedelta(seconds=10)))
    assert logic.observe(WaterReading(1000, 90, T0 + timedelta(seconds=5))) == []
    assert (logic.readings, logic.late) == (1, 1)


def test_replay_gives_the_same_alert_ids() -> None:
    """Ids come from the data: two replays of one recording publish identical ids."""
    first = replay(sensor_config(), SimulatedWaterSensor(300, rain(), seed=5), 45)
    second = replay(sensor_config(), SimulatedWaterSensor(300, rain(), seed=5), 45)
    assert [a.id for a in first.alerts] == [a.id for a in second.alerts]
    assert len({a.id for a in first.alerts}) == len(first.alerts)


@pytest.mark.parametrize("window", [1, 3, 5])
def test_spike_filter_delay_does_not_add_to_min_duration(window: int) -> None:
    """A step to 20 cm at t=10 s is confirmed at t=40 s (30 s later) whatever the median window."""
    from citywatch.config.sensor import SpikeFilter

    sensor = sensor_config(spike_filter=SpikeFilter(window=window))
    logic = SensorLogic("demo", sensor, POLICY, started_at=T0)
    starts = []
    for second in range(60):
        distance = 3000.0 if second < 10 else 2800.0
        for message in logic.observe(WaterReading(distance, 90.0, T0 + timedelta(seconds=second))):
            if isinstance(message, Alert) and message.phase is Phase.START:
                starts.append(message.event_time - T0)
    assert starts == [timedelta(seconds=40)]


def test_a_two_reading_spike_passes_a_window_of_three_but_not_min_duration() -> None:
    """Spikes longer than the median window still never hold for min_duration."""
    logic = SensorLogic("demo", sensor_config(), POLICY, started_at=T0)
    messages = []
    for second in range(120):
        distance = 2000.0 if second % 30 in (5, 6) else 3000.0  # 1 m "deep" for two readings
        messages += logic.observe(WaterReading(distance, 90.0, T0 + timedelta(seconds=second)))
    assert not [m for m in messages if isinstance(m, Alert)]
