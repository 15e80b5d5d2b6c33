"""A synthetic street camera: the street, the things on it, and the truth of what is visible.

A pole camera on the near sidewalk looks across a two-lane street: sky and buildings at the
top, the far sidewalk, two travel lanes, a curb parking lane, the curb and the near sidewalk.
The ground is a pinhole projection (image row ``y = horizon + K / depth``), so everything
further up is smaller, and lines across the street converge to the horizon. Actors are
placed by the normalised image x of their bottom-centre and their ground depth in metres;
:meth:`StreetLayout.lane_depth` turns a lane name into a depth.

:func:`render_street` draws one frame (far to near, so nearer things hide farther ones) and
returns the ground truth of what is visible: boxes clipped to the frame, with a visibility
that counts both the part off the frame and the part hidden by nearer opaque actors. It
feeds the detector's training set, the scenario suite and the live ``synthetic:`` camera,
so it is pure (everything comes from its arguments) and fast: the static street is drawn
once per size and cached; a 1280×720 frame costs a few milliseconds.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from numpy.typing import NDArray

__all__ = [
    "CAR_BODIES",
    "DAY",
    "DEFAULT_LAYOUT",
    "DUSK",
    "LANES",
    "LIGHTING_PRESETS",
    "NIGHT",
    "REGIONS",
    "SHAKE_MARGIN_PX",
    "STREET_CLASSES",
    "Actor",
    "CarBody",
    "FlashLook",
    "Image",
    "Lane",
    "Lighting",
    "PersonLook",
    "SmokeLook",
    "StallLook",
    "StreetFrame",
    "StreetLayout",
    "TruthBox",
    "VehicleKind",
    "VehicleLook",
    "draw_truth",
    "random_person",
    "random_smoke",
    "random_stall",
    "random_vehicle",
    "render_street",
    "shake_offset",
]

STREET_CLASSES = ("car", "truck", "bus", "person", "stall", "smoke")
"""The detector's classes, in the order of its class ids."""

Image = NDArray[np.uint8]
BGR = tuple[int, int, int]
Box = tuple[float, float, float, float]
Lane = Literal["road_far", "road_near", "curb", "sidewalk"]
LANES: tuple[Lane, ...] = ("road_far", "road_near", "curb", "sidewalk")
Polygon = tuple[tuple[float, float], ...]

MIN_IN_FRAME = 0.5
"""An actor with less of its box inside the frame than this is not reported."""
MAX_OCCLUDED = 0.7
"""An actor with more of its in-frame box hidden by nearer actors than this is not reported."""
SMOKE_BOX_ALPHA = 0.15
"""The smoke's box covers where the plume is at least this opaque."""
SHAKE_MARGIN_PX = 16
"""The cached street is drawn this much larger on every side, so shake never shows an edge."""


# --- the street ----------------------------------------------------------------------------


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


# --- lighting ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Lighting:
    """A global exposure: ``gain`` and per-channel ``tint`` scale the lit scene, ``ambient``
    lifts the blacks, and ``lights`` (0–1) turns on headlights, lamps and windows."""

    gain: float = 1.0
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    ambient: tuple[float, float, float] = (0.0, 0.0, 0.0)
    lights: float = 0.0

    def mix(self, other: Lighting, weight: float) -> Lighting:
        """Linear blend towards ``other`` (``weight`` 0 → self, 1 → other)."""
        w = min(1.0, max(0.0, weight))

        def lerp3(a: tuple[float, ...], b: tuple[float, ...]) -> tuple[float, float, float]:
            return (a[0] + (b[0] - a[0]) * w, a[1] + (b[1] - a[1]) * w, a[2] + (b[2] - a[2]) * w)

        return Lighting(
            gain=self.gain + (other.gain - self.gain) * w,
            tint=lerp3(self.tint, other.tint),
            ambient=lerp3(self.ambient, other.ambient),
            lights=self.lights + (other.lights - self.lights) * w,
        )


DAY = Lighting()
DUSK = Lighting(gain=0.62, tint=(0.82, 0.95, 1.15), ambient=(6, 4, 4), lights=0.6)
NIGHT = Lighting(gain=0.26, tint=(1.3, 1.0, 0.8), ambient=(10, 7, 5), lights=1.0)
LIGHTING_PRESETS: dict[str, Lighting] = {"day": DAY, "dusk": DUSK, "night": NIGHT}


def _lighting_matrix(lighting: Lighting) -> NDArray[np.float32]:
    """The 3×4 affine colour transform (per-channel gain, then ambient) for cv2.transform."""
    matrix = np.zeros((3, 4), np.float32)
    for c in range(3):
        matrix[c, c] = lighting.gain * lighting.tint[c]
        matrix[c, 3] = lighting.ambient[c]
    return matrix


# --- actors --------------------------------------------------------------------------------

VehicleKind = Literal["car", "truck", "bus"]
CarBody = Literal["sedan", "hatch", "suv", "van"]
VehicleBody = Literal["sedan", "hatch", "suv", "van", "box", "bus"]


@dataclass(frozen=True, slots=True)
class VehicleLook:
    """A car, truck or bus seen from the side."""

    kind: VehicleKind
    body: VehicleBody
    length_m: float
    height_m: float
    colour: BGR
    accent: BGR
    """Truck cargo box, bus stripe."""

    @property
    def class_name(self) -> str:
        return self.kind


@dataclass(frozen=True, slots=True)
class PersonLook:
    height_m: float
    shirt: BGR
    trousers: BGR
    skin: BGR
    hair: BGR
    bag: bool = False

    @property
    def class_name(self) -> str:
        return "person"


@dataclass(frozen=True, slots=True)
class StallLook:
    """A vendor's cart under a striped umbrella (its vendor is a separate person)."""

    umbrella: tuple[BGR, BGR]
    cart: BGR
    umbrella_m: float = 2.3
    segments: int = 8
    goods: tuple[BGR, ...] = ()

    @property
    def class_name(self) -> str:
        return "stall"


@dataclass(frozen=True, slots=True)
class SmokeLook:
    """A plume at one instant: ``height_m`` grows, ``opacity`` fades, ``lean`` is the wind's
    sideways drift per metre of rise, ``time_s`` animates the rising puffs."""

    shade: int
    height_m: float = 4.0
    opacity: float = 0.7
    lean: float = 0.3
    time_s: float = 0.0
    seed: int = 0

    @property
    def class_name(self) -> str:
        return "smoke"


