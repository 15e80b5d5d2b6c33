"""The things on the street, as looks: what a vehicle, a person, a vendor's stall, a smoke
plume or a bright flash looks like, and generators of plausible random ones.

A look says nothing of where the thing stands; :class:`~citywatch.hardware.camera.street.scene.Actor`
places it, and :mod:`citywatch.hardware.camera.street.drawing` draws it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from citywatch.hardware.camera.street.palette import BGR, BRIGHT, jitter, pick

__all__ = [
    "CAR_BODIES",
    "CarBody",
    "FlashLook",
    "Look",
    "PersonLook",
    "SmokeLook",
    "StallLook",
    "VehicleBody",
    "VehicleKind",
    "VehicleLook",
    "random_person",
    "random_smoke",
    "random_stall",
    "random_vehicle",
]

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

_CAR_COLOURS: tuple[BGR, ...] = (
    (235, 235, 232), (238, 238, 238), (190, 190, 186), (160, 162, 165), (30, 30, 32),
    (70, 70, 75), (40, 40, 185), (150, 80, 30), (95, 45, 20), (160, 190, 212),
    (60, 105, 45), (30, 195, 225), (45, 70, 115), (120, 40, 120),
)  # fmt: skip
_CAR_WEIGHTS = np.array([4, 3, 3, 2, 3, 2, 1.5, 1.5, 1, 1, 0.5, 0.4, 0.6, 0.3])
_SKIN: tuple[BGR, ...] = ((150, 180, 225), (120, 160, 210), (90, 130, 180), (60, 90, 140))

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
        colour = jitter(rng, colour, 8)
        return VehicleLook("car", body, length, height, colour, colour)
    if kind == "truck":
        length, height = float(rng.uniform(6.3, 8.6)), float(rng.uniform(3.0, 3.5))
        cab, cargo = pick(rng, _TRUCK_CABS), pick(rng, _TRUCK_BOXES)
        return VehicleLook(
            "truck", "box", length, height, jitter(rng, cab, 8), jitter(rng, cargo, 8)
        )
    length, height = float(rng.uniform(10.0, 12.0)), float(rng.uniform(3.0, 3.3))
    paint, stripe = pick(rng, _BUSES), pick(rng, _BUS_STRIPES)
    return VehicleLook("bus", "bus", length, height, jitter(rng, paint, 8), jitter(rng, stripe, 8))


def random_person(rng: np.random.Generator) -> PersonLook:
    dark = ((40, 40, 45), (90, 60, 40), (70, 70, 75), (120, 100, 80), (30, 30, 70))
    return PersonLook(
        height_m=float(rng.uniform(1.55, 1.88)),
        shirt=jitter(rng, pick(rng, (*BRIGHT, (200, 200, 200), (50, 50, 50)))),
        trousers=jitter(rng, pick(rng, (*dark, (170, 160, 150)))),
        skin=jitter(rng, pick(rng, _SKIN), 8),
        hair=jitter(rng, pick(rng, ((20, 20, 25), (30, 40, 60), (120, 120, 125))), 6),
        bag=bool(rng.random() < 0.3),
    )


def random_stall(rng: np.random.Generator) -> StallLook:
    first = pick(rng, BRIGHT)
    second = pick(rng, ((240, 240, 240), *BRIGHT))
    goods = tuple(pick(rng, BRIGHT) for _ in range(int(rng.integers(0, 5))))
    cart = pick(
        rng, ((60, 90, 130), (170, 170, 170), (40, 110, 200), (70, 140, 60), (200, 200, 200))
    )
    return StallLook(
        umbrella=(first, second),
        cart=jitter(rng, cart),
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
