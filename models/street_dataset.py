"""A YOLO training set of random street scenes, rendered on demand (never committed).

Each image is an independent random scene from :mod:`citywatch.hardware.camera.street.scene`: a
randomly proportioned street under day, dusk or night light, with a random mix of parked and
moving (motion-blurred) vehicles, pedestrians, vendor stalls with their vendors, and smoke
of every size and density, plus distractors that are not smoke (bright flashes, white vans)
and some empty frames. Image ``i`` of a split is seeded by ``(seed, split, i)``, so the set
is the same whatever the number of worker processes, and train and validation never share a
scene.
"""

from __future__ import annotations

import math
import multiprocessing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from ruamel.yaml import YAML

from citywatch.hardware.camera.street.actors import (
    FlashLook,
    SmokeLook,
    VehicleKind,
    random_person,
    random_smoke,
    random_stall,
    random_vehicle,
)
from citywatch.hardware.camera.street.layout import Lane, StreetLayout
from citywatch.hardware.camera.street.lighting import LIGHTING_PRESETS, Lighting
from citywatch.hardware.camera.street.scene import STREET_CLASSES, Actor, TruthBox, render_street

__all__ = [
    "DATASET_VERSION",
    "MIN_BOX_PX",
    "SceneSpec",
    "random_scene",
    "render_dataset",
    "yolo_lines",
]

DATASET_VERSION = 1
"""Bumped whenever the scene mix or the labelling changes, so a cached render is not reused."""

MIN_BOX_PX = 6
"""Boxes narrower or shorter than this at the output size are left unlabelled."""
_SPLITS = {"train": 0, "val": 1}
_EMPTY_SHARE = 0.05


@dataclass(frozen=True)
class SceneSpec:
    """Everything :func:`render_street` needs for one random training image."""

    actors: tuple[Actor, ...]
    layout: StreetLayout
    lighting: Lighting
    noise_sigma: float
    shake: tuple[int, int]
    backdrop_seed: int
    noise_seed: int


def random_scene(rng: np.random.Generator, size: tuple[int, int]) -> SceneSpec:
    """A random street with a random mix of actors in random states."""
    width, height = size
    near = float(rng.uniform(4.0, 6.0))
    layout = StreetLayout(
        camera_height_m=float(rng.uniform(4.5, 8.0)),
        near_z_m=near,
        curb_z_m=near + float(rng.uniform(2.2, 4.0)),
        parking_lane_m=float(rng.uniform(2.3, 2.9)),
        lane_m=float(rng.uniform(3.1, 3.8)),
        far_sidewalk_m=float(rng.uniform(2.5, 4.0)),
        building_y=float(rng.uniform(0.3, 0.46)),
        parking_bays_from_x=float(rng.uniform(0.4, 1.2)),
    )
    lighting = _random_lighting(rng)
    placer = _Placer(rng, layout, width, height, dark=lighting.gain < 0.5)
    if rng.random() >= _EMPTY_SHARE:
        placer.populate()
    if rng.random() < 0.12:
        placer.flash()
    return SceneSpec(
        actors=tuple(placer.actors),
        layout=layout,
        lighting=lighting,
        noise_sigma=float(rng.uniform(1.0, 8.0)),
        shake=(int(rng.integers(-3, 4)), int(rng.integers(-3, 4))),
        backdrop_seed=int(rng.integers(1 << 30)),
        noise_seed=int(rng.integers(1 << 30)),
    )


def _random_lighting(rng: np.random.Generator) -> Lighting:
    name = ("day", "dusk", "night")[int(rng.choice(3, p=[0.55, 0.25, 0.2]))]
    base = LIGHTING_PRESETS[name]
    tint = tuple(float(v) * float(rng.uniform(0.93, 1.07)) for v in base.tint)
    return Lighting(
        gain=base.gain * float(rng.uniform(0.85, 1.12)),
        tint=(tint[0], tint[1], tint[2]),
        ambient=base.ambient,
        lights=base.lights,
    )


