"""``citywatch config check`` words each mistake once, for people, with the nearest valid name."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from citywatch.cli.main import app
from citywatch.config.problem_wording import did_you_mean, field_names_at, nearest
from citywatch.config.tree import CitywatchConfig

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "configs" / "demo-district.yaml"
PYDANTIC_WORDING = (
    "Input should",
    "Input tag",
    "Value error",
    "after validation",
    "Field required",
)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A writable copy of the demo site (main file plus its included device registry)."""
    shutil.copy(DEMO, tmp_path / DEMO.name)
    shutil.copytree(REPO / "configs" / "demo-district", tmp_path / "demo-district")
    return tmp_path / DEMO.name


def devices_of(site: Path) -> Path:
    return site.parent / "demo-district" / "devices.yaml"


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"fixture text {old!r} not found"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def line_of(path: Path, needle: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if needle in line)


def check(site: Path) -> tuple[int, list[str]]:
    """Exit code and the problem lines of `citywatch config check SITE`."""
    result = CliRunner().invoke(app, ["config", "check", str(site)])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert all(line.startswith("✗ ") for line in lines), result.stderr
    return result.exit_code, lines


def test_typo_inside_a_yaml_anchor_is_reported_once(site: Path) -> None:
    """A misspelt key in zones shared by three cameras through *street-zones is one line."""
    devices = devices_of(site)
    edit(devices, "- {name: sidewalk, polygon:", "- {name: sidewalk, polgon:")
    code, lines = check(site)
    assert code == 1
    assert lines == [
        f"✗ {devices}:{line_of(devices, 'polgon')}:"
        f"{line_of_column(devices, 'polgon')}: devices.cameras[0].zones[1].polgon:"
        " unknown field 'polgon': did you mean 'polygon'? (in a YAML anchor used 3 times)"
    ]


def line_of_column(path: Path, needle: str) -> int:
    line = path.read_text(encoding="utf-8").splitlines()[line_of(path, needle) - 1]
    return line.index(needle) + 1


def test_unknown_key_suggests_the_nearest_field_and_lists_them_when_none_is_near(
    site: Path,
) -> None:
    """`lop` → did you mean 'loop'; a word near no field lists the fields of that section."""
    devices = devices_of(site)
    edit(devices, "detect_fps: 2, loop: true", "detect_fps: 2, lop: true")
    code, lines = check(site)
    assert code == 1
    assert lines == [
        f"✗ {devices}:{line_of(devices, 'lop:')}:{line_of_column(devices, 'lop:')}:"
        " devices.cameras[1].source.lop: unknown field 'lop': did you mean 'loop'?"
    ]
    edit(devices, "lop: true", "xyzzy: true")
    _, lines = check(site)
    assert len(lines) == 1 and "unknown field 'xyzzy'; the fields here are: " in lines[0]
    assert "detect_fps" in lines[0] and "did you mean" not in lines[0]


