"""Pixel → ground projection: a known ground point seen from 100 m is placed within 5 m."""

from __future__ import annotations

import math

import pytest

from citywatch.edge.geo import (
    BeyondHorizon,
    CameraPose,
    distance_m,
    enu_to_lat_lon,
    lat_lon_to_enu,
    pixel_to_ground,
)
from citywatch.hardware.dock.sim import ground_to_pixel

LAT, LON = 31.4290, 119.4730
W, H, HFOV = 1280, 960, 84.0


def pose(yaw: float, pitch: float, height: float = 100.0) -> CameraPose:
    return CameraPose(LAT, LON, height, yaw, pitch, HFOV, W, H)


@pytest.mark.parametrize("yaw", [0.0, 37.0, 90.0, 180.0, 251.5, -60.0])
@pytest.mark.parametrize(
    ("pitch", "east", "north"),
    [(-90.0, 0.0, 0.0), (-90.0, 40.0, -25.0), (-60.0, 10.0, 50.0), (-45.0, -20.0, 90.0)],
)
def test_known_ground_point_projects_back_within_5_m(
    yaw: float, pitch: float, east: float, north: float
) -> None:
    """Forward (simulator) then inverse (agent) lands within 5 m, nadir and oblique, any yaw."""
    # Rotate the offset with the yaw so the point stays in view of an oblique camera.
    r = math.radians(yaw)
    e = east * math.cos(r) + north * math.sin(r)
    n = -east * math.sin(r) + north * math.cos(r)
    target = enu_to_lat_lon(LAT, LON, e, n)
    u, v = ground_to_pixel(e, n, 100.0, yaw, pitch, HFOV, W, H)
    assert 0 <= u <= W and 0 <= v <= H, "the test point must be in the photo"
    # A pixel of rounding, as a detector's box corner would have.
    lat, lon = pixel_to_ground(pose(yaw, pitch), round(u), round(v))
    assert distance_m(lat, lon, *target) < 5.0


def test_nadir_image_centre_is_under_the_camera() -> None:
    """Straight down, the image centre is the point below the aircraft."""
    lat, lon = pixel_to_ground(pose(123.0, -90.0), W / 2, H / 2)
    assert distance_m(lat, lon, LAT, LON) < 0.01


@pytest.mark.parametrize(("yaw", "direction"), [(0, (0, 1)), (90, (1, 0)), (180, (0, -1))])
def test_top_of_a_nadir_photo_faces_the_heading(yaw: float, direction: tuple[int, int]) -> None:
    """At nadir the top edge of the photo is ahead: north at yaw 0, east at yaw 90."""
    lat, lon = pixel_to_ground(pose(yaw, -90.0), W / 2, 0)
    east, north = lat_lon_to_enu(LAT, LON, lat, lon)
    assert east * direction[0] + north * direction[1] == pytest.approx(
        67.5, abs=0.1
    )  # 100·0.75·tan 42°
    assert abs(east * direction[1] - north * direction[0]) < 0.5


def test_nadir_footprint_matches_the_field_of_view() -> None:
    """From 100 m with an 84° lens, the left and right edges are 2·100·tan 42° apart."""
    left = pixel_to_ground(pose(0, -90.0), 0, H / 2)
    right = pixel_to_ground(pose(0, -90.0), W, H / 2)
    assert distance_m(*left, *right) == pytest.approx(200 * math.tan(math.radians(42)), rel=1e-3)


def test_a_pixel_above_the_horizon_raises() -> None:
    """A near-horizontal camera's top rows see sky: BeyondHorizon, not a point."""
    with pytest.raises(BeyondHorizon):
        pixel_to_ground(pose(0, -10.0), W / 2, 0)


def test_enu_round_trip_is_exact_at_drone_ranges() -> None:
    """lat/lon ↔ local metres round-trip to the millimetre within 1 km."""
    lat, lon = enu_to_lat_lon(LAT, LON, 700.0, -400.0)
    east, north = lat_lon_to_enu(LAT, LON, lat, lon)
    assert (east, north) == pytest.approx((700.0, -400.0), abs=1e-3)