@dataclass(frozen=True, slots=True)
class FlashLook:
    """A bright glow (a welding flash, a reflection, a camera flash): a smoke-like distractor
    that is not an object class, so it never has a truth box."""

    radius_m: float = 1.5
    strength: float = 1.0
    colour: BGR = (235, 245, 255)

    @property
    def class_name(self) -> None:
        return None


Look = VehicleLook | PersonLook | StallLook | SmokeLook | FlashLook


@dataclass(frozen=True, slots=True)
class Actor:
    """One thing in the scene at one instant, standing with its bottom-centre at image
    column ``x`` (0–1, beyond for off-frame) on the ground at depth ``z_m``."""

    track_id: int
    look: Look
    x: float
    z_m: float
    facing: int = 1
    """+1 faces right, -1 left."""
    blur_px: float = 0.0
    """Horizontal motion blur length in pixels (moving vehicles)."""
    walk_phase: float | None = None
    """Gait phase in radians for a walking person; None stands still."""


@dataclass(frozen=True, slots=True)
class TruthBox:
    """What the camera truly shows of one actor: ``xyxy`` in pixels (clipped to the frame),
    ``visibility`` the share of its full box that is in frame and not hidden."""

    track_id: int
    class_name: str
    xyxy: Box
    visibility: float


@dataclass(frozen=True)
class StreetFrame:
    image: Image
    truth: tuple[TruthBox, ...]


_CAR_COLOURS: tuple[BGR, ...] = (
    (235, 235, 232), (238, 238, 238), (190, 190, 186), (160, 162, 165), (30, 30, 32),
    (70, 70, 75), (40, 40, 185), (150, 80, 30), (95, 45, 20), (160, 190, 212),
    (60, 105, 45), (30, 195, 225), (45, 70, 115), (120, 40, 120),
)  # fmt: skip
_CAR_WEIGHTS = np.array([4, 3, 3, 2, 3, 2, 1.5, 1.5, 1, 1, 0.5, 0.4, 0.6, 0.3])
_BRIGHT: tuple[BGR, ...] = (
    (40, 40, 200), (30, 140, 240), (40, 200, 240), (60, 160, 40), (180, 110, 30),
    (150, 50, 140), (240, 240, 240), (40, 90, 200), (200, 170, 40), (90, 60, 180),
)  # fmt: skip
_SKIN: tuple[BGR, ...] = ((150, 180, 225), (120, 160, 210), (90, 130, 180), (60, 90, 140))


def _pick(rng: np.random.Generator, options: Sequence[BGR]) -> BGR:
    return options[int(rng.integers(len(options)))]


def _jitter(rng: np.random.Generator, colour: BGR, amount: int = 12) -> BGR:
    c = np.clip(np.asarray(colour) + rng.integers(-amount, amount + 1, 3), 0, 255)
    return (int(c[0]), int(c[1]), int(c[2]))


CAR_BODIES: dict[CarBody, tuple[float, float]] = {
    "sedan": (4.7, 1.45),
    "hatch": (4.1, 1.5),
    "suv": (4.7, 1.75),
    "van": (5.0, 2.0),
}
"""Length and height in metres of each car body (scaled ±6% per car)."""
_TRUCK_CABS: tuple[BGR, ...] = (
    (230, 230, 230), (170, 90, 30), (40, 60, 190), (40, 150, 220), (60, 120, 60),
)  # fmt: skip
_TRUCK_BOXES: tuple[BGR, ...] = (
    (235, 235, 235), (225, 228, 232), (200, 200, 200), (150, 100, 40), (60, 140, 220),
)  # fmt: skip
_BUSES: tuple[BGR, ...] = (
    (70, 150, 40),
    (200, 120, 30),
    (40, 40, 190),
    (230, 230, 230),
    (40, 170, 230),
)
_BUS_STRIPES: tuple[BGR, ...] = ((235, 235, 235), (50, 50, 50), (40, 40, 180), (200, 160, 40))


def random_vehicle(
    kind: VehicleKind, rng: np.random.Generator, body: CarBody | None = None
) -> VehicleLook:
    """A plausible vehicle of ``kind`` with varied shape, size and colour (a car's ``body``
    may be fixed; white is the commonest van, the classic smoke-like distractor)."""
    if kind == "car":
        drawn: CarBody = ("sedan", "hatch", "suv", "van")[
            int(rng.choice(4, p=[0.45, 0.25, 0.2, 0.1]))
        ]
        body = body or drawn
        scale = float(rng.uniform(0.94, 1.06))
        length, height = (v * scale for v in CAR_BODIES[body])
        weights = _CAR_WEIGHTS / _CAR_WEIGHTS.sum()
        colour = _CAR_COLOURS[int(rng.choice(len(_CAR_COLOURS), p=weights))]
        if body == "van" and rng.random() < 0.6:
            colour = (238, 238, 236)
        colour = _jitter(rng, colour, 8)
        return VehicleLook("car", body, length, height, colour, colour)
    if kind == "truck":
        length, height = float(rng.uniform(6.3, 8.6)), float(rng.uniform(3.0, 3.5))
        cab, cargo = _pick(rng, _TRUCK_CABS), _pick(rng, _TRUCK_BOXES)
        return VehicleLook(
            "truck", "box", length, height, _jitter(rng, cab, 8), _jitter(rng, cargo, 8)
        )
    length, height = float(rng.uniform(10.0, 12.0)), float(rng.uniform(3.0, 3.3))
    paint, stripe = _pick(rng, _BUSES), _pick(rng, _BUS_STRIPES)
    return VehicleLook(
        "bus", "bus", length, height, _jitter(rng, paint, 8), _jitter(rng, stripe, 8)
    )


def random_person(rng: np.random.Generator) -> PersonLook:
    dark = ((40, 40, 45), (90, 60, 40), (70, 70, 75), (120, 100, 80), (30, 30, 70))
    return PersonLook(
        height_m=float(rng.uniform(1.55, 1.88)),
        shirt=_jitter(rng, _pick(rng, (*_BRIGHT, (200, 200, 200), (50, 50, 50)))),
        trousers=_jitter(rng, _pick(rng, (*dark, (170, 160, 150)))),
        skin=_jitter(rng, _pick(rng, _SKIN), 8),
        hair=_jitter(rng, _pick(rng, ((20, 20, 25), (30, 40, 60), (120, 120, 125))), 6),
        bag=bool(rng.random() < 0.3),
    )


