"""The classical smoke detector on synthetic frames drawn with OpenCV."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from citywatch.config.detector import SmokeOpinionConfig
from citywatch.models.detections import Detections
from citywatch.models.smoke_classical import ClassicalSmokeDetector

H, W = 240, 320
FRAMES = 24


def textured_background(seed: int = 0) -> NDArray[np.uint8]:
    """A street-like textured scene: coloured blocks, paving noise and lane lines."""
    rng = np.random.default_rng(seed)
    image = np.zeros((H, W, 3), np.uint8)
    for _ in range(30):
        x, y = (int(v) for v in rng.integers(0, [W, H]))
        colour = tuple(int(c) for c in rng.integers(40, 200, 3))
        cv2.rectangle(image, (x, y), (x + int(rng.integers(20, 90)), y + 30), colour, -1)
    noise = rng.normal(0, 22, (H, W, 1))
    image = np.clip(image.astype(np.float32) + noise, 0, 255)
    for x in range(0, W, 24):
        cv2.line(image, (x, 0), (x + 40, H), (210, 210, 210), 1)
    return np.asarray(cv2.GaussianBlur(image.astype(np.uint8), (3, 3), 0), np.uint8)


def with_sensor_noise(image: NDArray[np.uint8], rng: np.random.Generator) -> NDArray[np.uint8]:
    noisy = image.astype(np.float32) + rng.normal(0, 2.0, image.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def static_scene() -> Iterator[NDArray[np.uint8]]:
    rng = np.random.default_rng(1)
    background = textured_background()
    for _ in range(FRAMES):
        yield with_sensor_noise(background, rng)


WHITE_SMOKE = (215, 215, 220)
BLACK_SMOKE = (35, 35, 38)


def growing_smoke(
    centre: tuple[int, int] = (170, 150),
    background: NDArray[np.uint8] | None = None,
    colour: tuple[int, int, int] = WHITE_SMOKE,
) -> Iterator[NDArray[np.uint8]]:
    """A grey veil that appears after 4 frames and grows, the background showing through."""
    rng = np.random.default_rng(2)
    scene = (textured_background() if background is None else background).astype(np.float32)
    yy, xx = np.mgrid[0:H, 0:W]
    distance_sq = (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2
    for i in range(FRAMES):
        frame = scene.copy()
        if i >= 4:
            sigma = 14.0 + 2.5 * (i - 4)
            alpha = 0.65 * np.exp(-distance_sq / (2 * sigma**2))[..., None]
            frame = frame * (1 - alpha) + np.array(colour, np.float32) * alpha
        yield with_sensor_noise(frame.astype(np.uint8), rng)


def flat_road() -> NDArray[np.uint8]:
    return np.full((H, W, 3), 70, np.uint8)


def passing_grey_car(
    background: NDArray[np.uint8],
    speed_px: int = 14,
    colour: tuple[int, int, int] = (135, 135, 135),
) -> Iterator[NDArray[np.uint8]]:
    """A solid grey rectangle entering from the left and crossing the scene."""
    rng = np.random.default_rng(3)
    for i in range(FRAMES):
        frame = background.copy()
        x = -70 + speed_px * i
        cv2.rectangle(frame, (x, 120), (x + 70, 160), colour, -1)
        yield with_sensor_noise(frame, rng)


def run(frames: Iterator[NDArray[np.uint8]], detector: ClassicalSmokeDetector) -> list[Detections]:
    return [detector.detect(frame) for frame in frames]


def assert_fires_over_the_plume(results: list[Detections]) -> None:
    """Smoke in at least 6 of the last 8 frames, the strongest box over the plume's centre."""
    fired = [d for d in results[-8:] if len(d)]
    assert len(fired) >= 6
    x1, y1, x2, y2 = fired[-1].xyxy[int(np.argmax(fired[-1].confidence))]
    assert x1 < 170 < x2 and y1 < 150 < y2


@pytest.mark.slow
def test_static_scene_never_fires() -> None:
    """A still scene with sensor noise gives no smoke at any frame."""
    results = run(static_scene(), ClassicalSmokeDetector())
    assert all(len(d) == 0 for d in results)


