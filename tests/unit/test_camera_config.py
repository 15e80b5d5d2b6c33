"""Camera config: the new rule knobs, their defaults, and each named cross-check."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from citywatch.config import load_config
from citywatch.config.camera import (
    CameraConfig,
    IllegalParkingRule,
    RuleBase,
    Schedule,
    SmokeRule,
    StationaryRule,
    StreetVendingRule,
    TrackerConfig,
    Zone,
    verify_area_range,
    verify_detector_passes_what_rules_accept,
    verify_names_unique,
    verify_rules_do_not_watch_masks,
    verify_rules_use_known_zones,
    verify_tracker_tracks_what_rules_accept,
    verify_zone_polygon,
)
from citywatch.config.detector import DetectorConfig

DEMO = Path(__file__).resolve().parents[2] / "configs" / "demo-district.yaml"
SQUARE = [[0.1, 0.5], [0.9, 0.5], [0.9, 0.9], [0.1, 0.9]]


def camera_dict(
    rules: list[dict[str, Any]] | None = None,
    zones: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "id": "cam-1",
        "gateway": "gw-1",
        "placement": {"district": "d1"},
        "source": {"url": "synthetic:x"},
        "zones": zones if zones is not None else [{"name": "curb", "polygon": SQUARE}],
        "rules": rules
        if rules is not None
        else [{"type": "illegal_parking", "name": "park", "zones": ["curb"]}],
        **extra,
    }


def test_demo_cameras_validate_with_safe_defaults() -> None:
    """The demo site's cameras load; new knobs default to bottom-centre, 5 s still, 10 s grace."""
    camera = load_config(DEMO).devices.cameras[0]
    parking = next(r for r in camera.rules if isinstance(r, IllegalParkingRule))
    assert parking.anchor == "bottom_center"
    assert parking.stationary_window == timedelta(seconds=5)
    assert parking.max_displacement == 0.15
    assert parking.lost_grace == timedelta(seconds=10)
    assert parking.update_every == timedelta(minutes=5)
    assert (parking.min_area, parking.max_area) == (0.0, 1.0)
    assert camera.tracker == TrackerConfig()
    assert camera.tracker.lost_buffer == timedelta(seconds=3)
    assert all(zone.units == "normalized" for zone in camera.zones)


def test_new_knobs_parse_from_yaml_values() -> None:
    """Durations as strings, pixel zones, vending and smoke options, a tracker section."""
    camera = CameraConfig.model_validate(
        camera_dict(
            zones=[
                {"name": "curb", "polygon": [[0, 360], [1280, 360], [1280, 720]], "units": "pixel"}
            ],
            rules=[
                {
                    "type": "illegal_parking",
                    "name": "park",
                    "zones": ["curb"],
                    "stationary_window": "8s",
                    "lost_grace": "30s",
                    "update_every": "10m",
                    "anchor": "center",
                    "min_area": 0.001,
                    "max_area": 0.2,
                },
                {
                    "type": "street_vending",
                    "name": "vend",
                    "zones": ["curb"],
                    "require_person": True,
                    "person_distance": 2,
                },
                {
                    "type": "smoke",
                    "name": "smoke",
                    "zones": ["curb"],
                    "confirm_with_classical": True,
                },
            ],
            tracker={"lost_buffer": "5s", "min_iou": 0.2},
        )
    )
    park, vend, smoke = camera.rules
    assert isinstance(park, IllegalParkingRule) and park.lost_grace == timedelta(seconds=30)
    assert park.update_every == timedelta(minutes=10) and park.anchor == "center"
    assert isinstance(vend, StreetVendingRule) and vend.require_person and vend.person_distance == 2
    assert isinstance(smoke, SmokeRule) and smoke.confirm_with_classical
    assert camera.tracker.lost_buffer == timedelta(seconds=5)
    assert camera.zones[0].units == "pixel"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"zones": [{"name": "curb", "polygon": [[0, 0], [1.2, 0], [1, 1]]}]}, "outside 0–1"),
        (
            {"zones": [{"name": "curb", "polygon": [[0, 0], [-5, 0], [9, 9]], "units": "pixel"}]},
            "negative pixel",
        ),
        ({"zones": [{"name": "curb", "polygon": [[0, 0], [0.5, 0.5], [1, 1]]}]}, "no area"),
        (
            {
                "rules": [
                    {
                        "type": "smoke",
                        "name": "s",
                        "zones": ["curb"],
                        "min_area": 0.5,
                        "max_area": 0.1,
                    }
                ]
            },
            "must be below max_area",
        ),
        ({"rules": [{"type": "smoke", "name": "s", "zones": ["nowhere"]}]}, "undefined zones"),
        (
            {
                "zones": [{"name": "curb", "polygon": SQUARE, "mask": True}],
                "rules": [{"type": "smoke", "name": "s", "zones": ["curb"]}],
            },
            "watches mask zones",
        ),
        (
            {"zones": [{"name": "curb", "polygon": SQUARE}, {"name": "curb", "polygon": SQUARE}]},
            "zone names more than once",
        ),
        (
            {"rules": [{"type": "smoke", "name": "s", "zones": ["curb"]}] * 2},
            "rule names more than once",
        ),
        (
            {
                "rules": [
                    {
                        "type": "illegal_parking",
                        "name": "p",
                        "zones": ["curb"],
                        "min_confidence": 0.2,
                    }
                ]
            },
            "never get a track",
        ),
        (
            {
                "rules": [
                    {
                        "type": "illegal_parking",
                        "name": "p",
                        "zones": ["curb"],
                        "stationary_windw": "5s",
                    }
                ]
            },
            "Extra inputs are not permitted",
        ),
        (
            {
                "rules": [
                    {"type": "illegal_parking", "name": "p", "zones": ["curb"], "anchor": "feet"}
                ]
            },
            "bottom_center",
        ),
        ({"tracker": {"lost_buffer": "soon"}}, "is not a duration"),
    ],
)
def test_invalid_camera_configs_are_refused_with_a_helpful_message(
    change: dict[str, Any], message: str
) -> None:
    """Table: each mistake is an error that says what to fix."""
    with pytest.raises(ValidationError, match=message):
        CameraConfig.model_validate(camera_dict(**change))


