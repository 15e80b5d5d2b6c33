"""Scripted street scenes: a small YAML file says who is where when, and what should alert.

A scenario names its actors (cars, trucks, buses, pedestrians, vendor stalls, smoke, bright
flashes) with keyframed positions, the lighting over time, noise and camera shake, and the
events a correct pipeline must report (``expect:``). :class:`ScenarioPlayer` renders any
instant on demand (the live ``synthetic:NAME`` camera asks for frames as it needs them);
:func:`render_video` writes a whole scenario as an mp4 with MOTChallenge-style ground truth
and the expected events as JSON lines, for the scored scenario suite.

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

import csv
import dataclasses
import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from citywatch.hardware.camera.street.actors import (
    CarBody,
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
from citywatch.hardware.camera.street.layout import DEFAULT_LAYOUT, Lane, StreetLayout
from citywatch.hardware.camera.street.lighting import (
    LIGHTING_PRESETS,
    SHAKE_MARGIN_PX,
    Lighting,
    shake_offset,
)
from citywatch.hardware.camera.street.palette import Image
from citywatch.hardware.camera.street.scene import Actor, TruthBox, render_street

__all__ = [
    "SCENARIO_DIR",
    "ExpectedEvent",
    "RenderedVideo",
    "Scenario",
    "ScenarioError",
    "ScenarioPlayer",
    "load_scenario",
    "render_video",
    "scenario_names",
]

SCENARIO_DIR = Path(__file__).resolve().parents[3] / "configs" / "scenarios"
"""Where a bare scenario name is looked up (``configs/scenarios/NAME.yaml``)."""

_ID = r"^[A-Za-z0-9_.\-]+$"
_COLOURS: dict[str, tuple[int, int, int]] = {
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
"""Grey level of light (steam, white smoke) and dark (burning rubbish) plumes."""
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
    track = _Track(actor, DEFAULT_LAYOUT)
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


# --- playing a scenario --------------------------------------------------------------------


class _Track:
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


@dataclass(frozen=True)
class _Cast:
    track_id: int
    track: _Track
    look: VehicleLook | PersonLook | StallLook | SmokeLook | FlashLook


class ScenarioPlayer:
    """Renders any instant of a scenario on demand: a frame is a pure function of its time."""

    def __init__(self, scenario: Scenario, layout: StreetLayout = DEFAULT_LAYOUT) -> None:
        self.scenario = scenario
        self.layout = layout
        self._cast = [
            _Cast(
                index + 1,
                _Track(actor, layout),
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


# --- files ---------------------------------------------------------------------------------


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the file, line and field."""


def scenario_names() -> list[str]:
    """The scenarios shipped in ``configs/scenarios``."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))


def load_scenario(path_or_name: str | Path) -> Scenario:
    """Load a scenario from a path, or by bare name from ``configs/scenarios/NAME.yaml``."""
    text = str(path_or_name)
    is_path = isinstance(path_or_name, Path) or "/" in text or text.endswith((".yaml", ".yml"))
    path = Path(path_or_name) if is_path else SCENARIO_DIR / f"{text}.yaml"
    if not path.is_file():
        known = ", ".join(scenario_names()) or "none"
        raise ScenarioError(f"{path}: no such scenario file (known scenarios: {known})")
    try:
        tree = YAML(typ="rt").load(path.read_text(encoding="utf-8"))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f":{mark.line + 1}" if mark else ""
        raise ScenarioError(f"{path}{line}: invalid YAML: {exc.problem}") from None
    if not isinstance(tree, CommentedMap):
        raise ScenarioError(f"{path}: a scenario file is a mapping (name, duration_s, actors, ...)")
    lines: dict[tuple[str | int, ...], int] = {}
    data = _plain(tree, (), lines)
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        problems = [_explain(path, err, data, lines) for err in exc.errors(include_url=False)]
        raise ScenarioError("\n".join(problems)) from None


def _plain(node: Any, loc: tuple[str | int, ...], lines: dict[tuple[str | int, ...], int]) -> Any:
    """Plain Python from ruamel's tree, noting the line of every key and item."""
    if isinstance(node, CommentedMap):
        out = {}
        for key, value in node.items():
            lines[(*loc, key)] = node.lc.key(key)[0] + 1
            out[key] = _plain(value, (*loc, key), lines)
        return out
    if isinstance(node, CommentedSeq):
        items = []
        for index, value in enumerate(node):
            lines[(*loc, index)] = node.lc.item(index)[0] + 1
            items.append(_plain(value, (*loc, index), lines))
        return items
    return node