def test_wrong_rule_type_points_at_the_type_key_and_suggests_the_right_one(site: Path) -> None:
    """`type: ilegal_parking` names the type key's line, the nearest type and every type."""
    devices = devices_of(site)
    edit(devices, "{type: illegal_parking,", "{type: ilegal_parking,")
    code, lines = check(site)
    assert code == 1
    assert lines == [
        f"✗ {devices}:{line_of(devices, 'ilegal_parking')}:"
        f"{line_of_column(devices, 'ilegal_parking') - 6}: devices.cameras[0].rules[0].type:"
        " unknown type 'ilegal_parking': did you mean 'illegal_parking'? (type is one of:"
        " illegal_parking, street_vending, smoke) (in a YAML anchor used 2 times)"
    ]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("kind: dock", "kind: dok",
         "devices.gateways[3].kind: 'dok' is not allowed here: did you mean 'dock'?"
         " (one of: camera, sensor, dock)"),
        ("{name: sidewalk, polygon: [[0.0, 0.7029], [1.0, 0.7029], [1.0, 1.0], [0.0, 1.0]]}",
         "{name: sidewalk, polygon: [[0.0, 0.7029], [1.0, 0.7029]]}",
         "devices.cameras[0].zones[1].polygon: needs at least 3 entries, has 2"
         " (in a YAML anchor used 3 times)"),
        ("dwell: 30s}\n\n", "dwell: 30 sec}\n\n",
         "devices.cameras[1].rules[1].dwell: '30 sec' is not a duration: write e.g. 90"
         " (seconds), '30m', '4h' or '3d'"),
        ("mount_height_cm: 280", "mount_height_cm: -5",
         "devices.sensors[2].mount_height_cm: must be greater than 0 (got -5)"),
        ("detect_fps: 2, loop: true", "detect_fps: fast, loop: true",
         "devices.cameras[1].source.detect_fps: must be a number (got 'fast')"),
        ("detect_fps: 2, loop: true", "detect_fps: 2, loop: maybe",
         "devices.cameras[1].source.loop: must be true or false (got 'maybe')"),
    ],
    ids=["enum", "too-few-points", "duration", "bound", "number", "boolean"],
)  # fmt: skip
def test_validator_errors_are_worded_for_people(
    site: Path, old: str, new: str, expected: str
) -> None:
    """Each pydantic error type reads as a sentence about the setting, not the validator."""
    edit(devices_of(site), old, new)
    code, lines = check(site)
    assert code == 1
    assert len(lines) == 1 and lines[0].endswith(expected), lines
    assert not any(phrase in lines[0] for phrase in PYDANTIC_WORDING), lines[0]


def test_valid_config_checks_clean() -> None:
    """The demo site passes with a tick on stdout and exit 0."""
    result = CliRunner().invoke(app, ["config", "check", str(DEMO)])
    assert result.exit_code == 0 and result.stdout.startswith("✓ ") and not result.stderr


def test_nearest_only_suggests_a_close_name() -> None:
    """A near miss (or a case slip) is suggested; an unrelated word is not."""
    fields = ["dwell", "zones", "schedule"]
    assert nearest("dwel", fields) == "dwell"
    assert nearest("ZONES", ["Zones", "other"]) == "Zones"
    assert nearest("banana", fields) is None
    assert did_you_mean(3, fields) == ""


def test_field_names_follow_the_discriminated_union_of_rules() -> None:
    """The fields offered under a rule are those of its own type (a smoke rule has a window)."""
    data = {"devices": {"cameras": [{"rules": [{"type": "smoke"}, {"type": "illegal_parking"}]}]}}
    smoke = field_names_at(CitywatchConfig, data, ("devices", "cameras", 0, "rules", 0))
    parking = field_names_at(CitywatchConfig, data, ("devices", "cameras", 0, "rules", 1))
    assert "window" in smoke and "window" not in parking and "dwell" in parking


def test_rule_without_a_type_lists_the_types(site: Path) -> None:
    """A rule with no `type:` says to add one and which there are."""
    devices = devices_of(site)
    old = "{type: smoke, name: open-burning, zones: [sidewalk], window: 6s, min_fraction: 0.5}"
    edit(devices, old, "{name: open-burning, zones: [sidewalk], window: 6s, min_fraction: 0.5}")
    code, lines = check(site)
    assert code == 1
    assert len(lines) == 1 and lines[0].endswith(
        "devices.cameras[1].rules[0]: has no type: add `type:` to say which kind of entry this"
        " is (illegal_parking, street_vending, smoke)"
    )


def test_reference_to_an_undeclared_gateway_suggests_the_nearest(site: Path) -> None:
    """A cross-section check (a device's gateway) lists what is declared and the near miss."""
    devices = devices_of(site)
    edit(devices, "gateway: gw-cam-hebin\n", "gateway: gw-cam-hebn\n")
    code, lines = check(site)
    assert code == 1
    assert len(lines) == 1 and lines[0].endswith(
        "devices.cameras[2].gateway: unknown gateway 'gw-cam-hebn' (declared: gw-cam-hebin,"
        " gw-cam-renmin, gw-dock-01, gw-sensors-east): did you mean 'gw-cam-hebin'?"
    )