def _camera(**change: Any) -> CameraConfig:
    """A valid camera with ``change`` applied unchecked, to call one check on its own."""
    return CameraConfig.model_validate(camera_dict()).model_copy(update=change)


def test_verify_zone_polygon_accepts_pixels_beyond_one() -> None:
    """Pixel zones are not held to 0–1; their frame-size check happens at compile time."""
    verify_zone_polygon(Zone(name="z", polygon=((0, 0), (1920, 0), (1920, 1080)), units="pixel"))


def test_verify_area_range_refuses_an_empty_range() -> None:
    """min_area equal to max_area lets no box through."""
    rule = RuleBase.model_construct(name="r", zones=("curb",), min_area=0.2, max_area=0.2)
    with pytest.raises(ValueError, match=r"min_area 0\.2 must be below max_area 0\.2"):
        verify_area_range(rule)


def test_verify_rules_use_known_zones_names_the_missing_zone() -> None:
    """The error lists the missing and the defined zones."""
    rule = SmokeRule(name="s", zones=("ghost",))
    with pytest.raises(ValueError, match=r"\['ghost'\]; defined: \['curb'\]"):
        verify_rules_use_known_zones(_camera(rules=(rule,)))


def test_verify_rules_do_not_watch_masks_names_the_mask() -> None:
    """A rule watching a mask could never fire."""
    mask = Zone(name="curb", polygon=((0, 0), (1, 0), (1, 1)), mask=True)
    with pytest.raises(ValueError, match=r"\['curb'\]"):
        verify_rules_do_not_watch_masks(_camera(zones=(mask,)))


def test_verify_names_unique_names_the_repeated_rule() -> None:
    """Episodes are keyed by rule name, so two rules may not share one."""
    rule = SmokeRule(name="dup", zones=("curb",))
    with pytest.raises(ValueError, match=r"rule names more than once: \['dup'\]"):
        verify_names_unique(_camera(rules=(rule, rule)))


def test_verify_tracker_tracks_what_rules_accept_ignores_smoke() -> None:
    """Smoke is judged on raw detections, so its min_confidence may be below the tracker's."""
    rule = SmokeRule(name="s", zones=("curb",), min_confidence=0.1)
    verify_tracker_tracks_what_rules_accept(_camera(rules=(rule,)))


def test_a_rule_below_the_detector_floor_for_its_class_is_refused() -> None:
    """Boxes under the detector's floor never reach a rule: a smoke rule at 0.1 behind the
    default floor of 0.25 would silently behave as 0.25, so the error says what to lower."""
    rule = SmokeRule(name="burning", zones=("curb",), min_confidence=0.1)
    with pytest.raises(
        ValueError, match=r"'burning'.*floor 0\.25.*detector\.class_confidence smoke"
    ):
        verify_detector_passes_what_rules_accept(_camera(rules=(rule,)))
    lowered = DetectorConfig(class_confidence={"smoke": 0.1})
    verify_detector_passes_what_rules_accept(_camera(rules=(rule,), detector=lowered))
    assert (lowered.floor("smoke"), lowered.floor("car"), lowered.model_floor) == (0.1, 0.25, 0.1)


def test_schedule_needs_at_least_one_day() -> None:
    """An empty day list would switch a rule off silently."""
    with pytest.raises(ValidationError):
        Schedule(days=())


@pytest.mark.parametrize(
    "model",
    [
        Zone,
        Schedule,
        RuleBase,
        StationaryRule,
        IllegalParkingRule,
        StreetVendingRule,
        SmokeRule,
        TrackerConfig,
        CameraConfig,
    ],
)
def test_every_camera_knob_is_described(model: type[BaseModel]) -> None:
    """Operators read the schema: every field carries a description."""
    missing = [name for name, field in model.model_fields.items() if not field.description]
    assert missing == []