def random_stall(rng: np.random.Generator) -> StallLook:
    first = _pick(rng, _BRIGHT)
    second = _pick(rng, ((240, 240, 240), *_BRIGHT))
    goods = tuple(_pick(rng, _BRIGHT) for _ in range(int(rng.integers(0, 5))))
    cart = _pick(
        rng, ((60, 90, 130), (170, 170, 170), (40, 110, 200), (70, 140, 60), (200, 200, 200))
    )
    return StallLook(
        umbrella=(first, second),
        cart=_jitter(rng, cart),
        umbrella_m=float(rng.uniform(1.9, 2.7)),
        segments=int(rng.choice((6, 8, 10))),
        goods=goods,
    )


def random_smoke(rng: np.random.Generator) -> SmokeLook:
    """Smoke of a random shade (white steam to dark burning rubbish) and puff layout."""
    return SmokeLook(
        shade=int(rng.choice((230, 215, 200, 175, 70, 55))),
        lean=float(rng.uniform(-0.6, 0.6)),
        seed=int(rng.integers(1 << 30)),
    )


# --- drawing -------------------------------------------------------------------------------

Drawn = tuple[Box, list[Box], list[tuple[float, float, float, BGR]]]
"""(full box, boxes that hide what is behind, light glows (x, y, radius, colour))."""


class _Pen:
    """Draws in an actor's own metres: x along its facing from its bottom-centre, y up."""

    def __init__(self, img: Image, bx: float, by: float, s: float, facing: int = 1) -> None:
        self.img, self.bx, self.by, self.s, self.f = img, bx, by, s, facing

    def at(self, x: float, y: float) -> tuple[int, int]:
        return (round(self.bx + self.f * x * self.s), round(self.by - y * self.s))

    def size(self, metres: float) -> int:
        return max(1, round(metres * self.s))

    def poly(self, points: Sequence[tuple[float, float]], colour: BGR) -> None:
        arr = np.asarray(points, dtype=np.float32)
        px = np.empty_like(arr)
        px[:, 0] = self.bx + self.f * arr[:, 0] * self.s
        px[:, 1] = self.by - arr[:, 1] * self.s
        cv2.fillPoly(self.img, [np.round(px).astype(np.int32)], colour, cv2.LINE_AA)

    def rect(self, x0: float, y0: float, x1: float, y1: float, colour: BGR) -> None:
        self.poly(((x0, y0), (x0, y1), (x1, y1), (x1, y0)), colour)

    def circle(self, x: float, y: float, r: float, colour: BGR) -> None:
        cv2.circle(self.img, self.at(x, y), self.size(r), colour, -1, cv2.LINE_AA)

    def line(self, a: tuple[float, float], b: tuple[float, float], colour: BGR, w: float) -> None:
        cv2.line(self.img, self.at(*a), self.at(*b), colour, self.size(w), cv2.LINE_AA)

    def shadow(self, half_m: float, depth_m: float) -> None:
        axes = (self.size(half_m), self.size(depth_m))
        cv2.ellipse(self.img, self.at(0, 0), axes, 0, 0, 360, (28, 28, 30), -1)

    def box(self, x0: float, x1: float, top: float, bottom: float = 0.0) -> Box:
        """A pixel box from metres left/right of the bottom-centre and heights above ground."""
        (ax, ay), (bx, by) = self.at(x0, top), self.at(x1, bottom)
        return (float(min(ax, bx)), float(ay), float(max(ax, bx)), float(by))


def _shade(colour: BGR, factor: float) -> BGR:
    return (
        min(255, int(colour[0] * factor)),
        min(255, int(colour[1] * factor)),
        min(255, int(colour[2] * factor)),
    )


_GLASS: BGR = (75, 62, 52)


def _wheels(pen: _Pen, xs: Sequence[float], r: float) -> None:
    for x in xs:
        pen.circle(x, r, r * 1.12, (25, 25, 25))
        pen.circle(x, r, r, (35, 35, 38))
        pen.circle(x, r, r * 0.55, (150, 150, 155))


def _draw_bus(pen: _Pen, look: VehicleLook) -> list[Box]:
    half, h, c = look.length_m / 2, look.height_m, look.colour
    pen.poly(((-half, 0.3), (-half, h - 0.15), (-half + 0.2, h), (half - 0.35, h),
              (half, h - 0.35), (half, 0.3)), c)  # fmt: skip
    pen.rect(-half, 0.3, half, 0.75, look.accent)
    pen.rect(-half + 0.35, 1.25, half - 1.8, h - 0.45, _GLASS)
    for k in range(1, int((look.length_m - 2.2) / 1.35)):
        px = -half + 0.35 + k * 1.35
        pen.rect(px, 1.2, px + 0.12, h - 0.4, c)
    pen.rect(half - 1.65, 0.45, half - 0.75, h - 0.5, (60, 55, 50))  # door
    pen.poly(
        ((half - 0.2, 0.95), (half - 0.2, h - 0.45), (half - 0.05, h - 0.45), (half, 0.95)), _GLASS
    )
    pen.rect(half - 1.7, h - 0.4, half - 0.4, h - 0.12, (20, 20, 20))  # destination sign
    pen.rect(half - 1.6, h - 0.33, half - 0.6, h - 0.2, (0, 150, 255))
    _wheels(pen, (half - 2.3, -half + 2.7), 0.5)
    return [pen.box(-half, half, h, 0.2)]


def _draw_truck(pen: _Pen, look: VehicleLook) -> list[Box]:
    half, h, c = look.length_m / 2, look.height_m, look.colour
    cab = half - 2.1
    pen.rect(-half + 0.2, 0.45, half - 0.1, 0.95, (40, 40, 42))  # chassis
    pen.poly(((cab, 0.5), (cab, 2.6), (half - 0.55, 2.6), (half, 1.6), (half, 0.5)), c)
    pen.poly(((cab + 0.9, 2.45), (half - 0.65, 2.45), (half - 0.2, 1.7), (cab + 0.9, 1.7)), _GLASS)
    pen.rect(-half, 0.9, cab - 0.1, h, look.accent)  # cargo box
    pen.rect(-half, 1.5, cab - 0.1, 1.75, _shade(c, 0.9))
    pen.line((cab - 0.1, h), (cab - 0.1, 0.9), (90, 90, 90), 0.03)
    rear = (-half + 1.3,) if look.length_m < 7.5 else (-half + 1.3, -half + 2.4)
    _wheels(pen, (half - 1.2, *rear), 0.48)
    return [pen.box(-half, cab, h, 0.9), pen.box(cab, half, 2.6, 0.3)]


