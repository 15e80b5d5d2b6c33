"""The simulated ultrasonic water-level sensor: hydrograph, noise, determinism."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from citywatch.config.sensor import LevelPolicy, SimulatedRain
from citywatch.edge.sensor.levels import LevelChange, LevelTracker, depth_from_distance
from citywatch.hardware.water.sim import SimulatedWaterSensor, WaterReading

T0 = datetime(2025, 7, 1, 8, 0, tzinfo=UTC)

# start 60 s, rise 600 s to 30 cm, plateau 600 s, drain 900 s: over at 2160 s.
RAIN = SimulatedRain(
    start_after=timedelta(seconds=60),
    rise=timedelta(minutes=10),
    plateau=timedelta(minutes=10),
    drain=timedelta(minutes=15),
    peak_depth_cm=30,
    noise_cm=0.5,
)


@pytest.mark.parametrize(
    ("elapsed_s", "depth_cm"),
    [
        pytest.param(-10, 0, id="before the simulation began"),
        pytest.param(0, 0, id="at the start"),
        pytest.param(60, 0, id="rain just starting"),
        pytest.param(360, 15, id="half way up the rise"),
        pytest.param(660, 30, id="end of the rise is the peak"),
        pytest.param(1000, 30, id="plateau holds the peak"),
        pytest.param(1260, 30, id="drain begins at the peak"),
        pytest.param(1710, 15, id="half way down the drain"),
        pytest.param(2160, 0, id="drained"),
        pytest.param(1e6, 0, id="long after"),
    ],
)
def test_hydrograph_rises_holds_and_drains(elapsed_s: float, depth_cm: float) -> None:
    """depth_at follows start_after, a linear rise, the plateau and a linear drain."""
    sensor = SimulatedWaterSensor(300, RAIN)
    assert sensor.depth_at(elapsed_s) == pytest.approx(depth_cm)


def test_zero_length_phases_jump_without_dividing_by_zero() -> None:
    """A rain with no rise or drain jumps to the peak and back to dry."""
    rain = SimulatedRain(
        start_after=timedelta(0),
        rise=timedelta(0),
        plateau=timedelta(seconds=10),
        drain=timedelta(0),
        peak_depth_cm=20,
    )
    sensor = SimulatedWaterSensor(300, rain)
    assert [sensor.depth_at(t) for t in (0, 5, 10, 20)] == [20, 20, 0, 0]


def test_without_rain_the_road_is_dry_and_the_reading_exact() -> None:
    """rain=None reads the mount height, noiselessly, with the given battery level."""
    sensor = SimulatedWaterSensor(250, None, battery_pct=77.0)
    assert sensor.depth_at(500) == 0
    assert sensor.read(T0, 500) == WaterReading(distance_mm=2500.0, battery_pct=77.0, time=T0)


def test_noiseless_reading_is_mount_height_minus_depth_in_mm() -> None:
    """With noise_cm 0 the distance is exactly (mount height − depth) × 10 mm."""
    sensor = SimulatedWaterSensor(300, RAIN.model_copy(update={"noise_cm": 0.0}))
    assert sensor.read(T0, 360).distance_mm == pytest.approx(2850.0)


def test_same_seed_gives_the_same_readings() -> None:
    """Two sensors with the same seed produce identical sequences; another seed differs."""

    def readings(seed: int) -> list[float]:
        sensor = SimulatedWaterSensor(300, RAIN, seed=seed)
        return [sensor.read(T0 + timedelta(seconds=t), t).distance_mm for t in range(0, 600, 5)]

    assert readings(7) == readings(7)
    assert readings(7) != readings(8)


def test_noise_is_gaussian_with_the_configured_spread() -> None:
    """Readings scatter around the true distance with standard deviation noise_cm."""
    sensor = SimulatedWaterSensor(300, RAIN, seed=1)
    errors_cm = np.array([sensor.read(T0, 1000).distance_mm / 10 - (300 - 30) for _ in range(4000)])
    assert abs(errors_cm.mean()) < 0.05
    assert errors_cm.std() == pytest.approx(0.5, rel=0.1)


def test_water_above_the_sensor_face_reads_zero_distance() -> None:
    """The distance never goes negative, even if the water rises past the sensor."""
    rain = SimulatedRain(
        start_after=timedelta(0), rise=timedelta(seconds=1), peak_depth_cm=80, noise_cm=0.0
    )
    sensor = SimulatedWaterSensor(50, rain)
    assert sensor.read(T0, 100).distance_mm == 0.0


def test_reading_time_is_returned_in_utc() -> None:
    """An aware local time is stored as the same instant in UTC."""
    cst = timezone(timedelta(hours=8))
    reading = SimulatedWaterSensor(300, None).read(datetime(2025, 7, 1, 16, 0, tzinfo=cst), 0)
    assert reading.time == T0
    assert reading.time.tzinfo == UTC


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(lambda s: s.read(datetime(2025, 7, 1), 0), "no timezone", id="naive time"),
        pytest.param(lambda s: s.depth_at(math.nan), "NaN", id="NaN elapsed"),
    ],
)
def test_bad_arguments_raise(call: Callable[[SimulatedWaterSensor], object], message: str) -> None:
    """A naive reading time or a NaN elapsed time is a ValueError."""
    sensor = SimulatedWaterSensor(300, RAIN)
    with pytest.raises(ValueError, match=message):
        call(sensor)


@pytest.mark.parametrize(
    ("mount_height_cm", "battery_pct", "message"),
    [(0, 98, "mount_height_cm"), (-3, 98, "mount_height_cm"), (300, 101, "battery_pct")],
)
def test_impossible_construction_raises(
    mount_height_cm: float, battery_pct: float, message: str
) -> None:
    """A non-positive mount height or a battery outside 0–100 % is refused."""
    with pytest.raises(ValueError, match=message):
        SimulatedWaterSensor(mount_height_cm, RAIN, battery_pct=battery_pct)


def test_simulated_rain_through_the_level_logic_raises_one_clean_episode() -> None:
    """A noisy 30 cm rain sampled every 5 s yields start, up, down, end and nothing else."""
    sensor = SimulatedWaterSensor(300, RAIN, seed=42)
    tracker = LevelTracker(LevelPolicy())
    changes: list[LevelChange] = []
    for elapsed_s in range(0, 2400, 5):
        reading = sensor.read(T0 + timedelta(seconds=elapsed_s), elapsed_s)
        depth_cm = depth_from_distance(reading.distance_mm, 300, blind_zone_cm=20)
        assert depth_cm is not None
        change = tracker.observe(reading.time, depth_cm)
        if change is not None:
            changes.append(change)
    assert [(c.phase, c.level) for c in changes] == [
        ("start", "lane"),
        ("update", "underpass_closure"),
        ("update", "lane"),
        ("end", None),
    ]
    assert changes[-1].peak_depth_cm == pytest.approx(30, abs=2.5)
    # The lane level is crossed half way up the rise (360 s) and confirmed ~30 s later.
    assert 360 + 30 <= (changes[0].time - T0).total_seconds() <= 360 + 120
