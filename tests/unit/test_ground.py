"""Calibrated cameras put each alert where its object stands, not where the camera is."""

from __future__ import annotations

import pytest

from citywatch.config import load_config
from citywatch.config.camera import GroundCalibration, verify_calibration_has_an_origin
from citywatch.edge.camera.ground import CalibrationError, GroundProjection
from citywatch.edge.geo import distance_m, lat_lon_to_enu
from tests.conftest import REPO

LAT0, LON0 = 31.43, 119.48
SQUARE = GroundCalibration(
    image=((0.0, 1.0), (1.0, 1.0), (0.25, 0.5), (0.75, 0.5)),
    ground_m=((-10.0, 5.0), (10.0, 5.0), (-10.0, 25.0), (10.0, 25.0)),
)


@pytest.mark.parametrize(
    ("point", "east_north"),
    [
        ((0.0, 1.0), (-10.0, 5.0)),
        ((0.75, 0.5), (10.0, 25.0)),
        ((0.5, 1.0), (0.0, 5.0)),
        ((0.5, 0.5), (0.0, 25.0)),
    ],
)
def test_calibration_points_map_onto_their_ground_points(
    point: tuple[float, float], east_north: tuple[float, float]
) -> None:
    projection = GroundProjection(SQUARE, LAT0, LON0)
    assert projection.ground_m(*point) == pytest.approx(east_north, abs=1e-6)
    lat, lon = projection.lat_lon(*point)
    assert lat_lon_to_enu(LAT0, LON0, lat, lon) == pytest.approx(east_north, abs=1e-3)


def test_perspective_puts_points_higher_in_the_image_further_away() -> None:
    projection = GroundProjection(SQUARE, LAT0, LON0)
    norths = [projection.ground_m(0.5, y)[1] for y in (1.0, 0.9, 0.7, 0.5)]
    assert norths == sorted(norths)
    # A pinhole view: equal steps up the image cover ever more ground.
    assert norths[3] - norths[2] > norths[1] - norths[0]


def test_two_cars_in_one_view_get_their_own_positions() -> None:
    camera = next(
        c for c in load_config(REPO / "configs" / "scenario-suite.yaml").devices.cameras
        if c.id == "cam-two-parked"
    )  # fmt: skip
    assert camera.calibration is not None and camera.placement.position is not None
    position = camera.placement.position
    projection = GroundProjection(camera.calibration, position.lat, position.lon)
    left = projection.lat_lon(0.15, 0.634)
    right = projection.lat_lon(0.6, 0.634)
    assert distance_m(*left, *right) == pytest.approx(11.3, abs=1.0)


def test_collinear_points_are_refused() -> None:
    line = GroundCalibration(
        image=((0.1, 0.5), (0.2, 0.5), (0.3, 0.5), (0.4, 0.5)),
        ground_m=((0.0, 1.0), (1.0, 1.0), (2.0, 1.0), (3.0, 1.0)),
    )
    with pytest.raises(CalibrationError, match="no three of them on one line"):
        GroundProjection(line, LAT0, LON0)


def test_a_calibration_needs_as_many_ground_as_image_points() -> None:
    with pytest.raises(ValueError, match="one ground point per image point"):
        GroundCalibration(image=SQUARE.image, ground_m=SQUARE.ground_m[:3] + ((1.0, 2.0),) * 2)


def test_a_calibrated_camera_needs_a_position() -> None:
    camera = load_config(REPO / "configs" / "demo-district.yaml").devices.cameras[0]
    unplaced = camera.model_copy(
        update={"placement": camera.placement.model_copy(update={"position": None})}
    )
    with pytest.raises(ValueError, match=r"no placement\.position"):
        verify_calibration_has_an_origin(unplaced)