_CAR_SHAPES = {
    # (belt height, cabin rear, roof rear, roof front, cabin front), as fractions of half length
    "sedan": (0.92, -0.72, -0.42, 0.12, 0.55),
    "hatch": (0.92, -0.95, -0.82, 0.08, 0.55),
    "suv": (1.02, -0.97, -0.9, 0.2, 0.6),
}


def _draw_car(pen: _Pen, look: VehicleLook) -> list[Box]:
    half, h, c = look.length_m / 2, look.height_m, look.colour
    if look.body == "van":
        pen.poly(((-half, 0.28), (-half, h), (half * 0.35, h), (half * 0.9, 1.05), (half, 0.85),
                  (half, 0.28)), c)  # fmt: skip
        pen.poly(((half * 0.45, h - 0.12), (half * 0.86, 1.08), (half * 0.3, 1.08),
                  (half * 0.3, h - 0.12)), _GLASS)  # fmt: skip
        pen.rect(-half * 0.85, 1.15, half * 0.2, h - 0.2, _GLASS)
        parts = [pen.box(-half, half, h, 0.2)]
        belt = 1.0
    else:
        belt, rear, roof0, roof1, front = _CAR_SHAPES[look.body]
        pen.poly(((-half, 0.28), (-half, belt - 0.12), (-half * 0.9, belt), (half * 0.6, belt),
                  (half * 0.95, belt - 0.16), (half, belt - 0.3), (half, 0.28)), c)  # fmt: skip
        pen.poly(((rear * half, belt - 0.02), (roof0 * half, h), (roof1 * half, h),
                  (front * half, belt - 0.02)), c)  # fmt: skip
        pen.poly((((rear + 0.09) * half, belt + 0.02), (roof0 * half + 0.08, h - 0.09),
                  (roof1 * half - 0.02, h - 0.09), ((front - 0.1) * half, belt + 0.02)), _GLASS)  # fmt: skip
        pillar = ((roof0 + roof1) / 2 - 0.02) * half
        pen.rect(pillar, belt, pillar + 0.1, h - 0.05, c)
        parts = [
            pen.box(-half, half, belt, 0.2),
            pen.box(min(rear, roof0) * half, front * half, h, belt),
        ]
    pen.line((0.05 * half, belt - 0.05), (0.05 * half, 0.4), _shade(c, 0.6), 0.02)  # door gap
    _wheels(pen, (half * 0.64, -half * 0.62), 0.33)
    return parts


def _draw_vehicle(img: Image, look: VehicleLook, bx: float, by: float, s: float, f: int) -> Drawn:
    pen = _Pen(img, bx, by, s, f)
    half = look.length_m / 2
    pen.shadow(half * 1.04, 0.16)
    draw = {"bus": _draw_bus, "box": _draw_truck}.get(look.body, _draw_car)
    parts = draw(pen, look)
    lights_y = {"bus": 0.75, "box": 0.8}.get(look.body, 0.72)
    pen.rect(half - 0.25, lights_y - 0.08, half - 0.02, lights_y + 0.06, (190, 235, 245))
    pen.rect(-half, lights_y, -half + 0.18, lights_y + 0.14, (30, 30, 200))
    head, tail = pen.at(half - 0.1, lights_y), pen.at(-half + 0.05, lights_y + 0.07)
    glows = [(*head, 0.55 * s, (200, 245, 255)), (*tail, 0.3 * s, (40, 40, 255))]
    return (
        pen.box(-half, half, look.height_m),
        parts,
        [(float(x), float(y), r, c) for x, y, r, c in glows],
    )


