"""A synthetic street camera: the street, the things on it, and the truth of what is visible.

:func:`render_street` draws one frame (far to near, so nearer things hide farther ones) and
returns the ground truth of what is visible: boxes clipped to the frame, with a visibility
that counts both the part off the frame and the part hidden by nearer opaque actors. It
feeds the detector's training set, the scenario suite and the live ``synthetic:`` camera,
so it is pure (everything comes from its arguments) and fast: the static street is drawn
once per size and cached; a 1280×720 frame costs a few milliseconds.

Its parts: :mod:`~citywatch.hardware.camera.street.layout` (the street's geometry),
:mod:`~citywatch.hardware.camera.street.actors` (what the things on it look like),
:mod:`~citywatch.hardware.camera.street.drawing` (drawing them),
:mod:`~citywatch.hardware.camera.street.backdrop` (the cached empty street) and
:mod:`~citywatch.hardware.camera.street.lighting` (light, noise and shake).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from citywatch.hardware.camera.street.actors import (
    FlashLook,
    Look,
    PersonLook,
    SmokeLook,
    VehicleLook,
)
from citywatch.hardware.camera.street.backdrop import backdrop_for
from citywatch.hardware.camera.street.drawing import (
    draw_person,
    draw_smoke,
    draw_stall,
    draw_vehicle,
)
from citywatch.hardware.camera.street.layout import DEFAULT_LAYOUT, Box, StreetLayout
from citywatch.hardware.camera.street.lighting import (
    DAY,
    SHAKE_MARGIN_PX,
    Lighting,
    add_glow,
    lighting_matrix,
    noise_bank,
)
from citywatch.hardware.camera.street.palette import BGR, BRIGHT, Image

__all__ = [
    "STREET_CLASSES",
    "Actor",
    "StreetFrame",
    "TruthBox",
    "draw_truth",
    "render_street",
]

STREET_CLASSES = ("car", "truck", "bus", "person", "stall", "smoke")
"""The detector's classes, in the order of its class ids."""

MIN_IN_FRAME = 0.5
"""An actor with less of its box inside the frame than this is not reported."""
MAX_OCCLUDED = 0.7
"""An actor with more of its in-frame box hidden by nearer actors than this is not reported."""


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
    backdrop = backdrop_for(layout, width, height, backdrop_seed)
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
            box, parts = draw_smoke(img, look, bx, by, s, min_contrast), list[Box]()
        else:
            if isinstance(look, VehicleLook):
                box, parts, lights = draw_vehicle(
                    img, look, bx, by, s, 1 if actor.facing >= 0 else -1
                )
                glows += lights
            elif isinstance(look, PersonLook):
                box, parts, _ = draw_person(
                    img, look, bx, by, s, 1 if actor.facing >= 0 else -1, actor.walk_phase
                )
            else:
                box, parts, _ = draw_stall(img, look, bx, by, s)
            if actor.blur_px >= 2:
                _motion_blur(img, box, int(actor.blur_px))
        drawn.append((actor, box, parts))
    if lighting != DAY:
        img = cv2.transform(img, lighting_matrix(lighting)).astype(np.uint8, copy=False)
    if lighting.lights > 0.05:
        rows = max(0, min(height, backdrop.lights_rows - m - dy))
        lamps = backdrop.lights[m + dy : m + dy + rows, m + dx : m + dx + width]
        _light_windows(img, lamps, drawn, lighting.lights)
        for gx, gy, gr, colour in glows:
            add_glow(img, gx, gy, gr, colour, lighting.lights)
    for gx, gy, gr, colour in flashes:
        add_glow(img, gx, gy, gr, colour, 1.0)
    if noise_sigma > 0:
        bank = noise_bank(width, height)
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
    colours = {name: BRIGHT[i] for i, name in enumerate(STREET_CLASSES)}
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
