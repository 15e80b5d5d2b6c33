"""The street's geometry: where its bands lie and how the ground projects onto the image.

A pole camera on the near sidewalk looks across a two-lane street: sky and buildings at the
top, the far sidewalk, two travel lanes, a curb parking lane, the curb and the near sidewalk.
The ground is a pinhole projection (image row ``y = horizon + K / depth``), so everything
further up is smaller, and lines across the street converge to the horizon. Actors are
placed by the normalised image x of their bottom-centre and their ground depth in metres;
:meth:`StreetLayout.lane_depth` turns a lane name into a depth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["DEFAULT_LAYOUT", "LANES", "REGIONS", "Box", "Lane", "Polygon", "StreetLayout"]

Box = tuple[float, float, float, float]
Lane = Literal["road_far", "road_near", "curb", "sidewalk"]
LANES: tuple[Lane, ...] = ("road_far", "road_near", "curb", "sidewalk")
Polygon = tuple[tuple[float, float], ...]


@dataclass(frozen=True, slots=True)
class StreetLayout:
    """Where the street's bands lie: depths in metres from the camera, across the street."""

    camera_height_m: float = 6.0
    near_z_m: float = 5.0
    """Ground depth seen at the bottom row of the image."""
    curb_z_m: float = 8.0
    parking_lane_m: float = 2.6
    lane_m: float = 3.5
    far_sidewalk_m: float = 3.0
    building_y: float = 0.40
    """Normalised image row where the far buildings stand on the ground."""
    parking_bays_from_x: float = 0.75
    """The curb lane is marked no-parking (yellow line) left of this x, with bays right of it."""

    @property
    def lane_z_m(self) -> float:
        """Boundary between the parking lane and the near travel lane."""
        return self.curb_z_m + self.parking_lane_m

    @property
    def centre_z_m(self) -> float:
        return self.lane_z_m + self.lane_m

    @property
    def far_curb_z_m(self) -> float:
        return self.centre_z_m + self.lane_m

    @property
    def building_z_m(self) -> float:
        return self.far_curb_z_m + self.far_sidewalk_m

    @property
    def _k(self) -> float:
        return (1.0 - self.building_y) / (1.0 / self.near_z_m - 1.0 / self.building_z_m)

    @property
    def horizon_y(self) -> float:
        return self.building_y - self._k / self.building_z_m

    def y_at(self, z_m: float) -> float:
        """Normalised image row of the ground at depth ``z_m``."""
        return self.horizon_y + self._k / z_m

    def px_per_m(self, z_m: float, height_px: int) -> float:
        """Image pixels per metre of an upright object standing at depth ``z_m``."""
        return self._k / self.camera_height_m / z_m * height_px

    def lane_span(self, lane: Lane) -> tuple[float, float]:
        """(far, near) depth in metres of a lane's band."""
        spans = {
            "road_far": (self.far_curb_z_m, self.centre_z_m),
            "road_near": (self.centre_z_m, self.lane_z_m),
            "curb": (self.lane_z_m, self.curb_z_m),
            "sidewalk": (self.curb_z_m, self.near_z_m),
        }
        return spans[lane]

    def lane_depth(self, lane: Lane, offset: float = 0.5) -> float:
        """Depth of a point ``offset`` of the way across a lane (0 far edge, 1 near edge)."""
        far, near = self.lane_span(lane)
        return far + (near - far) * offset

    def ground_y(self, lane: Lane, offset: float = 0.5) -> float:
        """Normalised image row of a point on the ground ``offset`` across a lane."""
        return self.y_at(self.lane_depth(lane, offset))

    def regions(self) -> dict[str, Polygon]:
        """The street's areas as 0–1 image polygons, to draw camera zones on."""

        def band(z_far: float, z_near: float, x0: float = 0.0, x1: float = 1.0) -> Polygon:
            top, bottom = round(self.y_at(z_far), 4), min(1.0, round(self.y_at(z_near), 4))
            return ((x0, top), (x1, top), (x1, bottom), (x0, bottom))

        bays = self.parking_bays_from_x
        return {
            "road": band(self.far_curb_z_m, self.lane_z_m),
            "curb_lane": band(self.lane_z_m, self.curb_z_m),
            "no_parking": band(self.lane_z_m, self.curb_z_m, 0.0, bays),
            "parking_bays": band(self.lane_z_m, self.curb_z_m, bays, 1.0),
            "sidewalk": band(self.curb_z_m, self.near_z_m),
        }


DEFAULT_LAYOUT = StreetLayout()
REGIONS = DEFAULT_LAYOUT.regions()
"""The default layout's areas (``road``, ``curb_lane``, ``no_parking``, ``parking_bays``,
``sidewalk``) in 0–1 image coordinates."""
