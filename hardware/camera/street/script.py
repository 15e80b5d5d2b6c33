"""What a street scenario file says: who is where when, and what should alert (the schema).

A scenario names its actors (cars, trucks, buses, pedestrians, vendor stalls, smoke, bright
flashes) with keyframed positions, the lighting over time, noise and camera shake, and the
events a correct pipeline must report (``expect:``). :mod:`.player` renders any instant
of it; :mod:`.scenario` loads the files and writes whole videos.

Positions are written in ground terms: ``x`` is the normalised image column (0 left edge,
1 right edge; beyond for off-frame) of the actor's bottom-centre, ``lane`` one of
``road_far``, ``road_near``, ``curb`` (the parking lane), ``sidewalk``, and ``offset`` how
far across that lane (0 its far edge, 1 its near edge; default 0.5). A key may omit
``lane``/``offset`` to keep the previous key's. Between keys an actor moves in a straight
line; it exists from its first key to its last. For example::

    name: parked-car
    duration_s: 75
    seed: 9001
    actors:
      - id: red-car
        kind: car
        colour: red
        keys:
          - {t: 2, x: -0.2, lane: road_near}
          - {t: 8, x: 0.35, lane: curb}     # pulls into the curb lane and stops
          - {t: 70, x: 0.35}
          - {t: 75, x: 1.3, lane: road_near}
    expect:
      - {kind: illegal_parking, zone: no-parking-curb, start_s: 8, end_s: 70,
         position: [0.35, 0.642], actor: red-car}
"""

from __future__ import annotations

import itertools
import math
from datetime import datetime
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from citywatch.hardware.camera.street.actors import CarBody
from citywatch.hardware.camera.street.layout import DEFAULT_LAYOUT, Lane, StreetLayout
from citywatch.hardware.camera.street.lighting import SHAKE_MARGIN_PX

_ID = r"^[A-Za-z0-9_.\-]+$"
ColourName = Literal[
    "white", "silver", "grey", "black", "red", "blue", "green", "yellow", "orange", "beige"
]


