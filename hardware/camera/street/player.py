"""Playing a street scenario: any instant rendered on demand, a pure function of its time
(the live ``synthetic:NAME`` camera asks for frames as it needs them)."""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass

import numpy as np

from citywatch.hardware.camera.street.actors import (
    FlashLook,
    PersonLook,
    SmokeLook,
    StallLook,
    VehicleLook,
    random_person,
    random_smoke,
    random_stall,
    random_vehicle,
)
from citywatch.hardware.camera.street.layout import DEFAULT_LAYOUT, StreetLayout
from citywatch.hardware.camera.street.lighting import LIGHTING_PRESETS, Lighting, shake_offset
from citywatch.hardware.camera.street.palette import Image
from citywatch.hardware.camera.street.scene import Actor, TruthBox, render_street
from citywatch.hardware.camera.street.script import (
    ActorTrack,
    FlashActor,
    PersonActor,
    Scenario,
    SmokeActor,
    StallActor,
    VehicleActor,
)

_COLOURS: dict[str, tuple[int, int, int]] = {  # BGR of each of the script's ColourName
    "white": (238, 238, 236),
    "silver": (190, 190, 186),
    "grey": (110, 110, 115),
    "black": (30, 30, 32),
    "red": (40, 40, 190),
    "blue": (150, 80, 30),
    "green": (60, 110, 45),
    "yellow": (30, 200, 230),
    "orange": (30, 130, 235),
    "beige": (160, 190, 212),
}
_SHADES = {"light": 220, "dark": 65}
GUST_RAMP_S = 0.5
"""How long a gust takes to blow a plume away, and the plume to come back after it."""
"""Grey level of light (steam, white smoke) and dark (burning rubbish) plumes."""


@dataclass(frozen=True)
class _Cast:
    track_id: int
    track: ActorTrack
    look: VehicleLook | PersonLook | StallLook | SmokeLook | FlashLook


class ScenarioPlayer:
    """Renders any instant of a scenario on demand: a frame is a pure function of its time."""

    def __init__(self, scenario: Scenario, layout: StreetLayout = DEFAULT_LAYOUT) -> None:
        self.scenario = scenario
        self.layout = layout
        self._cast = [
            _Cast(
                index + 1,
                ActorTrack(actor, layout),
                _look(actor, np.random.default_rng([scenario.seed, index])),
            )
            for index, actor in enumerate(scenario.actors)
        ]
        self.track_names: dict[int, str] = {c.track_id: c.track.actor.id for c in self._cast}
        """Ground-truth track id → the actor's id in the scenario file."""

    @property
    def size(self) -> tuple[int, int]:
        return self.scenario.size

    @property
    def frame_count(self) -> int:
        return max(1, round(self.scenario.duration_s * self.scenario.fps))

    def lighting_at(self, t_s: float) -> Lighting:
        spec = self.scenario.lighting
        if isinstance(spec, str):
            return LIGHTING_PRESETS[spec]
        keys = sorted(spec, key=lambda k: k.t)
        if t_s <= keys[0].t:
            return LIGHTING_PRESETS[keys[0].preset]
        for a, b in itertools.pairwise(keys):
            if t_s < b.t:
                weight = (t_s - a.t) / (b.t - a.t)
                return LIGHTING_PRESETS[a.preset].mix(LIGHTING_PRESETS[b.preset], weight)
        return LIGHTING_PRESETS[keys[-1].preset]

    def actors_at(self, t_s: float) -> list[Actor]:
        """Every actor in the scene at ``t_s``, in its state then."""
        width, height = self.scenario.size
        exposure_s = 0.5 / self.scenario.fps
        out = []
        for cast in self._cast:
            track = cast.track
            if not track.present(t_s):
                continue
            x, z, vx = track.state(t_s)
            look, blur, phase = cast.look, 0.0, None
            actor = track.actor
            facing = track.facing(t_s)
            if isinstance(actor, VehicleActor):
                blur = abs(vx) * width * exposure_s
                if actor.facing:
                    facing = 1 if actor.facing == "right" else -1
            elif isinstance(actor, PersonActor) and abs(vx) > 1e-6:
                metres = x * width / self.layout.px_per_m(z, height)
                phase = metres / 0.75 * math.pi
            elif isinstance(actor, SmokeActor) and isinstance(look, SmokeLook):
                look = _plume_at(actor, look, t_s - track.t[0], track.t[-1] - t_s)
                look = dataclasses.replace(look, opacity=look.opacity * gust_clearance(actor, t_s))
            elif isinstance(actor, FlashActor) and isinstance(look, FlashLook):
                life = track.t[-1] - track.t[0]
                fall = max(0.0, min(1.0, (track.t[-1] - t_s) / max(0.05, 0.3 * life)))
                rise = max(0.0, min(1.0, (t_s - track.t[0]) / 0.1))
                look = FlashLook(actor.radius_m, actor.strength * min(rise, fall))
            out.append(
                Actor(cast.track_id, look, x, z, facing=facing, blur_px=blur, walk_phase=phase)
            )
        return out

    def frame_at(self, t_s: float) -> tuple[Image, list[TruthBox]]:
        """The frame shown at ``t_s`` seconds of video and the truth of what it shows."""
        index = round(t_s * self.scenario.fps)
        frame = render_street(
            self.actors_at(t_s),
            size=self.scenario.size,
            layout=self.layout,
            lighting=self.lighting_at(t_s),
            noise_sigma=self.scenario.noise,
            shake=shake_offset(self.scenario.seed, t_s, self.scenario.shake_px),
            backdrop_seed=self.scenario.seed,
            noise_seed=self.scenario.seed * 1_000_003 + index,
        )
        return frame.image, list(frame.truth)

    def frame(self, index: int) -> tuple[Image, list[TruthBox]]:
        """Frame ``index`` (from 0) at the scenario's frame rate."""
        return self.frame_at(index / self.scenario.fps)

    def position(self, actor_id: str, t_s: float) -> tuple[float, float] | None:
        """Normalised image bottom-centre of an actor at ``t_s``, None when absent."""
        for cast in self._cast:
            if cast.track.actor.id == actor_id:
                return cast.track.position(t_s) if cast.track.present(t_s) else None
        raise KeyError(f"no actor {actor_id!r} in scenario {self.scenario.name!r}")


