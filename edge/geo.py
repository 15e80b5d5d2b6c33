"""Where on the ground a pixel of an aerial photo is: camera pose + flat ground → WGS84.

A pinhole camera at ``height_m`` above flat ground, pointing along gimbal yaw (heading,
degrees clockwise from north) and pitch (0 horizontal, −90 straight down). A pixel's ray is
built in a local east-north-up (ENU) frame centred under the camera, intersected with the
ground plane z = 0, and the east/north metres are turned into latitude/longitude with the
WGS84 radii of curvature at the camera (a local tangent plane: centimetre-accurate within
the ~1 km a drone photo covers). Image axes: u to the right, v down, origin top-left; at
nadir with yaw 0 the top of the photo faces north.

Flat ground is the assumption that limits accuracy: on a slope or from a roof the error is
about the terrain height difference × the ray's horizontal slope.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "BeyondHorizon",
    "CameraPose",
    "enu_to_lat_lon",
    "lat_lon_to_enu",
    "pixel_to_ground",
]

_WGS84_A = 6_378_137.0
_WGS84_E2 = 6.694_379_990_14e-3


class BeyondHorizon(ValueError):
    """The pixel's ray does not reach the ground (it points at or above the horizon)."""


@dataclass(frozen=True, slots=True)
class CameraPose:
    """Where a photo was taken from and how the camera looked."""

    lat: float
    lon: float
    height_m: float
    """Above the (flat) ground, e.g. DJI's ``relative_altitude`` over a ground-level dock."""
    yaw_deg: float
    pitch_deg: float
    hfov_deg: float
    width_px: int
    height_px: int

    def __post_init__(self) -> None:
        if self.height_m <= 0:
            raise ValueError(f"camera height must be above the ground, got {self.height_m} m")
        if not 0 < self.hfov_deg < 180:
            raise ValueError(f"horizontal field of view must be in (0, 180), got {self.hfov_deg}")
        if self.width_px <= 0 or self.height_px <= 0:
            raise ValueError("image size must be positive")

    @property
    def focal_px(self) -> float:
        return (self.width_px / 2) / math.tan(math.radians(self.hfov_deg) / 2)

    def axes(self) -> tuple[Vec, Vec, Vec]:
        """Unit vectors (right, down, forward) of the image in ENU."""
        yaw = math.radians(self.yaw_deg)
        pitch = math.radians(self.pitch_deg)
        forward = (
            math.sin(yaw) * math.cos(pitch),
            math.cos(yaw) * math.cos(pitch),
            math.sin(pitch),
        )
        right = (math.cos(yaw), -math.sin(yaw), 0.0)
        up = _cross(right, forward)
        return right, (-up[0], -up[1], -up[2]), forward


Vec = tuple[float, float, float]


def _cross(a: Vec, b: Vec) -> Vec:
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def pixel_to_enu(pose: CameraPose, u: float, v: float) -> tuple[float, float]:
    """East and north metres from the point under the camera to where pixel (u, v) looks."""
    f = pose.focal_px
    x = (u - pose.width_px / 2) / f
    y = (v - pose.height_px / 2) / f
    right, down, forward = pose.axes()
    ray = tuple(right[i] * x + down[i] * y + forward[i] for i in range(3))
    if ray[2] >= -1e-9:
        raise BeyondHorizon(
            f"pixel ({u:.0f}, {v:.0f}) looks at or above the horizon (pitch {pose.pitch_deg}°)"
        )
    t = pose.height_m / -ray[2]
    return ray[0] * t, ray[1] * t


def pixel_to_ground(pose: CameraPose, u: float, v: float) -> tuple[float, float]:
    """(lat, lon) on flat ground seen at pixel (u, v); :class:`BeyondHorizon` if none."""
    east, north = pixel_to_enu(pose, u, v)
    return enu_to_lat_lon(pose.lat, pose.lon, east, north)


def _radii(lat_deg: float) -> tuple[float, float]:
    """Meridional and prime-vertical radii of curvature (m) at a latitude."""
    s = math.sin(math.radians(lat_deg))
    w = math.sqrt(1 - _WGS84_E2 * s * s)
    return _WGS84_A * (1 - _WGS84_E2) / w**3, _WGS84_A / w


def enu_to_lat_lon(lat0: float, lon0: float, east_m: float, north_m: float) -> tuple[float, float]:
    m, n = _radii(lat0)
    lat = lat0 + math.degrees(north_m / m)
    lon = lon0 + math.degrees(east_m / (n * math.cos(math.radians(lat0))))
    return lat, lon


def lat_lon_to_enu(lat0: float, lon0: float, lat: float, lon: float) -> tuple[float, float]:
    """East and north metres of (lat, lon) from (lat0, lon0) on the local tangent plane."""
    m, n = _radii(lat0)
    north = math.radians(lat - lat0) * m
    east = math.radians(lon - lon0) * n * math.cos(math.radians(lat0))
    return east, north


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Ground distance between two nearby points (local tangent plane)."""
    east, north = lat_lon_to_enu(lat1, lon1, lat2, lon2)
    return math.hypot(east, north)
