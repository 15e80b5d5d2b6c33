"""Camera image → ground position, from an operator's calibration (a plane homography).

A street camera sees a flat road: four or more image points whose ground positions are
known fix the projection of every other point of the road. Alerts then carry where the
object stands, so the stream's dedup keeps two cars 50 m apart in one view apart.
"""

from __future__ import annotations

import cv2
import numpy as np

from citywatch.config.camera import GroundCalibration
from citywatch.edge.geo import enu_to_lat_lon

__all__ = ["CalibrationError", "GroundProjection"]


class CalibrationError(ValueError):
    """The calibration points do not define a ground plane (collinear or duplicated)."""


class GroundProjection:
    """Normalised image point → (lat, lon) of the ground under it."""

    def __init__(self, calibration: GroundCalibration, lat0: float, lon0: float) -> None:
        image = np.array(calibration.image, np.float64)
        ground = np.array(calibration.ground_m, np.float64)
        homography, _ = cv2.findHomography(image, ground, 0)
        if homography is None or not np.isfinite(homography).all():
            raise CalibrationError(
                "the calibration's image points do not span the ground: use four or more"
                " points, no three of them on one line"
            )
        self._h = homography
        self.lat0, self.lon0 = lat0, lon0
        self.accuracy_m = calibration.accuracy_m

    def ground_m(self, x: float, y: float) -> tuple[float, float]:
        """East and north metres from the camera of the image point (x, y) in 0–1."""
        point = np.array([[[x, y]]], np.float64)
        east, north = cv2.perspectiveTransform(point, self._h)[0, 0]
        return float(east), float(north)

    def lat_lon(self, x: float, y: float) -> tuple[float, float]:
        east, north = self.ground_m(x, y)
        return enu_to_lat_lon(self.lat0, self.lon0, east, north)
