"""The synthetic street camera: pure, fast, and truthful about what is visible."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
from shapely.geometry import Polygon, box

from citywatch.hardware.camera.street.actors import (
    SmokeLook,
    VehicleKind,
    VehicleLook,
    random_person,
    random_stall,
    random_vehicle,
)
from citywatch.hardware.camera.street.layout import DEFAULT_LAYOUT, REGIONS
from citywatch.hardware.camera.street.lighting import DAY, NIGHT, shake_offset
from citywatch.hardware.camera.street.scene import STREET_CLASSES, Actor, render_street

SIZE = (1280, 720)
RED_CAR = VehicleLook("car", "sedan", 4.7, 1.45, (40, 40, 190), (40, 40, 190))
BUS = VehicleLook("bus", "bus", 11.5, 3.2, (60, 150, 40), (235, 235, 235))
CURB = DEFAULT_LAYOUT.lane_depth("curb")
SIDEWALK = DEFAULT_LAYOUT.lane_depth("sidewalk")


def busy_street() -> list[Actor]:
    rng = np.random.default_rng(3)
    layout = DEFAULT_LAYOUT
    return [
        Actor(1, random_vehicle("car", rng), 0.3, CURB),
        Actor(2, random_vehicle("bus", rng), 0.55, layout.lane_depth("road_near"), blur_px=9),
        Actor(3, random_vehicle("truck", rng), 0.8, layout.lane_depth("road_far"), facing=-1),
        Actor(4, random_vehicle("car", rng), -0.02, layout.lane_depth("road_far"), facing=-1),
        Actor(5, random_person(rng), 0.6, layout.lane_depth("sidewalk", 0.4), walk_phase=1.0),
        Actor(6, random_stall(rng), 0.75, layout.lane_depth("sidewalk", 0.3)),
        Actor(7, random_person(rng), 0.83, layout.lane_depth("sidewalk", 0.35)),
        Actor(8, SmokeLook(210, height_m=5, opacity=0.8, time_s=4.0, seed=2), 0.45, SIDEWALK),
        Actor(9, random_vehicle("car", rng), 1.02, CURB),
    ]


def test_same_arguments_render_the_same_frame() -> None:
    """A frame is a pure function of its arguments; the noise seed changes only the noise."""
    a = render_street(busy_street(), size=SIZE, noise_seed=5, shake=(1, -1))
    b = render_street(busy_street(), size=SIZE, noise_seed=5, shake=(1, -1))
    c = render_street(busy_street(), size=SIZE, noise_seed=6, shake=(1, -1))
    assert np.array_equal(a.image, b.image)
    assert a.truth == b.truth
    assert not np.array_equal(a.image, c.image)
    assert a.truth == c.truth


def test_truth_boxes_lie_inside_the_frame_with_known_classes() -> None:
    """Boxes are clipped to the frame and named with the detector's classes."""
    frame = render_street(busy_street(), size=SIZE, shake=(3, 2))
    assert frame.image.shape == (720, 1280, 3) and frame.image.dtype == np.uint8
    assert {t.class_name for t in frame.truth} == set(STREET_CLASSES)
    for t in frame.truth:
        x0, y0, x1, y1 = t.xyxy
        assert 0 <= x0 < x1 <= 1280 and 0 <= y0 < y1 <= 720
        assert 0 < t.visibility <= 1


def test_actor_mostly_off_frame_is_not_reported_and_partly_off_has_low_visibility() -> None:
    """Under half in frame: dropped; a clipped box reports the share that is in frame."""
    far = DEFAULT_LAYOUT.lane_depth("road_far")
    frame = render_street([Actor(1, RED_CAR, -0.04, far), Actor(2, RED_CAR, 0.98, far)], size=SIZE)
    ids = {t.track_id: t for t in frame.truth}
    assert 1 not in ids
    assert ids[2].xyxy[2] == 1280
    assert 0.5 <= ids[2].visibility < 1


def test_car_hidden_behind_a_nearer_bus_is_dropped() -> None:
    """More than 70% hidden by a nearer actor: not in the truth; half hidden: reported."""
    road = DEFAULT_LAYOUT.lane_depth("road_far")
    near = DEFAULT_LAYOUT.lane_depth("road_near")
    hidden = render_street([Actor(1, RED_CAR, 0.5, road), Actor(2, BUS, 0.5, near)], size=SIZE)
    assert [t.track_id for t in hidden.truth] == [2]
    half = render_street([Actor(1, RED_CAR, 0.5, road), Actor(2, BUS, 0.68, near)], size=SIZE)
    car = next(t for t in half.truth if t.track_id == 1)
    assert 0.3 < car.visibility < 0.8


def test_nearer_objects_are_drawn_bigger() -> None:
    """Perspective: the same car further up the image is smaller."""
    far = DEFAULT_LAYOUT.lane_depth("road_far")
    frame = render_street([Actor(1, RED_CAR, 0.3, far), Actor(2, RED_CAR, 0.7, CURB)], size=SIZE)
    (fx0, fy0, fx1, fy1), (nx0, ny0, nx1, ny1) = (t.xyxy for t in frame.truth)
    assert fy1 < ny1
    assert (fx1 - fx0) < 0.75 * (nx1 - nx0) and (fy1 - fy0) < 0.75 * (ny1 - ny0)