class _Model(BaseModel):
    """A typo in a scenario is an error, not a silently ignored key."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Key(_Model):
    """Where an actor is at one time (see the module docstring for the coordinates)."""

    t: float = Field(ge=0, description="seconds of video")
    x: float = Field(ge=-2, le=3, description="image column of the bottom-centre, 0–1 in frame")
    lane: Lane | None = Field(default=None, description="default: the previous key's")
    offset: float | None = Field(default=None, ge=0, le=1, description="0 far edge, 1 near edge")


class _ActorBase(_Model):
    id: str = Field(pattern=_ID, max_length=64)
    keys: tuple[Key, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _keys_in_time_order_with_a_lane(self) -> _ActorBase:
        if self.keys[0].lane is None:
            raise ValueError(f"actor {self.id!r}: the first key needs a lane")
        times = [k.t for k in self.keys]
        if any(b <= a for a, b in itertools.pairwise(times)):
            raise ValueError(f"actor {self.id!r}: key times must increase, got {times}")
        return self


class VehicleActor(_ActorBase):
    kind: Literal["car", "truck", "bus"]
    body: CarBody | None = Field(default=None, description="cars only; default random")
    colour: ColourName | None = Field(default=None, description="default random")
    facing: Literal["left", "right"] | None = Field(
        default=None, description="default: the direction it drives"
    )


class PersonActor(_ActorBase):
    kind: Literal["person"]
    height_m: float | None = Field(default=None, ge=1.0, le=2.1)


class StallActor(_ActorBase):
    kind: Literal["stall"]


class SmokeActor(_ActorBase):
    """A plume from its first key to its last: it grows to ``height_m`` over ``grow_s``,
    fades in over the first second and out over the last ``fade_s``."""

    kind: Literal["smoke"]
    height_m: float = Field(default=6.0, gt=0, le=20, description="full-grown plume height")
    grow_s: float = Field(default=20.0, gt=0)
    fade_s: float = Field(default=5.0, ge=0)
    opacity: float = Field(default=0.8, gt=0, le=1)
    shade: Literal["light", "dark"] | Annotated[int, Field(ge=0, le=255)] = Field(
        default="light", description="or a grey level 0–255"
    )
    wind: float = Field(
        default=0.3, ge=-1.5, le=1.5, description="sideways drift per metre of rise"
    )
    gusts: tuple[tuple[float, float], ...] = Field(
        default=(),
        description="[start, end] seconds of video when a gust blows the plume away: it thins"
        " out over the half second before start and is back half a second after end",
    )

    @model_validator(mode="after")
    def _gusts_inside_the_fire(self) -> SmokeActor:
        for start, end in self.gusts:
            if not self.keys[0].t <= start < end <= self.keys[-1].t:
                raise ValueError(
                    f"actor {self.id!r}: gust [{start}, {end}] must be a span inside the plume's"
                    f" life {self.keys[0].t}–{self.keys[-1].t} s"
                )
        return self


class FlashActor(_ActorBase):
    """A bright glow (welding, a reflection): looks alarming, is no object class."""

    kind: Literal["flash"]
    radius_m: float = Field(default=1.5, gt=0, le=10)
    strength: float = Field(default=1.0, gt=0, le=1)


ScenarioActor = Annotated[
    VehicleActor | PersonActor | StallActor | SmokeActor | FlashActor, Field(discriminator="kind")
]


class LightingKey(_Model):
    t: float = Field(ge=0)
    preset: Literal["day", "dusk", "night"]


class ExpectedEvent(_Model):
    """One true event a correct pipeline reports (a labelled positive of the suite)."""

    kind: Literal["illegal_parking", "street_vending", "smoke"]
    zone: str = Field(pattern=_ID)
    start_s: float = Field(
        ge=0, description="when the condition began: the stop, the set-up, the first smoke"
    )
    end_s: float = Field(gt=0)
    position: tuple[float, float] = Field(
        description="normalised image [x, y] of the object's bottom-centre (smoke: plume base)"
    )
    actor: str | None = Field(
        default=None, description="the actor causing it, to check the event against the script"
    )

    def record(self) -> dict[str, Any]:
        """The JSONL record of the suite's scorer (without the script-only ``actor``)."""
        return self.model_dump(exclude={"actor"}, mode="json")


_ACTOR_KINDS = {
    "illegal_parking": ("car", "truck", "bus"),
    "street_vending": ("stall",),
    "smoke": ("smoke",),
}
POSITION_TOLERANCE = 0.02
"""How far (normalised) an expected event's position may lie from its actor's position."""


class Scenario(_Model):
    name: str = Field(pattern=_ID)
    description: str = ""
    size: tuple[Annotated[int, Field(ge=64, le=4096)], Annotated[int, Field(ge=64, le=4096)]] = (
        1280,
        720,
    )
    fps: float = Field(default=25.0, gt=0, le=60)
    duration_s: float = Field(gt=0, le=3600)
    seed: int = Field(ge=0)
    start_time: datetime | None = Field(
        default=None, description="wall-clock time of frame 1 (ISO 8601 with offset)"
    )
    lighting: Literal["day", "dusk", "night"] | tuple[LightingKey, ...] = "day"
    noise: float = Field(default=3.0, ge=0, le=30, description="sensor noise sd in grey levels")
    shake_px: float = Field(default=1.5, ge=0, le=SHAKE_MARGIN_PX, description="camera wobble")
    actors: tuple[ScenarioActor, ...] = ()
    expect: tuple[ExpectedEvent, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        if self.start_time is not None and self.start_time.utcoffset() is None:
            raise ValueError("start_time needs a UTC offset, e.g. 2026-05-12T08:00:00+08:00")
        if isinstance(self.lighting, tuple) and not self.lighting:
            raise ValueError("lighting: give a preset or at least one {t, preset} key")
        ids = [a.id for a in self.actors]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"actor ids must be unique; repeated: {twice}")
        for index, event in enumerate(self.expect):
            problem = _expect_problem(self, event)
            if problem:
                raise ValueError(f"expect[{index}]: {problem}")
        return self


