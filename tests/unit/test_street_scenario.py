"""Scripted street scenarios: the suite's scenes load, agree with their expectations, and
play and render deterministically."""

from __future__ import annotations

import csv
import json
from datetime import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from shapely.geometry import Point, Polygon

from citywatch.config import load_config
from citywatch.config.camera import IllegalParkingRule, SmokeRule, StreetVendingRule
from citywatch.hardware.camera.street.scenario import (
    SCENARIO_DIR,
    Scenario,
    ScenarioError,
    ScenarioPlayer,
    load_scenario,
    render_video,
    scenario_names,
)

SUITE_CONFIG = SCENARIO_DIR.parents[0] / "scenario-suite.yaml"
DEMO_SCENARIOS = {"street-day", "street-dusk"}
SUITE = sorted(set(scenario_names()) - DEMO_SCENARIOS)

TINY = """\
name: tiny
size: [320, 192]
fps: 5
duration_s: 1.2
seed: 1
actors:
  - id: car
    kind: car
    keys: [{t: 0, x: 0.4, lane: curb}, {t: 1.2, x: 0.4}]
  - id: puff
    kind: smoke
    grow_s: 1
    keys: [{t: 0, x: 0.7, lane: sidewalk}, {t: 1.2, x: 0.7}]
expect:
  - {kind: illegal_parking, zone: no-parking-curb, start_s: 0, end_s: 1.2, position: [0.4, 0.634], actor: car}
"""


@pytest.fixture(scope="module")
def suite_cameras() -> dict[str, object]:
    config = load_config(SUITE_CONFIG)
    return {camera.id: camera for camera in config.devices.cameras}


def write(tmp_path: Path, text: str, name: str = "scene.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_suite_has_at_least_13_scenes_and_one_camera_per_scene(
    suite_cameras: dict[str, object],
) -> None:
    """Every suite scene has its camera `cam-<scene>` reading `synthetic:<scene>`."""
    assert len(SUITE) >= 13
    assert sorted(suite_cameras) == sorted(f"cam-{name}" for name in SUITE)
    for name in SUITE:
        assert suite_cameras[f"cam-{name}"].source.url == f"synthetic:{name}"  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", sorted(scenario_names()))
def test_scenario_loads_and_its_expected_events_lie_in_their_zones(
    name: str, suite_cameras: dict[str, object]
) -> None:
    """Each expected event names a suite zone that contains its position, and the object
    stays well past the rule's dwell (or smoke window) so the scene scores unambiguously."""
    scenario = load_scenario(name)
    assert scenario.name == name
    assert scenario.seed >= 8000  # training images use render_dataset's own seed streams
    camera = suite_cameras["cam-parked-car"]
    zones = {z.name: Polygon(z.polygon) for z in camera.zones}  # type: ignore[attr-defined]
    rules = {rule.type: rule for rule in camera.rules}  # type: ignore[attr-defined]
    for event in scenario.expect:
        assert event.zone in zones
        assert zones[event.zone].contains(Point(event.position))
        assert event.end_s <= scenario.duration_s
        rule = rules[event.kind]
        if isinstance(rule, IllegalParkingRule | StreetVendingRule):
            assert event.end_s - event.start_s >= rule.dwell.total_seconds() + 15
        else:
            assert isinstance(rule, SmokeRule)
            assert event.end_s - event.start_s >= 4 * rule.window.total_seconds()


def test_suite_scene_durations_keep_the_suite_fast() -> None:
    """Suite scenes run 45–90 s; the demo scenes are two-minute loops."""
    for name in SUITE:
        assert 45 <= load_scenario(name).duration_s <= 90, name
    for name in DEMO_SCENARIOS:
        assert load_scenario(name).duration_s == 120


def test_expected_event_counts_of_the_suite() -> None:
    """The labelled truth the suite is scored against."""
    counts = {
        name: sorted(e.kind for e in load_scenario(name).expect)
        for name in ("parked-car", "occluded-parking", "two-parked", "stall-and-smoke")
    }
    assert counts == {
        "parked-car": ["illegal_parking"],
        "occluded-parking": ["illegal_parking"],
        "two-parked": ["illegal_parking", "illegal_parking"],
        "stall-and-smoke": ["smoke", "street_vending"],
    }
    for name in (
        "passing-traffic",
        "brief-stop",
        "pedestrians",
        "steam-puff",
        "night-parking-2330",
    ):
        assert load_scenario(name).expect == (), name


def test_night_parking_scenes_straddle_the_rule_schedule(suite_cameras: dict[str, object]) -> None:
    """23:30 is outside the parking rule's 07:00–22:00 schedule; 20:00 is inside."""
    rule = suite_cameras["cam-night-parking-2330"].rules[0]  # type: ignore[attr-defined]
    assert (rule.schedule.start, rule.schedule.end) == (time(7), time(22))
    late, evening = load_scenario("night-parking-2330"), load_scenario("night-parking-2000")
    assert late.start_time is not None and evening.start_time is not None
    assert late.start_time.time() == time(23, 30) and evening.start_time.time() == time(20)
    assert late.lighting == evening.lighting == "night"