def test_smoke_is_semi_transparent() -> None:
    """The car behind a plume still shows through it, mixed with the smoke's grey."""
    smoke = SmokeLook(230, height_m=7, opacity=0.7, lean=0.0, time_s=3.0, seed=1)
    car = Actor(1, RED_CAR, 0.5, CURB)
    plain = render_street([car], size=SIZE, noise_sigma=0).image.astype(float)
    smoky = render_street([car, Actor(2, smoke, 0.5, SIDEWALK)], size=SIZE, noise_sigma=0)
    car_box = next(t for t in smoky.truth if t.track_id == 1).xyxy
    x0, y0, x1, y1 = (round(v) for v in car_box)
    # Where the smoke lies over the car's red body (BGR ≈ 40, 40, 190), solve for its alpha.
    behind, seen = plain[y0:y1, x0:x1], smoky.image[y0:y1, x0:x1].astype(float)
    alpha = (seen[..., 0] - behind[..., 0]) / (230 - behind[..., 0] + 1e-6)
    reddish = (behind[..., 2] > 150) & (behind[..., 0] < 80)
    covered = alpha[reddish & (alpha > 0.05)]
    assert covered.size > 500
    assert 0.1 < float(np.median(covered)) < 0.9
    assert float(np.median(seen[reddish & (alpha > 0.05)][:, 2])) > 150  # still red


def test_smoke_box_is_where_the_plume_is_opaque_enough() -> None:
    """A growing plume's box grows with it; a plume too faint to see has no box."""

    def smoke_box(height_m: float, opacity: float) -> tuple[float, ...] | None:
        look = SmokeLook(220, height_m=height_m, opacity=opacity, time_s=2.0, seed=4)
        truth = render_street([Actor(1, look, 0.5, SIDEWALK)], size=SIZE).truth
        return truth[0].xyxy if truth else None

    small, big = smoke_box(1.5, 0.8), smoke_box(6.0, 0.8)
    assert small is not None and big is not None
    assert (big[3] - big[1]) > 2.5 * (small[3] - small[1])
    assert smoke_box(6.0, 0.08) is None


def test_night_is_darker_than_day_but_headlights_shine() -> None:
    """Lighting scales the scene; at night the vehicles' lights stay bright."""
    scene = [Actor(1, RED_CAR, 0.5, CURB)]
    day = render_street(scene, size=SIZE, lighting=DAY, noise_sigma=0).image
    night = render_street(scene, size=SIZE, lighting=NIGHT, noise_sigma=0).image
    assert night.mean() < 0.5 * day.mean()
    (_x0, y0, x1, y1) = render_street(scene, size=SIZE, lighting=NIGHT).truth[0].xyxy
    assert night[round(y0) : round(y1), round(x1) - 30 : round(x1)].max() > 240


def test_shake_is_small_smooth_and_seeded() -> None:
    """The camera wobbles by at most the amplitude, the same way for the same seed."""
    offsets = [shake_offset(9, t / 25, 2.0) for t in range(250)]
    assert offsets == [shake_offset(9, t / 25, 2.0) for t in range(250)]
    assert max(max(abs(dx), abs(dy)) for dx, dy in offsets) <= 2
    assert len(set(offsets)) > 3
    jumps = [abs(a[0] - b[0]) + abs(a[1] - b[1]) for a, b in itertools.pairwise(offsets)]
    assert max(jumps) <= 2
    assert shake_offset(9, 1.0, 0.0) == (0, 0)


def test_regions_are_valid_bands_that_tile_the_street() -> None:
    """The exported zones are valid 0–1 polygons; the curb lane splits into no-parking and bays."""
    polygons = {name: Polygon(points) for name, points in REGIONS.items()}
    unit = box(0, 0, 1, 1)
    for name, polygon in polygons.items():
        assert polygon.is_valid and polygon.area > 0, name
        assert unit.covers(polygon), name
    assert polygons["curb_lane"].touches(polygons["sidewalk"])
    assert polygons["road"].touches(polygons["curb_lane"])
    split = polygons["no_parking"].union(polygons["parking_bays"])
    assert split.symmetric_difference(polygons["curb_lane"]).area < 1e-9
    parked_at = (0.4, DEFAULT_LAYOUT.ground_y("curb"))
    assert polygons["no_parking"].contains(Polygon.from_bounds(*parked_at, *parked_at).centroid)


def test_rendering_a_busy_1280x720_frame_takes_under_15_ms() -> None:
    """The live synthetic camera renders frames on demand: best of 8 must fit 15 ms."""
    actors = busy_street()
    render_street(actors, size=SIZE, lighting=NIGHT)  # the street itself is drawn once, cached
    timings = []
    for k in range(8):
        started = time.perf_counter()
        render_street(actors, size=SIZE, lighting=NIGHT, noise_seed=k, shake=(k % 3, 1))
        timings.append(time.perf_counter() - started)
    assert min(timings) < 0.015, f"render took {min(timings) * 1000:.1f} ms"


@pytest.mark.parametrize("kind", ["car", "truck", "bus"])
def test_random_vehicles_vary(kind: VehicleKind) -> None:
    """Random looks differ in colour and size, so the detector sees variety."""
    rng = np.random.default_rng(0)
    looks = [random_vehicle(kind, rng) for _ in range(20)]
    assert len({look.colour for look in looks}) > 3
    assert all(look.kind == kind for look in looks)