def _look(
    actor: VehicleActor | PersonActor | StallActor | SmokeActor | FlashActor,
    rng: np.random.Generator,
) -> VehicleLook | PersonLook | StallLook | SmokeLook | FlashLook:
    """The actor's appearance: random from its own seed, with what the script fixes."""
    if isinstance(actor, VehicleActor):
        look = random_vehicle(actor.kind, rng, actor.body if actor.kind == "car" else None)
        if actor.colour:
            colour = _COLOURS[actor.colour]
            accent = look.accent if actor.kind != "car" else colour
            look = dataclasses.replace(look, colour=colour, accent=accent)
        return look
    if isinstance(actor, PersonActor):
        person = random_person(rng)
        return dataclasses.replace(person, height_m=actor.height_m) if actor.height_m else person
    if isinstance(actor, StallActor):
        return random_stall(rng)
    if isinstance(actor, SmokeActor):
        base = random_smoke(rng)
        shade = _SHADES[actor.shade] if isinstance(actor.shade, str) else actor.shade
        return SmokeLook(
            shade=shade,
            height_m=actor.height_m,
            opacity=actor.opacity,
            lean=actor.wind,
            seed=base.seed,
        )
    return FlashLook(actor.radius_m, actor.strength)


def _plume_at(actor: SmokeActor, look: SmokeLook, age_s: float, left_s: float) -> SmokeLook:
    """The plume ``age_s`` after it started, ``left_s`` before it ends."""
    grown = min(1.0, 0.15 + 0.85 * age_s / actor.grow_s)
    fade_in = min(1.0, age_s / 1.0 + 0.2)
    fade_out = 1.0 if actor.fade_s <= 0 else max(0.0, min(1.0, left_s / actor.fade_s))
    return SmokeLook(
        shade=look.shade,
        height_m=actor.height_m * grown,
        opacity=actor.opacity * fade_in * fade_out,
        lean=look.lean,
        time_s=age_s,
        seed=look.seed,
    )


def gust_clearance(actor: SmokeActor, t_s: float) -> float:
    """How much of the plume the wind leaves at ``t_s``: 0 inside a gust, 1 more than
    GUST_RAMP_S away from every gust, a straight ramp in between (a fire seen in most
    frames, with gaps of a few seconds: what a smoke rule must not end and restart on)."""
    left = 1.0
    for start, end in actor.gusts:
        outside = max(start - t_s, t_s - end, 0.0)
        left = min(left, outside / GUST_RAMP_S)
    return min(1.0, left)
