"""The synthetic aerial renderer is deterministic, and the classical detector finds its objects."""

from __future__ import annotations

import numpy as np
import pytest

from citywatch.hardware.dock.aerial import AerialObject, Road, TruthBox, render_patch
from citywatch.models.aerial_classical import AerialClassicalDetector
from citywatch.models.detections import Detection, Detections, iou

SCENE = [
    AerialObject("car", -20, 10, 30),
    AerialObject("car", -10, -15, 90),
    AerialObject("car", 0, 28, 135),
    AerialObject("truck", 15, 20, 0),
    AerialObject("truck", 30, 5, 75),
    AerialObject("stall", 25, -20),
    AerialObject("stall", 32, -24),
    AerialObject("smoke", -25, -12, 60),
]


def render(seed: int, mpp: float = 0.12):  # type: ignore[no-untyped-def]
    return render_patch(
        SCENE,
        width_px=900,
        height_px=700,
        metres_per_px=mpp,
        roads=[Road((-60, 0), (60, 0))],
        seed=seed,
    )


def test_same_seed_renders_the_same_image() -> None:
    """Rendering is a pure function of its arguments and seed."""
    a, b = render(7), render(7)
    assert np.array_equal(a.image, b.image)
    assert a.truth == b.truth
    assert not np.array_equal(a.image, render(8).image)


def test_ground_truth_lists_every_object_with_its_class() -> None:
    """One truth box per object, named by its class."""
    truth = render(1).truth
    assert sorted(t.class_name for t in truth) == sorted(o.kind for o in SCENE)


@pytest.mark.parametrize("mpp", [0.1, 0.12, 0.15])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classical_detector_finds_most_objects_with_iou_half(seed: int, mpp: float) -> None:
    """At drone ground resolutions, most objects are found with the right class and IoU ≥ 0.5."""
    patch = render(seed, mpp)
    found = AerialClassicalDetector().detect(patch.image)
    matched = sum(
        any(d.class_name == t.class_name and iou(_box(t), _box(d)) >= 0.5 for d in found)
        for t in patch.truth
    )
    assert matched >= 0.8 * len(patch.truth), (found.class_name, patch.truth)
    assert len(found) <= len(patch.truth) + 1, "few false positives"


def test_plain_ground_yields_no_detections() -> None:
    """Grass and a road with lane markings are not objects."""
    patch = render_patch(
        [], width_px=800, height_px=600, metres_per_px=0.12, roads=[Road((-50, 0), (50, 0))]
    )
    assert len(AerialClassicalDetector().detect(patch.image)) == 0


def test_detections_validate_shapes_and_ranges() -> None:
    """Mismatched lengths, inverted boxes and confidences outside [0, 1] are refused."""
    with pytest.raises(ValueError, match="as many"):
        Detections(np.zeros((2, 4), np.float32), np.zeros(1, np.float32), ("a", "b"))
    with pytest.raises(ValueError, match="x1 <= x2"):
        Detections(np.array([[5, 0, 1, 1]], np.float32), np.ones(1, np.float32), ("a",))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Detections(np.array([[0, 0, 1, 1]], np.float32), np.array([1.5], np.float32), ("a",))
    rows = [Detection(0, 0, 2, 2, 0.5, "car")]
    assert list(Detections.from_rows(rows)) == rows
    assert len(Detections.empty()) == 0


def _box(d: Detection | TruthBox) -> tuple[float, float, float, float]:
    return d.x1, d.y1, d.x2, d.y2
