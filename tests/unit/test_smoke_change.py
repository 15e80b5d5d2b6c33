"""Weak smoke boxes of a detector kept only where the scene turns grey (models/smoke_change.py)."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from citywatch.config.detector import DetectorConfig
from citywatch.models.detections import Detections, Image
from citywatch.models.smoke_change import SmokeCorroboration, corroborated
from tests.unit.test_smoke_classical import BLACK_SMOKE, growing_smoke, static_scene

PLUME = (130.0, 110.0, 210.0, 190.0)  # around growing_smoke's centre (170, 150)
AWNING = (20.0, 20.0, 90.0, 70.0)


class FixedBoxes:
    """A model that always reports the same boxes, whatever the frame."""

    classes = ("car", "smoke")

    def __init__(self, rows: list[tuple[tuple[float, float, float, float], float, str]]) -> None:
        self.found = Detections(
            np.array([r[0] for r in rows], np.float32),
            np.array([r[1] for r in rows], np.float32),
            tuple(r[2] for r in rows),
        )

    def detect(self, image: Image) -> Detections:
        return self.found


CONFIG = DetectorConfig(class_confidence={"smoke": 0.1}, corroborated_smoke=0.05)


def kept(frames: Iterator[NDArray[np.uint8]], model: FixedBoxes) -> list[Detections]:
    camera = SmokeCorroboration(model, CONFIG)
    return [camera.detect(frame) for frame in frames]


@pytest.mark.parametrize("colour", [None, BLACK_SMOKE], ids=["grey-white", "black"])
def test_a_weak_box_over_a_growing_plume_is_kept_once_it_turns_grey(
    colour: tuple[int, int, int] | None,
) -> None:
    """Before the plume there is nothing to corroborate; once it grows, the 0.06 box stays."""
    model = FixedBoxes([(PLUME, 0.06, "smoke")])
    results = kept(growing_smoke(colour=colour or (215, 215, 220)), model)
    assert len(results[2]) == 0  # frames 0-3: no plume yet
    assert all(len(d) == 1 for d in results[-8:])


def test_a_weak_box_over_a_still_scene_is_dropped_and_sure_boxes_always_pass() -> None:
    """A still umbrella the model half takes for smoke never moves: dropped every frame;
    smoke above its floor and other classes are not the cue's business."""
    model = FixedBoxes([(AWNING, 0.08, "smoke"), (PLUME, 0.3, "smoke"), (AWNING, 0.04, "car")])
    for found in kept(static_scene(), model):
        assert found.class_name == ("smoke", "car")
        assert found.confidence.tolist() == pytest.approx([0.3, 0.04])


def test_a_box_scored_exactly_at_the_floor_needs_corroboration() -> None:
    """The backends keep boxes strictly above a floor; at the floor a box is weak."""
    model = FixedBoxes([(AWNING, 0.1, "smoke")])
    assert all(len(d) == 0 for d in kept(static_scene(), model))


def test_without_a_corroborated_floor_the_detector_is_used_as_it_is() -> None:
    model = FixedBoxes([(AWNING, 0.3, "smoke")])
    assert corroborated(model, DetectorConfig()) is model
    assert isinstance(corroborated(model, CONFIG), SmokeCorroboration)


def test_the_corroborated_floor_must_lie_below_the_smoke_floor() -> None:
    with pytest.raises(
        ValueError, match=r"corroborated_smoke 0\.3 must be below smoke's floor 0\.25"
    ):
        DetectorConfig(corroborated_smoke=0.3)


def test_the_model_runs_at_the_corroborated_floor_and_rules_may_ask_for_it() -> None:
    """The model must report 0.05 boxes for them to be corroborated; a rule at 0.05 is
    then valid, one at 0.04 would wait for boxes that never come."""
    assert CONFIG.model_floors() == {"smoke": 0.05}
    assert CONFIG.model_floor == 0.05
    assert (CONFIG.floor("smoke"), CONFIG.reach("smoke"), CONFIG.reach("car")) == (0.1, 0.05, 0.25)


def test_corroboration_scales_boxes_to_its_working_size() -> None:
    """Boxes are in source pixels; the cue works on a copy 320 pixels wide."""
    big = [cv2.resize(f, (1280, 960)) for f in growing_smoke()]
    model = FixedBoxes([(tuple(4 * v for v in PLUME), 0.06, "smoke")])  # type: ignore[misc]
    assert all(len(d) == 1 for d in kept(iter(big), model)[-8:])