@pytest.mark.slow
def test_growing_grey_veil_over_texture_fires_where_it_is() -> None:
    """A semi-transparent grey-white blob that grows in place is reported as smoke over it."""
    results = run(growing_smoke(), ClassicalSmokeDetector())
    assert all(len(d) == 0 for d in results[:6]), "smoke cannot be confirmed before it persists"
    fired = [d for d in results[-8:] if len(d)]
    assert len(fired) >= 6
    last = fired[-1]
    assert set(last.class_name) == {"smoke"}
    x1, y1, x2, y2 = last.xyxy[int(np.argmax(last.confidence))]
    assert x1 < 170 < x2 and y1 < 150 < y2
    assert 0 < float(last.confidence.max()) <= 1


def test_grey_veil_over_flat_road_fires() -> None:
    """Over a featureless road a growing soft-edged veil still counts as smoke."""
    results = run(growing_smoke(background=flat_road()), ClassicalSmokeDetector())
    assert sum(len(d) > 0 for d in results[-8:]) >= 6


@pytest.mark.slow
@pytest.mark.parametrize("speed_px", [4, 14])
@pytest.mark.parametrize("background", ["textured", "flat"])
def test_passing_solid_grey_car_does_not_fire(background: str, speed_px: int) -> None:
    """A solid grey car hides the background (textured) or shows a sharp outline and moves on
    (flat): at most one frame in the crossing reports smoke."""
    scene = textured_background() if background == "textured" else flat_road()
    results = run(passing_grey_car(scene, speed_px), ClassicalSmokeDetector())
    assert sum(len(d) > 0 for d in results) <= 1


DARK = SmokeOpinionConfig(dark_smoke=True)


@pytest.mark.slow
def test_dark_smoke_over_dark_asphalt_is_found_only_when_asked_for() -> None:
    """Black smoke over asphalt darker than the grey-white cue's brightness floor: only
    ``dark_smoke`` sees it, where it is."""
    asphalt = np.full((H, W, 3), 80, np.uint8)
    plain = run(growing_smoke(background=asphalt, colour=BLACK_SMOKE), ClassicalSmokeDetector())
    assert all(len(d) == 0 for d in plain)
    dark = run(growing_smoke(background=asphalt, colour=BLACK_SMOKE), ClassicalSmokeDetector(DARK))
    assert_fires_over_the_plume(dark)


def test_dark_smoke_over_a_textured_street_is_found_where_it_is() -> None:
    dark = run(growing_smoke(colour=BLACK_SMOKE), ClassicalSmokeDetector(DARK))
    assert_fires_over_the_plume(dark)


@pytest.mark.slow
@pytest.mark.parametrize("background", ["textured", "flat"])
def test_with_dark_smoke_a_passing_dark_car_or_a_still_scene_does_not_fire(background: str) -> None:
    """The texture, persistence and drift cues still rule out a solid dark car driving by."""
    scene = textured_background() if background == "textured" else flat_road() + 50
    car = run(passing_grey_car(scene, 14, colour=(45, 45, 45)), ClassicalSmokeDetector(DARK))
    assert sum(len(d) > 0 for d in car) <= 1
    assert all(len(d) == 0 for d in run(static_scene(), ClassicalSmokeDetector(DARK)))


def test_opinion_confirms_a_box_over_smoke_and_rejects_one_elsewhere() -> None:
    """As a second opinion: a box on the plume is confirmed, a box on still street is not."""
    detector = ClassicalSmokeDetector()
    boxes = Detections(
        np.array([[140, 120, 200, 180], [10, 10, 60, 60]], np.float32),
        np.array([0.6, 0.6], np.float32),
        ("smoke", "smoke"),
    )
    verdicts = [detector.opinion(frame, boxes) for frame in growing_smoke()]
    assert verdicts[-1].tolist() == [True, False]
    assert verdicts[2].tolist() == [False, False]


def test_full_resolution_frames_report_boxes_in_source_pixels() -> None:
    """Frames wider than the working width come back in the caller's pixel coordinates."""
    detector = ClassicalSmokeDetector(SmokeOpinionConfig(work_width_px=160))
    results = run(growing_smoke(), detector)
    box = results[-1].xyxy[0]
    assert box[0] < 170 < box[2] and box[1] < 150 < box[3]


def test_texture_band_must_be_ordered() -> None:
    """A config whose veil band is empty is refused at load."""
    with pytest.raises(ValueError, match="min_texture_ratio"):
        SmokeOpinionConfig(min_texture_ratio=0.9, max_texture_ratio=0.5)