def test_occluding_bus_hides_the_parked_car_for_a_few_seconds() -> None:
    """The parked car is in the truth before and after the bus stop, not while it stands."""
    player = ScenarioPlayer(load_scenario("occluded-parking"))
    car_id = next(i for i, name in player.track_names.items() if name == "parked-car")

    def car_seen(t: float) -> bool:
        return car_id in {box.track_id for box in player.frame_at(t)[1]}

    assert car_seen(20) and car_seen(45)
    assert not car_seen(31) and not car_seen(34)


def test_bare_name_and_path_load_the_same_scenario() -> None:
    """`parked-car` resolves to configs/scenarios/parked-car.yaml."""
    assert load_scenario("parked-car") == load_scenario(SCENARIO_DIR / "parked-car.yaml")
    assert load_scenario(str(SCENARIO_DIR / "parked-car.yaml")).name == "parked-car"


def test_frames_are_pure_functions_of_time(tmp_path: Path) -> None:
    """Asking twice for an instant gives the same frame; the parked car stays put."""
    player = ScenarioPlayer(load_scenario(write(tmp_path, TINY)))
    image_a, truth_a = player.frame_at(0.6)
    image_b, truth_b = player.frame_at(0.6)
    assert np.array_equal(image_a, image_b) and truth_a == truth_b
    assert image_a.shape == (192, 320, 3)
    car = [b for b in truth_a if b.class_name == "car"]
    assert len(car) == 1 and car[0].track_id == 1
    assert player.position("car", 0.6) == pytest.approx((0.4, 0.6337), abs=1e-3)
    assert player.position("car", 5.0) is None


def test_render_video_writes_video_mot_truth_and_expect(tmp_path: Path) -> None:
    """An mp4, a MOT-style CSV with class names, and the expected events as JSON lines."""
    scenario = load_scenario(write(tmp_path, TINY))
    out = render_video(scenario, tmp_path / "tiny.mp4", tmp_path / "tiny.gt.csv", progress=False)
    assert out.frames == 6
    video = cv2.VideoCapture(str(out.video))
    assert video.isOpened() and int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    video.release()
    rows = list(csv.reader(out.truth.open()))
    assert {int(r[0]) for r in rows} == set(range(1, 7))
    for row in rows:
        assert len(row) == 9 and int(row[1]) in {1, 2}
        left, top, width, height = (float(v) for v in row[2:6])
        assert left >= 0 and top >= 0 and width > 0 and height > 0
        assert row[6] == "1" and row[7] in {"car", "smoke"} and 0 < float(row[8]) <= 1
    assert out.expect == tmp_path / "tiny.gt.expect.jsonl"
    events = [json.loads(line) for line in out.expect.read_text().splitlines()]
    assert events == [
        {
            "kind": "illegal_parking",
            "zone": "no-parking-curb",
            "start_s": 0.0,
            "end_s": 1.2,
            "position": [0.4, 0.634],
        }
    ]


def test_unknown_field_error_names_file_line_and_field(tmp_path: Path) -> None:
    """A typo is reported with the file, its line and the field's path."""
    path = write(tmp_path, TINY.replace("    kind: car\n", "    kind: car\n    colr: red\n"))
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    message = str(caught.value)
    assert f"{path}:9: actors[0].colr: unknown field 'colr'" in message


def test_bad_lane_and_missing_field_are_explained(tmp_path: Path) -> None:
    """A wrong value names the field and the value; a missing field names itself."""
    bad = TINY.replace("lane: curb", "lane: kerb").replace("duration_s: 1.2\n", "")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(write(tmp_path, bad))
    message = str(caught.value)
    assert "actors[0].keys[0].lane" in message and "'kerb'" in message
    assert "required field 'duration_s' is missing" in message


def test_expectation_that_disagrees_with_the_script_is_rejected(tmp_path: Path) -> None:
    """An expected position away from the actor, or a moving 'parked' car, is an error."""
    moved = TINY.replace("position: [0.4, 0.634]", "position: [0.6, 0.634]")
    with pytest.raises(ScenarioError, match="is not where 'car' is"):
        load_scenario(write(tmp_path, moved))
    driving = TINY.replace("{t: 1.2, x: 0.4}]", "{t: 1.2, x: 0.5}]")
    with pytest.raises(ScenarioError, match="moves between start_s and end_s"):
        load_scenario(write(tmp_path, driving))


def test_missing_scenario_lists_the_known_ones() -> None:
    """A bare name that is not shipped says which ones are."""
    with pytest.raises(ScenarioError, match="parked-car"):
        load_scenario("no-such-scene")


def test_broken_yaml_names_the_line(tmp_path: Path) -> None:
    """A syntax error points at its line."""
    with pytest.raises(ScenarioError, match=r"scene.yaml:\d+: invalid YAML"):
        load_scenario(write(tmp_path, "name: x\nactors: [\n  - {id: a\n"))


def test_lighting_keys_blend_over_time() -> None:
    """A lighting timeline fades from day to night between its keys."""
    scenario = Scenario.model_validate(
        {
            "name": "fade",
            "duration_s": 10,
            "seed": 9999,
            "lighting": [{"t": 0, "preset": "day"}, {"t": 10, "preset": "night"}],
        }
    )
    player = ScenarioPlayer(scenario)
    gains = [player.lighting_at(t).gain for t in (0, 5, 10)]
    assert gains[0] > gains[1] > gains[2]