class _Placer:
    """Places actors on a street without two of them sharing the same stretch of a lane."""

    def __init__(
        self, rng: np.random.Generator, layout: StreetLayout, width: int, height: int, *, dark: bool
    ) -> None:
        self.rng, self.layout, self.width, self.height = rng, layout, width, height
        # At night only light, dense smoke shows (lit by the street lamps).
        self.dark = dark
        self.actors: list[Actor] = []
        self._taken: dict[str, list[tuple[float, float]]] = {}

    def _free(self, lane: str, x: float, half_w: float) -> bool:
        spans = self._taken.setdefault(lane, [])
        if any(x - half_w < b and x + half_w > a for a, b in spans):
            return False
        spans.append((x - half_w, x + half_w))
        return True

    def populate(self) -> None:
        rng = self.rng
        counts: tuple[tuple[VehicleKind, int], ...] = (
            ("bus", int(rng.binomial(1, 0.45))),
            ("truck", int(rng.binomial(2, 0.35))),
            ("car", int(min(6, rng.poisson(2.6)))),
        )
        for kind, count in counts:
            for _ in range(count):
                self.vehicle(kind)
        for _ in range(int(rng.binomial(2, 0.4))):
            self.stall()
        for _ in range(int(min(7, rng.poisson(2.2)))):
            self.person()
        for _ in range(int(rng.binomial(2, 0.35))):
            self.smoke()

    def vehicle(self, kind: VehicleKind) -> None:
        rng, layout = self.rng, self.layout
        look = random_vehicle(kind, rng)
        lanes: tuple[Lane, ...] = ("road_far", "road_near", "curb")
        lane = lanes[int(rng.choice(3, p=[0.3, 0.35, 0.35]))]
        z = layout.lane_depth(lane, float(rng.uniform(0.35, 0.65)))
        s = layout.px_per_m(z, self.height)
        half_w = look.length_m * s / self.width / 2
        for _ in range(8):
            x = float(rng.uniform(-0.05, 1.05))
            if self._free(lane, x, half_w * 1.05):
                break
        else:
            return
        moving = lane != "curb" and rng.random() < 0.8
        facing = -1 if lane == "road_far" else 1
        if lane == "curb" or rng.random() < 0.1:
            facing = int(rng.choice((-1, 1)))
        # Speed 0–15 m/s over a 20 ms exposure smears the vehicle by up to 0.3 m.
        blur = float(rng.uniform(0.0, 15.0)) * 0.02 * s if moving else 0.0
        self.actors.append(Actor(len(self.actors) + 1, look, x, z, facing=facing, blur_px=blur))

    def person(self, x: float | None = None, z: float | None = None) -> None:
        rng, layout = self.rng, self.layout
        if z is None:
            where = rng.random()
            if where < 0.75:
                z = layout.lane_depth("sidewalk", float(rng.uniform(0.05, 0.9)))
            elif where < 0.9:
                z = layout.far_curb_z_m + float(rng.uniform(0.4, layout.far_sidewalk_m - 0.3))
            else:
                z = layout.lane_depth(
                    ("curb", "road_near")[int(rng.integers(2))], float(rng.uniform(0.2, 0.8))
                )
        x = float(rng.uniform(-0.02, 1.02)) if x is None else x
        walking = rng.random() < 0.6
        self.actors.append(
            Actor(
                len(self.actors) + 1,
                random_person(rng),
                x,
                z,
                facing=int(rng.choice((-1, 1))),
                walk_phase=float(rng.uniform(0, 2 * math.pi)) if walking else None,
            )
        )

    def stall(self) -> None:
        rng, layout = self.rng, self.layout
        look = random_stall(rng)
        far_side = rng.random() < 0.2
        if far_side:
            z = layout.far_curb_z_m + float(rng.uniform(0.8, layout.far_sidewalk_m - 0.2))
        else:
            z = layout.lane_depth("sidewalk", float(rng.uniform(0.05, 0.6)))
        s = layout.px_per_m(z, self.height)
        half_w = look.umbrella_m * s / self.width / 2
        x = float(rng.uniform(0.05, 0.95))
        if not self._free("far-stalls" if far_side else "stalls", x, half_w * 1.3):
            return
        self.actors.append(Actor(len(self.actors) + 1, look, x, z))
        if rng.random() < 0.75:
            side = float(rng.choice((-1.0, 1.0)))
            gap_m = look.umbrella_m / 2 * float(rng.uniform(0.5, 1.1))
            self.person(x + side * gap_m * s / self.width, z - float(rng.uniform(0.0, 0.6)))

    def smoke(self) -> None:
        rng, layout = self.rng, self.layout
        where = rng.random()
        if where < 0.55:
            z = layout.lane_depth("sidewalk", float(rng.uniform(0.05, 0.8)))
        elif where < 0.8:
            z = layout.lane_depth("curb", float(rng.uniform(0.2, 0.8)))
        else:
            z = layout.far_curb_z_m + float(rng.uniform(0.3, layout.far_sidewalk_m))
        base = random_smoke(rng)
        look = SmokeLook(
            shade=max(base.shade, 215) if self.dark else base.shade,
            height_m=float(rng.uniform(1.2, 7.5)),
            opacity=float(rng.uniform(0.7 if self.dark else 0.6, 0.95)),
            lean=base.lean,
            time_s=float(rng.uniform(0, 200)),
            seed=base.seed,
        )
        self.actors.append(Actor(len(self.actors) + 1, look, float(rng.uniform(0.05, 0.95)), z))

    def flash(self) -> None:
        rng, layout = self.rng, self.layout
        z = layout.lane_depth(("sidewalk", "curb", "road_near")[int(rng.integers(3))])
        look = FlashLook(
            radius_m=float(rng.uniform(0.4, 2.5)), strength=float(rng.uniform(0.5, 1.0))
        )
        self.actors.append(Actor(len(self.actors) + 1, look, float(rng.uniform(0.05, 0.95)), z))


