"""Zones compiled for a frame size: anchors, membership, masks, pixel and normalized units."""

from __future__ import annotations

import numpy as np
import pytest

from citywatch.config.camera import Anchor, Zone
from citywatch.edge.camera.zones import (
    ZoneError,
    ZoneMap,
    anchor_points,
    area_fractions,
    drop_masked,
)
from citywatch.models.detections import Detections

W, H = 1000, 500
LEFT_HALF = Zone(name="left", polygon=((0, 0), (0.5, 0), (0.5, 1), (0, 1)))
TOP_MASK = Zone(name="sky", polygon=((0, 0), (1, 0), (1, 0.2), (0, 0.2)), mask=True)


@pytest.mark.parametrize(
    ("anchor", "expected"),
    [
        ("bottom_center", (150, 80)),
        ("center", (150, 50)),
        ("top_center", (150, 20)),
        ("bottom_left", (100, 80)),
        ("bottom_right", (200, 80)),
        ("top_left", (100, 20)),
        ("top_right", (200, 20)),
        ("center_left", (100, 50)),
        ("center_right", (200, 50)),
    ],
)
def test_anchor_points_pick_the_named_point_of_the_box(
    anchor: Anchor, expected: tuple[float, float]
) -> None:
    """Every anchor name is the matching point of the xyxy box."""
    points = anchor_points(np.array([[100, 20, 200, 80]], np.float32), anchor)
    assert points.tolist() == [list(expected)]


def test_normalized_zone_is_scaled_to_the_frame() -> None:
    """A 0–1 zone covers the same share of any frame size; its edge counts as inside."""
    zones = ZoneMap([LEFT_HALF], W, H)
    inside = zones.contains("left", np.array([[100, 100], [500, 250], [501, 250], [900, 10]]))
    assert inside.tolist() == [True, True, False, False]
    assert ZoneMap([LEFT_HALF], 200, 100).contains("left", np.array([[99, 50]])).tolist() == [True]


def test_pixel_zone_is_used_as_drawn() -> None:
    """A pixel zone is not scaled: the same vertices mean the same pixels."""
    zone = Zone(name="px", units="pixel", polygon=((0, 0), (400, 0), (400, 500), (0, 500)))
    zones = ZoneMap([zone], W, H)
    assert zones.contains("px", np.array([[399, 10], [401, 10]])).tolist() == [True, False]


def test_pixel_zone_outside_the_frame_is_an_error_naming_the_zone() -> None:
    """A pixel zone drawn for a larger resolution is refused, not silently clipped."""
    zone = Zone(name="big", units="pixel", polygon=((0, 0), (1920, 0), (1920, 1080)))
    with pytest.raises(ZoneError, match=r"'big'.*1000x500"):
        ZoneMap([zone], W, H)


def test_self_crossing_polygon_is_an_error() -> None:
    """A bow-tie polygon is not a zone; the operator is told to reorder the vertices."""
    zone = Zone(name="bowtie", polygon=((0, 0), (1, 1), (1, 0), (0, 0.5)))
    with pytest.raises(ZoneError, match=r"'bowtie'.*without crossings"):
        ZoneMap([zone], W, H)


def test_masked_detections_are_dropped_by_bottom_centre() -> None:
    """A box whose bottom centre is in a mask is dropped; one reaching into it is kept."""
    dets = Detections(
        np.array([[10, 10, 50, 60], [10, 10, 50, 120], [600, 300, 700, 400]], np.float32),
        np.array([0.9, 0.8, 0.7], np.float32),
        ("bird", "smoke", "car"),
    )
    kept = drop_masked(dets, ZoneMap([LEFT_HALF, TOP_MASK], W, H))
    assert kept.class_name == ("smoke", "car")
    assert kept.confidence.tolist() == pytest.approx([0.8, 0.7])


def test_membership_lists_watched_zones_only() -> None:
    """Masks are not zones an object can be in."""
    zones = ZoneMap([LEFT_HALF, TOP_MASK], W, H)
    membership = zones.membership(np.array([[100, 50], [900, 400]]))
    assert list(membership) == ["left"]
    assert membership["left"].tolist() == [True, False]


def test_first_zone_follows_the_order_given() -> None:
    """Of two overlapping zones, the first candidate that contains the point wins."""
    whole = Zone(name="whole", polygon=((0, 0), (1, 0), (1, 1), (0, 1)))
    zones = ZoneMap([LEFT_HALF, whole], W, H)
    assert zones.first_zone((100, 100), ["whole", "left"]) == "whole"
    assert zones.first_zone((100, 100), ["left", "whole"]) == "left"
    assert zones.first_zone((900, 100), ["left"]) is None


def test_area_fractions_are_shares_of_the_image() -> None:
    """Box areas are given as a fraction of width × height."""
    fractions = area_fractions(np.array([[0, 0, 100, 50], [0, 0, 1000, 500]]), W, H)
    assert fractions.tolist() == pytest.approx([0.01, 1.0])