def _expect_problem(scenario: Scenario, event: ExpectedEvent) -> str | None:
    """Why an expected event disagrees with the script, or None when it agrees."""
    if event.end_s <= event.start_s:
        return f"end_s ({event.end_s}) must come after start_s ({event.start_s})"
    if event.start_s > scenario.duration_s or event.end_s > scenario.duration_s + 1e-6:
        return f"the event must lie within the video's {scenario.duration_s} s"
    if not all(0 <= v <= 1 for v in event.position):
        return f"position {list(event.position)} must be 0–1 image coordinates"
    if event.actor is None:
        return None
    actor = next((a for a in scenario.actors if a.id == event.actor), None)
    if actor is None:
        return f"actor {event.actor!r} is not in actors"
    if actor.kind not in _ACTOR_KINDS[event.kind]:
        return (
            f"a {event.kind} event needs a {'/'.join(_ACTOR_KINDS[event.kind])}, not a {actor.kind}"
        )
    track = ActorTrack(actor, DEFAULT_LAYOUT)
    for t in (event.start_s, event.end_s):
        if not track.present(t):
            return f"actor {actor.id!r} is not in the scene at {t} s"
    start, end = track.position(event.start_s), track.position(event.end_s)
    if event.kind != "smoke" and math.dist(start, end) > 1e-6:
        return f"actor {actor.id!r} moves between start_s and end_s ({start} → {end})"
    if math.dist(start, event.position) > POSITION_TOLERANCE:
        where = [round(v, 3) for v in start]
        return f"position {list(event.position)} is not where {actor.id!r} is at {event.start_s} s: {where}"
    return None


# --- an actor's motion ----------------------------------------------------------------------


class ActorTrack:
    """One actor's keyframes, resolved to depths, with its state at any time."""

    def __init__(
        self,
        actor: VehicleActor | PersonActor | StallActor | SmokeActor | FlashActor,
        layout: StreetLayout,
    ) -> None:
        self.actor = actor
        self.layout = layout
        lane: Lane = actor.keys[0].lane or "sidewalk"
        offset = 0.5
        times, xs, zs = [], [], []
        for key in actor.keys:
            lane = key.lane or lane
            offset = key.offset if key.offset is not None else (offset if key.lane is None else 0.5)
            times.append(key.t)
            xs.append(key.x)
            zs.append(layout.lane_depth(lane, offset))
        self.t, self.x, self.z = np.array(times), np.array(xs), np.array(zs)

    def present(self, t: float) -> bool:
        return bool(self.t[0] - 1e-9 <= t <= self.t[-1] + 1e-9)

    def state(self, t: float) -> tuple[float, float, float]:
        """(x, depth, x velocity per second) at ``t``."""
        x = float(np.interp(t, self.t, self.x))
        z = float(np.interp(t, self.t, self.z))
        i = int(np.searchsorted(self.t, t, side="right")) - 1
        if 0 <= i < len(self.t) - 1:
            return x, z, float((self.x[i + 1] - self.x[i]) / (self.t[i + 1] - self.t[i]))
        return x, z, 0.0

    def position(self, t: float) -> tuple[float, float]:
        """Normalised image (x, y) of the bottom-centre at ``t``."""
        x, z, _ = self.state(t)
        return (x, self.layout.y_at(z))

    def facing(self, t: float) -> int:
        """The way it drives now, else the way it last drove, else the way it will drive."""
        steps = np.sign(np.diff(self.x))
        if not steps.any():
            return 1
        i = min(max(int(np.searchsorted(self.t, t, side="right")) - 1, 0), len(steps) - 1)
        for j in [*range(i, -1, -1), *range(i + 1, len(steps))]:
            if steps[j]:
                return int(steps[j])
        return 1