def yolo_lines(truth: tuple[TruthBox, ...], size: tuple[int, int]) -> list[str]:
    """``cls cx cy w h`` (normalised) for every truth box at least :data:`MIN_BOX_PX` big."""
    width, height = size
    lines = []
    for box in truth:
        x0, y0, x1, y1 = box.xyxy
        if x1 - x0 < MIN_BOX_PX or y1 - y0 < MIN_BOX_PX:
            continue
        cls = STREET_CLASSES.index(box.class_name)
        cx, cy = (x0 + x1) / 2 / width, (y0 + y1) / 2 / height
        lines.append(f"{cls} {cx:.6f} {cy:.6f} {(x1 - x0) / width:.6f} {(y1 - y0) / height:.6f}")
    return lines


def _render_one(job: tuple[Path, str, int, int, tuple[int, int]]) -> list[int]:
    """Render and write image ``index`` of a split; returns its label count per class."""
    out_dir, split, index, seed, size = job
    rng = np.random.default_rng([seed, _SPLITS[split], index])
    spec = random_scene(rng, size)
    frame = render_street(
        spec.actors,
        size=size,
        layout=spec.layout,
        lighting=spec.lighting,
        noise_sigma=spec.noise_sigma,
        shake=spec.shake,
        backdrop_seed=spec.backdrop_seed,
        noise_seed=spec.noise_seed,
    )
    name = f"{split}_{index:06d}"
    quality = int(rng.integers(75, 96))
    cv2.imwrite(
        str(out_dir / "images" / split / f"{name}.jpg"),
        frame.image,
        [cv2.IMWRITE_JPEG_QUALITY, quality],
    )
    lines = yolo_lines(frame.truth, size)
    (out_dir / "labels" / split / f"{name}.txt").write_text("".join(line + "\n" for line in lines))
    counts = [0] * len(STREET_CLASSES)
    for line in lines:
        counts[int(line.split()[0])] += 1
    return counts


def _jobs(
    out_dir: Path, n_train: int, n_val: int, seed: int, size: tuple[int, int]
) -> Iterator[tuple[Path, str, int, int, tuple[int, int]]]:
    for split, count in (("train", n_train), ("val", n_val)):
        for index in range(count):
            yield (out_dir, split, index, seed, size)


def render_dataset(
    out_dir: Path,
    n_train: int,
    n_val: int,
    size: tuple[int, int] = (640, 384),
    seed: int = 0,
    workers: int = 1,
) -> Path:
    """Write a YOLO dataset of random street scenes under ``out_dir``; returns its data.yaml.

    ``size`` is (width, height). ``workers`` > 1 renders in that many processes; the images
    are the same either way.
    """
    if n_train < 1 or n_val < 0:
        raise ValueError(f"need at least one training image (got n_train={n_train}, n_val={n_val})")
    out_dir = Path(out_dir)
    for sub in ("images", "labels"):
        for split in _SPLITS:
            (out_dir / sub / split).mkdir(parents=True, exist_ok=True)
    totals = [0] * len(STREET_CLASSES)
    progress = Progress(
        TextColumn("rendering street dataset"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    jobs = _jobs(out_dir, n_train, n_val, seed, size)
    with progress:
        task = progress.add_task("render", total=n_train + n_val)
        if workers > 1:
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                for counts in pool.imap(_render_one, jobs, chunksize=16):
                    totals = [a + b for a, b in zip(totals, counts, strict=True)]
                    progress.advance(task)
        else:
            for job in jobs:
                counts = _render_one(job)
                totals = [a + b for a, b in zip(totals, counts, strict=True)]
                progress.advance(task)
    data_yaml = out_dir / "data.yaml"
    yaml = YAML()
    yaml.default_flow_style = False
    with data_yaml.open("w", encoding="utf-8") as handle:
        yaml.dump(
            {
                "path": str(out_dir.resolve()),
                "train": "images/train",
                "val": "images/val",
                "names": dict(enumerate(STREET_CLASSES)),
            },
            handle,
        )
    missing = [name for name, count in zip(STREET_CLASSES, totals, strict=True) if count == 0]
    if missing and n_train + n_val >= 200:
        raise RuntimeError(f"the rendered dataset has no {missing} labels; check the scene mix")
    return data_yaml