def _draw_person(
    img: Image, look: PersonLook, bx: float, by: float, s: float, f: int, phase: float | None
) -> Drawn:
    pen = _Pen(img, bx, by, s, f)
    h = look.height_m
    stride = 0.0 if phase is None else 0.17 * h * math.sin(phase)
    hip, shoulder = 0.5 * h, 0.81 * h
    for sign, shade in ((-1, 0.8), (1, 1.0)):
        pen.line(
            (sign * 0.03 * h, hip), (sign * stride, 0.04), _shade(look.trousers, shade), 0.075 * h
        )
        pen.circle(sign * stride, 0.04, 0.045 * h, (30, 30, 30))
    pen.poly(((-0.11 * h, hip - 0.02 * h), (-0.12 * h, shoulder), (-0.07 * h, shoulder + 0.03 * h),
              (0.07 * h, shoulder + 0.03 * h), (0.12 * h, shoulder), (0.11 * h, hip - 0.02 * h)),
             look.shirt)  # fmt: skip
    hand = (-0.5 * stride + 0.02 * h, hip - 0.02 * h)
    pen.line((0.0, shoulder - 0.02 * h), hand, _shade(look.shirt, 0.8), 0.05 * h)
    pen.circle(*hand, 0.025 * h, look.skin)
    if look.bag:
        pen.rect(-0.2 * h, 0.55 * h, -0.13 * h, 0.72 * h, (40, 50, 70))
    pen.circle(0.0, 0.92 * h, 0.068 * h, look.skin)
    r = pen.size(0.068 * h)
    hx, hy = pen.at(0.0, 0.92 * h)
    cv2.ellipse(
        img, (hx, hy - r // 4), (r, max(1, round(r * 0.8))), 0, 180, 360, look.hair, -1, cv2.LINE_AA
    )
    half = max(0.14 * h, abs(stride) + 0.05 * h)
    box = pen.box(-half - (0.07 * h if look.bag else 0.0), half, h)
    return box, [box], []


def _draw_stall(img: Image, look: StallLook, bx: float, by: float, s: float) -> Drawn:
    pen = _Pen(img, bx, by, s)
    d, cart, top = look.umbrella_m / 2, 0.8, 0.95
    pen.shadow(0.9, 0.12)
    for wx in (-0.55, 0.55):
        pen.circle(wx, 0.2, 0.2, (30, 30, 30))
    pen.rect(-cart, 0.3, cart, top, look.cart)
    pen.rect(-cart - 0.05, top, cart + 0.05, top + 0.08, _shade(look.cart, 1.3))
    for k, colour in enumerate(look.goods):
        pen.circle(-cart + 0.25 + k * 0.35, top + 0.16, 0.12, colour)
    pen.rect(-0.03, top, 0.03, 2.2, (60, 60, 60))  # pole
    apex, rim_y = 2.75, 2.1
    angles = np.linspace(math.pi, 0.0, look.segments + 1)
    rim = [(d * math.cos(a), rim_y + 0.12 * math.sin(a)) for a in angles]
    for k in range(look.segments):
        colour = look.umbrella[k % 2]
        pen.poly(((0.0, apex), rim[k], rim[k + 1]), colour)
        pen.poly(
            (rim[k], ((rim[k][0] + rim[k + 1][0]) / 2, rim_y - 0.12), rim[k + 1]),
            _shade(colour, 0.85),
        )
    wide = max(d, cart + 0.05)
    parts = [pen.box(-d, d, apex, rim_y - 0.12), pen.box(-cart, cart, top + 0.1, 0.1)]
    return pen.box(-wide, wide, apex), parts, []


@functools.lru_cache(maxsize=64)
def _puffs(seed: int) -> NDArray[np.float32]:
    """Fixed per-plume puff jitter: (side offset, size factor, wobble phase) per puff."""
    rng = np.random.default_rng(seed)
    return np.stack(
        [rng.uniform(-1, 1, 18), rng.uniform(0.75, 1.25, 18), rng.uniform(0, 2 * math.pi, 18)],
        axis=1,
    ).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _wisp_texture() -> NDArray[np.float32]:
    """Low-frequency noise that breaks the puffs' round outlines into wisps."""
    rng = np.random.default_rng(7)
    small = rng.random((12, 12)).astype(np.float32)
    big = cv2.resize(small, (96, 96), interpolation=cv2.INTER_CUBIC)
    return np.clip(np.tile(big, (2, 2)), 0, 1)


def _draw_smoke(
    img: Image, look: SmokeLook, bx: float, by: float, s: float, min_contrast: float
) -> Box | None:
    """Alpha-blend the plume into ``img``; returns the box of where it is visible: alpha
    above :data:`SMOKE_BOX_ALPHA` and changing the background by at least ``min_contrast``
    grey levels (white steam against a white wall is not there for the camera), or None."""
    height = max(0.3, look.height_m)
    jitter = _puffs(look.seed)
    n = len(jitter)
    u = (np.arange(n, dtype=np.float32) / n + look.time_s * 0.07) % 1.0
    rise = u * height
    radius = height * (0.08 + 0.2 * u) * jitter[:, 1]
    wobble = 0.07 * height * np.sin(2 * math.pi * look.time_s * 0.2 + jitter[:, 2]) * u
    cx = look.lean * rise + jitter[:, 0] * 0.18 * height * u + wobble
    alpha = look.opacity * (1 - u) ** 0.6 * np.minimum(1.0, 0.6 + u / 0.08)
    x0, x1 = float((cx - radius).min()) - 0.3, float((cx + radius).max()) + 0.3
    top = float((rise + radius).max()) + 0.2
    px0, py0 = bx + x0 * s, by - top * s
    hgt, wid = img.shape[:2]
    span_w, span_h = (x1 - x0) * s, (top + 0.15) * s
    if px0 + span_w <= 0 or py0 + span_h <= 0 or px0 >= wid or py0 >= hgt:
        return None
    # Draw the alpha at a coarse scale (cheap), soften it, then stretch it over the plume.
    down = max(1.0, span_w / 100)
    ms = s / down
    mw, mh = max(4, round(span_w / down)), max(4, round(span_h / down))
    amap = np.zeros((mh, mw), np.float32)
    for i in np.argsort(-u):
        centre = (round((cx[i] - x0) * ms), round((top - rise[i]) * ms))
        cv2.circle(amap, centre, max(1, round(radius[i] * ms)), float(alpha[i]), -1, cv2.LINE_AA)
    amap = cv2.GaussianBlur(amap, (0, 0), max(0.8, float(radius.mean()) * ms * 0.22)).astype(
        np.float32, copy=False
    )
    tex = _wisp_texture()
    offset = int(look.time_s * 6) % 96
    amap *= 0.5 + 0.75 * cv2.resize(tex[offset : offset + 96, :96], (mw, mh))
    np.minimum(amap, 0.92, out=amap)
    ix0, iy0 = round(px0), round(py0)
    full = cv2.resize(amap, (max(1, round(span_w)), max(1, round(span_h))))
    cx0, cy0 = max(0, ix0), max(0, iy0)
    cx1, cy1 = min(wid, ix0 + full.shape[1]), min(hgt, iy0 + full.shape[0])
    if cx1 <= cx0 or cy1 <= cy0:
        return None
    a = np.ascontiguousarray(full[cy0 - iy0 : cy1 - iy0, cx0 - ix0 : cx1 - ix0])
    roi = img[cy0:cy1, cx0:cx1]
    colour = _flat(look.shade, hgt, wid)[: roi.shape[0], : roi.shape[1]]
    step = 2 if min(a.shape) < 120 else 4
    sample = a[::step, ::step]
    contrast = cv2.absdiff(roi[::step, ::step], colour[::step, ::step]).max(axis=2)
    visible = (sample > SMOKE_BOX_ALPHA) & (sample * contrast >= min_contrast)
    roi[:] = cv2.blendLinear(roi, colour, 1.0 - a, a)
    cols, rows = np.flatnonzero(visible.any(axis=0)), np.flatnonzero(visible.any(axis=1))
    if not len(cols):
        return None
    box = [cx0 + cols[0] * step, cy0 + rows[0] * step]
    box += [cx0 + (cols[-1] + 1) * step, cy0 + (rows[-1] + 1) * step]
    # Where the plume runs off the frame, keep its full extent there, so the truth's
    # visibility counts the part outside.
    full_box = (float(ix0), float(iy0), float(ix0 + full.shape[1]), float(iy0 + full.shape[0]))
    for side, edge in enumerate((0, 0, wid, hgt)):
        if abs(box[side] - edge) <= step:
            box[side] = full_box[side]
    return (
        float(box[0]),
        float(box[1]),
        float(min(box[2], full_box[2])),
        float(min(box[3], full_box[3])),
    )


@functools.lru_cache(maxsize=8)
def _flat(shade: int, height: int, width: int) -> Image:
    """A frame-sized plane of the smoke's colour (slightly blue-white), cached per shade."""
    plane = np.empty((height, width, 3), np.uint8)
    plane[:] = (shade, min(255, shade + 2), min(255, shade + 6))
    plane.setflags(write=False)
    return plane


@functools.lru_cache(maxsize=1)
def _glow_sprite() -> NDArray[np.float32]:
    r = np.linspace(-1, 1, 64, dtype=np.float32)
    d2 = r[None, :] ** 2 + r[:, None] ** 2
    return np.exp(-d2 * 4.0).astype(np.float32)


def _add_glow(img: Image, x: float, y: float, radius: float, colour: BGR, strength: float) -> None:
    r = max(2, round(radius))
    x0, y0 = round(x) - r, round(y) - r
    hgt, wid = img.shape[:2]
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(wid, x0 + 2 * r), min(hgt, y0 + 2 * r)
    if cx1 <= cx0 or cy1 <= cy0:
        return
    sprite = cv2.resize(_glow_sprite(), (2 * r, 2 * r))[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
    glow = sprite[:, :, None] * (np.asarray(colour, np.float32) * strength)
    roi = img[cy0:cy1, cx0:cx1]
    roi[:] = np.minimum(roi.astype(np.float32) + glow, 255).astype(np.uint8)


# --- the static street ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Backdrop:
    image: Image
    lights: Image
    """Windows, shop fronts and lamps, added at dusk and night."""
    lights_rows: int
    """Rows below this hold no lights."""


@dataclass(frozen=True)
class _Ground:
    """Pixel positions on the ground of the cached canvas (``SHAKE_MARGIN_PX`` larger)."""

    layout: StreetLayout
    width: int
    height: int

    def row(self, z: float) -> int:
        return round(self.layout.y_at(z) * self.height) + SHAKE_MARGIN_PX

    def col(self, x_m: float, z: float) -> float:
        """Column of a point ``x_m`` metres along the street from the image centre."""
        return self.width / 2 + x_m * self.layout.px_per_m(z, self.height) + SHAKE_MARGIN_PX


_FACADES: tuple[BGR, ...] = (
    (170, 190, 205), (120, 130, 150), (90, 100, 160), (190, 190, 185),
    (150, 160, 160), (110, 140, 175), (200, 205, 215),
)  # fmt: skip


@functools.lru_cache(maxsize=16)
def _backdrop(layout: StreetLayout, width: int, height: int, seed: int) -> _Backdrop:
    """The empty street (drawn ``SHAKE_MARGIN_PX`` larger on each side) and its night lights."""
    rng = np.random.default_rng(seed)
    g = _Ground(layout, width, height)
    img = np.zeros((height + 2 * SHAKE_MARGIN_PX, width + 2 * SHAKE_MARGIN_PX, 3), np.uint8)
    lights = np.zeros_like(img)
    _draw_skyline(img, lights, g, rng)
    _draw_road(img, g, rng)
    _draw_sidewalk(img, g, rng)
    _draw_far_sidewalk(img, lights, g, rng)
    lights = cv2.GaussianBlur(lights, (0, 0), max(1.0, height / 400)).astype(np.uint8, copy=False)
    img.setflags(write=False)
    lights.setflags(write=False)
    lit_rows = np.flatnonzero(lights.any(axis=(1, 2)))
    return _Backdrop(img, lights, int(lit_rows[-1]) + 1 if len(lit_rows) else 0)


def _draw_skyline(img: Image, lights: Image, g: _Ground, rng: np.random.Generator) -> None:
    """Sky and a row of buildings with windows and shop fronts (some lit at night)."""
    ground = g.row(g.layout.building_z_m)
    sky_top, sky_low = np.array([215, 170, 120]), np.array([235, 215, 195])
    ramp = np.linspace(0, 1, ground, dtype=np.float32)[:, None]
    img[:ground] = (sky_top + (sky_low - sky_top) * ramp).astype(np.uint8)[:, None, :]
    x = -float(rng.uniform(0, 60))
    while x < img.shape[1]:
        bw = float(rng.uniform(0.08, 0.22)) * g.width
        top = round(float(rng.uniform(0.0, 0.6)) * (ground - SHAKE_MARGIN_PX)) + 8
        colour = _jitter(rng, _pick(rng, _FACADES), 10)
        x0, x1 = round(x), round(x + bw) - 2
        cv2.rectangle(img, (x0, top), (x1, ground), colour, -1)
        cell = max(6, round(float(rng.uniform(0.028, 0.04)) * g.height))
        shop, pane = max(4, round(cell * 1.4)), (cell // 2, cell * 3 // 5)
        for wy in range(top + cell // 2, ground - shop - cell, cell):
            for wx in range(x0 + cell // 3, x1 - cell // 2, cell):
                corner = (wx + pane[0], wy + pane[1])
                cv2.rectangle(img, (wx, wy), corner, _shade(colour, 0.45), -1)
                if rng.random() < 0.3:
                    cv2.rectangle(lights, (wx, wy), corner, (90, 190, 240), -1)
        cv2.rectangle(img, (x0, ground - shop), (x1, ground), _shade(colour, 0.5), -1)
        sign_top = ground - shop - max(2, shop // 3)
        cv2.rectangle(img, (x0 + 3, sign_top), (x1 - 3, ground - shop), _pick(rng, _BRIGHT), -1)
        for sx in range(x0 + 6, x1 - 2 * shop, 2 * shop):
            cv2.rectangle(
                lights, (sx, ground - shop + 3), (sx + shop, ground - 3), (50, 120, 170), -1
            )
        x += bw
    img[ground : g.row(g.layout.far_curb_z_m)] = (165, 168, 170)


def _draw_road(img: Image, g: _Ground, rng: np.random.Generator) -> None:
    """Asphalt with grain and patches, the centre and lane lines, and the curb lane's marks:
    a yellow no-parking line, then parking bays from ``parking_bays_from_x`` on."""
    layout, width = g.layout, img.shape[1]
    top, bottom = g.row(layout.far_curb_z_m), g.row(layout.curb_z_m)
    grain = rng.normal(0, 5, (bottom - top, width, 1)).astype(np.float32)
    patches = cv2.resize(rng.normal(0, 6, (6, 24)).astype(np.float32), (width, bottom - top))
    asphalt = np.array([88, 88, 92], np.float32) + grain + patches[:, :, None]
    img[top:bottom] = np.clip(asphalt, 0, 255).astype(np.uint8)
    thick = max(1, round(0.04 * layout.px_per_m(layout.centre_z_m, g.height)))
    centre = g.row(layout.centre_z_m)
    cv2.line(img, (0, centre), (width, centre), (40, 200, 230), thick, cv2.LINE_AA)
    lane = g.row(layout.lane_z_m)
    for k in range(-40, 40):
        xa, xb = g.col(k * 6.0, layout.lane_z_m), g.col(k * 6.0 + 3.0, layout.lane_z_m)
        cv2.line(img, (round(xa), lane), (round(xb), lane), (225, 225, 225), thick, cv2.LINE_AA)
    bays = round(layout.parking_bays_from_x * g.width) + SHAKE_MARGIN_PX
    yellow = g.row(layout.curb_z_m + 0.25)
    cv2.line(img, (0, yellow), (bays, yellow), (30, 190, 230), max(1, g.height // 300), cv2.LINE_AA)
    for k in range(-30, 30):
        if g.col(k * 5.5, layout.lane_z_m + 1.3) >= bays:
            far = (round(g.col(k * 5.5, layout.lane_z_m)), lane)
            near = (round(g.col(k * 5.5, layout.curb_z_m)), bottom)
            cv2.line(img, far, near, (215, 215, 215), max(1, g.height // 360), cv2.LINE_AA)


def _draw_sidewalk(img: Image, g: _Ground, rng: np.random.Generator) -> None:
    """The curb stone and the near sidewalk: paving in perspective and a tactile strip."""
    layout, (height, width) = g.layout, img.shape[:2]
    curb, near = g.row(layout.curb_z_m), g.row(layout.curb_z_m - 0.22)
    edge_px = max(1, g.height // 240)
    img[curb:near] = (180, 182, 185)
    img[near : near + edge_px] = (120, 120, 125)
    paving = _pick(rng, ((150, 160, 170), (120, 130, 165), (165, 165, 160)))
    walk = np.asarray(paving, np.float32) + rng.normal(0, 4, (height - near - edge_px, width, 1))
    img[near + edge_px :] = np.clip(walk, 0, 255).astype(np.uint8)
    img[g.row(layout.curb_z_m - 1.0) : g.row(layout.curb_z_m - 1.35)] = (40, 170, 200)
    joint = _shade(paving, 0.8)
    z = layout.curb_z_m - 0.22
    while z > layout.near_z_m - 1.5:
        cv2.line(img, (0, g.row(z)), (width, g.row(z)), joint, 1)
        z -= 0.5
    horizon = layout.horizon_y * g.height + SHAKE_MARGIN_PX
    centre = g.width / 2 + SHAKE_MARGIN_PX
    for k in range(-60, 61):  # joints across the street run to the vanishing point
        xa = g.col(k * 0.5, layout.curb_z_m - 0.22)
        xb = centre + (xa - centre) * (height - horizon) / (near - horizon)
        cv2.line(img, (round(xa), near), (round(xb), height), joint, 1)


def _draw_far_sidewalk(img: Image, lights: Image, g: _Ground, rng: np.random.Generator) -> None:
    """Lamp posts (lit at night) and trees along the far sidewalk."""
    z = g.layout.far_curb_z_m + 0.5
    s = g.layout.px_per_m(z, g.height)
    for k in range(-6, 7):
        x = g.col(k * 12.0 + float(rng.uniform(-1, 1)), z)
        if not -20 < x < img.shape[1] + 20:
            continue
        pen = _Pen(img, x, g.row(z), s)
        if k % 2:
            pen.line((0, 0), (0, 6.5), (60, 60, 65), 0.15)
            head = pen.at(0.5, 6.5)
            cv2.ellipse(img, head, (pen.size(0.5), pen.size(0.15)), 0, 0, 360, (70, 70, 75), -1)
            cv2.circle(lights, head, max(2, pen.size(0.9)), (150, 220, 255), -1)
        else:
            pen.line((0, 0), (0, 2.5), (40, 60, 80), 0.25)
            for _ in range(6):
                leaf_x, leaf_y = float(rng.uniform(-1.3, 1.3)), float(rng.uniform(2.8, 4.5))
                pen.circle(
                    leaf_x, leaf_y, float(rng.uniform(0.8, 1.3)), _jitter(rng, (50, 110, 60), 15)
                )


@functools.lru_cache(maxsize=4)
def _noise_bank(width: int, height: int) -> Image:
    """Gaussian noise (mean 128, sd 16) a little larger than the frame; frames use random
    windows of it, which is much cheaper than drawing fresh noise per frame."""
    rng = np.random.default_rng(12345)
    noise = rng.normal(128, 16, (height + 32, width + 32, 3))
    bank = np.clip(noise, 0, 255).astype(np.uint8)
    bank.setflags(write=False)
    return bank


def shake_offset(seed: int, t_s: float, amplitude_px: float) -> tuple[int, int]:
    """The camera's small, smooth wobble at time ``t_s``: an integer pixel translation."""
    if amplitude_px <= 0:
        return (0, 0)
    phases = np.random.default_rng(seed ^ 0x5EED).uniform(0, 2 * math.pi, 4)
    dx = 0.7 * math.sin(2.1 * t_s + phases[0]) + 0.3 * math.sin(7.3 * t_s + phases[1])
    dy = 0.7 * math.sin(1.7 * t_s + phases[2]) + 0.3 * math.sin(8.9 * t_s + phases[3])
    limit = SHAKE_MARGIN_PX
    return (
        max(-limit, min(limit, round(dx * amplitude_px))),
        max(-limit, min(limit, round(dy * amplitude_px))),
    )


# --- one frame -----------------------------------------------------------------------------


def render_street(
    actors: Sequence[Actor],
    *,
    size: tuple[int, int] = (1280, 720),
    layout: StreetLayout = DEFAULT_LAYOUT,
    lighting: Lighting = DAY,
    noise_sigma: float = 3.0,
    shake: tuple[int, int] = (0, 0),
    backdrop_seed: int = 0,
    noise_seed: int = 0,
) -> StreetFrame:
    """Draw ``actors`` on the street and report what of each is visible.

    ``size`` is (width, height); ``shake`` moves the camera by whole pixels (see
    :func:`shake_offset`); ``noise_seed`` picks the sensor noise, so a frame is a pure
    function of the arguments.
    """
    width, height = size
    backdrop = _backdrop(layout, width, height, backdrop_seed)
    m = SHAKE_MARGIN_PX
    dx, dy = (max(-m, min(m, v)) for v in shake)
    img = backdrop.image[m + dy : m + dy + height, m + dx : m + dx + width].copy()
    order = sorted(range(len(actors)), key=lambda i: -actors[i].z_m)
    # Smoke must change the image by ~18 grey levels, after the light dims it, to be seen.
    min_contrast = 18.0 / max(0.1, lighting.gain * max(lighting.tint))
    drawn: list[tuple[Actor, Box | None, list[Box]]] = []
    glows: list[tuple[float, float, float, BGR]] = []
    flashes: list[tuple[float, float, float, BGR]] = []
    for i in order:
        actor = actors[i]
        bx, by = actor.x * width - dx, layout.y_at(actor.z_m) * height - dy
        s = layout.px_per_m(actor.z_m, height)
        look = actor.look
        if isinstance(look, FlashLook):
            flashes.append(
                (
                    bx,
                    by - look.radius_m * s,
                    look.radius_m * s * 2,
                    _scale_colour(look.colour, look.strength),
                )
            )
            continue
        if bx < -30 * s or bx > width + 30 * s:
            continue
        box: Box | None
        if isinstance(look, SmokeLook):
            box, parts = _draw_smoke(img, look, bx, by, s, min_contrast), list[Box]()
        else:
            if isinstance(look, VehicleLook):
                box, parts, lights = _draw_vehicle(
                    img, look, bx, by, s, 1 if actor.facing >= 0 else -1
                )
                glows += lights
            elif isinstance(look, PersonLook):
                box, parts, _ = _draw_person(
                    img, look, bx, by, s, 1 if actor.facing >= 0 else -1, actor.walk_phase
                )
            else:
                box, parts, _ = _draw_stall(img, look, bx, by, s)
            if actor.blur_px >= 2:
                _motion_blur(img, box, int(actor.blur_px))
        drawn.append((actor, box, parts))
    if lighting != DAY:
        img = cv2.transform(img, _lighting_matrix(lighting)).astype(np.uint8, copy=False)
    if lighting.lights > 0.05:
        rows = max(0, min(height, backdrop.lights_rows - m - dy))
        lamps = backdrop.lights[m + dy : m + dy + rows, m + dx : m + dx + width]
        _light_windows(img, lamps, drawn, lighting.lights)
        for gx, gy, gr, colour in glows:
            _add_glow(img, gx, gy, gr, colour, lighting.lights)
    for gx, gy, gr, colour in flashes:
        _add_glow(img, gx, gy, gr, colour, 1.0)
    if noise_sigma > 0:
        bank = _noise_bank(width, height)
        ox, oy = np.random.default_rng(noise_seed).integers(0, 32, 2)
        beta = noise_sigma / 16.0
        window = bank[oy : oy + height, ox : ox + width]
        img = cv2.addWeighted(img, 1.0, window, beta, -128 * beta).astype(np.uint8, copy=False)
    return StreetFrame(img, _truth(drawn, width, height))


def _light_windows(
    img: Image, lamps: Image, drawn: list[tuple[Actor, Box | None, list[Box]]], strength: float
) -> None:
    """Add the street's own lights (windows, shops, lamps) where no actor stands in front."""
    rows = lamps.shape[0]
    if rows == 0:
        return
    glow = lamps[:rows].copy()
    for _, _, parts in drawn:
        for x0, y0, x1, y1 in parts:
            if y0 < rows:
                glow[
                    max(0, int(y0)) : max(0, int(y1) + 1), max(0, int(x0)) : max(0, int(x1) + 1)
                ] = 0
    img[:rows] = cv2.scaleAdd(glow, strength, img[:rows])


def _scale_colour(colour: BGR, k: float) -> BGR:
    return (int(colour[0] * k), int(colour[1] * k), int(colour[2] * k))


def _motion_blur(img: Image, box: Box, length: int) -> None:
    hgt, wid = img.shape[:2]
    x0, x1 = max(0, int(box[0]) - length), min(wid, int(box[2]) + length)
    y0, y1 = max(0, int(box[1]) - 1), min(hgt, int(box[3]) + 2)
    if x1 - x0 > length and y1 > y0:
        img[y0:y1, x0:x1] = cv2.blur(img[y0:y1, x0:x1], (length, 1))


def _truth(
    drawn: list[tuple[Actor, Box | None, list[Box]]], width: int, height: int
) -> tuple[TruthBox, ...]:
    """Clip, measure what nearer opaque actors hide, and drop what is barely visible."""
    out = []
    for index, (actor, box, _) in enumerate(drawn):
        name = actor.look.class_name
        if box is None or name is None:
            continue
        x0, y0, x1, y1 = box
        area = max(1e-6, (x1 - x0) * (y1 - y0))
        cx0, cy0, cx1, cy1 = (
            max(0.0, x0),
            max(0.0, y0),
            min(float(width), x1),
            min(float(height), y1),
        )
        if cx1 <= cx0 or cy1 <= cy0:
            continue
        in_frame = (cx1 - cx0) * (cy1 - cy0) / area
        if in_frame < MIN_IN_FRAME:
            continue
        hiders = np.array(
            [part for _, _, parts in drawn[index + 1 :] for part in parts], np.float32
        ).reshape(-1, 4)
        hidden = 0.0
        if len(hiders):
            gx, gy = np.meshgrid(np.linspace(cx0, cx1, 24), np.linspace(cy0, cy1, 24))
            px, py = gx.reshape(-1, 1), gy.reshape(-1, 1)
            inside = (
                (px >= hiders[:, 0])
                & (px <= hiders[:, 2])
                & (py >= hiders[:, 1])
                & (py <= hiders[:, 3])
            )
            hidden = float(inside.any(axis=1).mean())
        if hidden > MAX_OCCLUDED:
            continue
        visibility = round(min(1.0, in_frame) * (1.0 - hidden), 3)
        out.append(TruthBox(actor.track_id, name, (cx0, cy0, cx1, cy1), visibility))
    return tuple(sorted(out, key=lambda t: t.track_id))


def draw_truth(image: Image, truth: Sequence[TruthBox]) -> Image:
    """A copy of ``image`` with the truth boxes and their class and visibility drawn on it."""
    out = image.copy()
    colours = {name: _BRIGHT[i] for i, name in enumerate(STREET_CLASSES)}
    for t in truth:
        x0, y0, x1, y1 = (round(v) for v in t.xyxy)
        colour = colours.get(t.class_name, (255, 255, 255))
        cv2.rectangle(out, (x0, y0), (x1, y1), colour, 2)
        cv2.putText(
            out,
            f"{t.class_name}#{t.track_id} {t.visibility:.2f}",
            (x0, max(12, y0 - 4)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45,
            colour,
            1,
            cv2.LINE_AA,
        )
    return out