def _explain(path: Path, err: Any, data: Any, lines: dict[tuple[str | int, ...], int]) -> str:
    """One validation error as ``file:line: field: message``.

    Pydantic puts union tags (``car``, ``smoke``) into the error path that are not keys in
    the file; only the parts that exist in the data are kept.
    """
    loc: tuple[str | int, ...] = ()
    node = data
    for part in err["loc"]:
        if (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        ):
            node = node[part]
            loc = (*loc, part)
        elif isinstance(node, dict) and part == err["loc"][-1]:
            loc = (*loc, part)
    line, probe = None, loc
    while probe and line is None:
        line = lines.get(probe)
        probe = probe[:-1]
    field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    message = err["msg"]
    if err["type"] == "extra_forbidden":
        message = f"unknown field {loc[-1]!r} (check the spelling)"
    elif err["type"] == "missing":
        message = f"required field {err['loc'][-1]!r} is missing"
    elif "input" in err and not isinstance(err["input"], dict | list):
        message += f" (got {err['input']!r})"
    return f"{path}{f':{line}' if line else ''}: {field or '(top level)'}: {message}"


@dataclass(frozen=True)
class RenderedVideo:
    frames: int
    video: Path
    truth: Path
    expect: Path


def render_video(
    scenario: Scenario,
    video_path: Path,
    truth_path: Path,
    expect_path: Path | None = None,
    *,
    progress: bool = True,
) -> RenderedVideo:
    """Write the whole scenario: an mp4, its ground truth and its expected events.

    The truth CSV is MOTChallenge-style without a header, one row per visible actor per
    frame: ``frame,id,left,top,width,height,conf,class,visibility`` (frame from 1, id the
    actor's track id, conf 1, class a class name). The expected events go to
    ``expect_path`` (default: the truth path with suffix ``.expect.jsonl``), one per line.
    """
    video_path, truth_path = Path(video_path), Path(truth_path)
    expect_path = Path(expect_path) if expect_path else truth_path.with_suffix(".expect.jsonl")
    for path in (video_path, truth_path, expect_path):
        path.parent.mkdir(parents=True, exist_ok=True)
    player = ScenarioPlayer(scenario)
    width, height = scenario.size
    writer = cv2.VideoWriter(
        str(video_path), cv2.VideoWriter.fourcc(*"mp4v"), scenario.fps, (width, height)
    )
    if not writer.isOpened():
        raise OSError(f"cannot open {video_path} for writing an mp4v video")
    bar = Progress(
        TextColumn(f"rendering {scenario.name}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not progress,
    )
    try:
        with truth_path.open("w", newline="", encoding="utf-8") as handle, bar:
            rows = csv.writer(handle)
            task = bar.add_task("frames", total=player.frame_count)
            for index in range(player.frame_count):
                image, truth = player.frame(index)
                writer.write(image)
                rows.writerows(_mot_rows(index + 1, truth))
                bar.advance(task)
    finally:
        writer.release()
    expect_path.write_text(
        "".join(json.dumps(e.record()) + "\n" for e in scenario.expect), encoding="utf-8"
    )
    return RenderedVideo(player.frame_count, video_path, truth_path, expect_path)


def _mot_rows(frame: int, truth: Sequence[TruthBox]) -> list[list[object]]:
    return [
        [frame, t.track_id, f"{t.xyxy[0]:.1f}", f"{t.xyxy[1]:.1f}", f"{t.xyxy[2] - t.xyxy[0]:.1f}",
         f"{t.xyxy[3] - t.xyxy[1]:.1f}", 1, t.class_name, f"{t.visibility:.3f}"]
        for t in truth
    ]  # fmt: skip
