"""The config tree: the example site loads, and every error names file, line and field."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from citywatch.config import ConfigError, load_config
from citywatch.config.checks import (
    verify_categories_reference_departments_and_tiers,
    verify_device_ids_unique,
    verify_devices_reference_known_gateways,
    verify_every_produced_kind_has_a_category,
    verify_placements_in_grid,
    verify_refreshes_come_within_the_dedup_window,
)
from citywatch.config.secrets import SecretError, resolve_secret

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "configs" / "demo-district.yaml"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A writable copy of the demo site (main file plus its included device registry)."""
    shutil.copy(DEMO, tmp_path / DEMO.name)
    shutil.copytree(REPO / "configs" / "demo-district", tmp_path / "demo-district")
    return tmp_path / DEMO.name


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"fixture text {old!r} not found"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def line_of(path: Path, needle: str) -> int:
    return next(
        i
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if needle in line
    )


def only_problem(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert len(caught.value.problems) == 1, caught.value
    return str(caught.value.problems[0])


def test_demo_site_is_complete() -> None:
    """The example site has cameras, sensors, a dock, categories and the SLA table."""
    config = load_config(DEMO)
    assert config.site.id == "demo"
    assert len(config.devices.sensors) >= 3 and config.devices.cameras and config.devices.docks
    assert {c.kind.value for c in config.workflow.categories} >= {
        "waterlogging",
        "smoke",
        "illegal_parking",
    }
    assert [level.depth_cm for level in config.waterlogging.level_policy.levels] == [15, 25, 40]


def test_yaml_syntax_error_names_file_and_line(site: Path) -> None:
    """A broken flow sequence is reported at its line, as a YAML syntax problem."""
    edit(site, "timezone: Asia/Shanghai", "timezone: [Asia/Shanghai")
    problem = only_problem(site)
    assert problem.startswith(f"{site}:{line_of(site, 'timezone:')}:")
    assert "(yaml syntax)" in problem


def test_unknown_field_in_an_included_file_names_that_file(site: Path) -> None:
    """A typo'd key in devices.yaml points at devices.yaml, its line and the field path."""
    devices = site.parent / "demo-district" / "devices.yaml"
    edit(devices, "blind_zone_cm: 25", "blind_zne_cm: 25")
    problem = only_problem(site)
    assert problem.startswith(f"{devices}:{line_of(devices, 'blind_zne_cm')}:")
    assert "devices.sensors[0].blind_zne_cm" in problem and "unknown field" in problem


def test_wrong_type_names_line_field_and_value(site: Path) -> None:
    """A word where a number belongs is reported with the offending value."""
    devices = site.parent / "demo-district" / "devices.yaml"
    edit(devices, "mount_height_cm: 250", "mount_height_cm: tall")
    problem = only_problem(site)
    assert problem.startswith(f"{devices}:{line_of(devices, 'mount_height_cm: tall')}:")
    assert "devices.sensors[1].mount_height_cm" in problem and "'tall'" in problem


def test_out_of_range_value_in_main_file(site: Path) -> None:
    """A negative hysteresis is refused at its own line."""
    edit(site, "hysteresis_cm: 2\n", "hysteresis_cm: -1\n")
    problem = only_problem(site)
    assert problem.startswith(f"{site}:{line_of(site, 'hysteresis_cm: -1')}:")
    assert "waterlogging.level_policy.hysteresis_cm" in problem


def test_missing_required_field_points_at_its_parent(site: Path) -> None:
    """Removing a required key names the key and the mapping that lacks it."""
    edit(site, "  center: {lat: 31.4300, lon: 119.4800}\n", "")
    problem = only_problem(site)
    assert "site.center" in problem and "missing" in problem
    assert problem.startswith(f"{site}:")


def test_literal_password_is_refused(site: Path) -> None:
    """Credentials must reference a secret; a literal password is an error."""
    devices = site.parent / "demo-district" / "devices.yaml"
    edit(devices, 'password: "secret:gw-sensors-east"', 'password: "hunter2"')
    assert "reference a secret" in only_problem(site)


def test_duration_strings(site: Path) -> None:
    """Durations read as '30s', '30m', '1d' and plain seconds; nonsense is refused."""
    config = load_config(site)
    assert config.waterlogging.level_policy.min_duration.total_seconds() == 30
    edit(site, "min_duration: 30s", "min_duration: soon")
    assert "not a duration" in only_problem(site)


def test_cross_check_errors_point_at_the_field(site: Path) -> None:
    """A device on an undeclared gateway is reported at its gateway line."""
    devices = site.parent / "demo-district" / "devices.yaml"
    edit(devices, "gateway: gw-dock-01", "gateway: gw-dock-02")
    problem = only_problem(site)
    assert problem.startswith(f"{devices}:{line_of(devices, 'gateway: gw-dock-02')}:")
    assert "devices.docks[0].gateway" in problem and "unknown gateway" in problem


def test_yaml_merge_keys_load_and_their_errors_name_the_line(site: Path) -> None:
    """``<<: *anchor`` works, and a mistake in merged keys is reported at the merging map's
    line, not as a crash (merged keys carry no position of their own)."""
    registry = site.parent / "demo-district" / "devices.yaml"
    merged_rule = (
        "        - <<: {type: smoke, name: open-burning, zones: [sidewalk]}\n          window: 6s\n"
    )
    edit(
        registry,
        "        - {type: smoke, name: open-burning, zones: [sidewalk], window: 6s, min_fraction: 0.5}\n",
        merged_rule,
    )
    rules = load_config(site).devices.cameras[1].rules
    assert (rules[0].name, rules[0].window.total_seconds()) == ("open-burning", 6.0)
    edit(
        registry,
        "<<: {type: smoke, name: open-burning,",
        "<<: {type: smoke, name: open-burning, windw: 3s,",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(site)
    [problem] = caught.value.problems
    assert problem.line == 98 and "windw" in str(problem)


def test_include_cycle_is_reported(tmp_path: Path) -> None:
    """Two files including each other are an error, not a hang."""
    (tmp_path / "a.yaml").write_text("include: [b.yaml]\n")
    (tmp_path / "b.yaml").write_text("include: [a.yaml]\n")
    with pytest.raises(ConfigError, match="include cycle"):
        load_config(tmp_path / "a.yaml")


def test_value_set_in_two_files_is_an_error(site: Path) -> None:
    """A scalar set in both the main file and an include names the second place."""
    devices = site.parent / "demo-district" / "devices.yaml"
    devices.write_text(devices.read_text() + "site:\n  name: twice\n")
    assert "set twice" in only_problem(site)


# -- cross-section checks, each on its own -----------------------------------------------------
def _demo_with(**sections: object):  # type: ignore[no-untyped-def]
    return load_config(DEMO).model_copy(update=sections)


def test_verify_device_ids_unique() -> None:
    """Two sensors with one id are reported at the second."""
    config = load_config(DEMO)
    devices = config.devices.model_copy(
        update={"sensors": (*config.devices.sensors, config.devices.sensors[0])}
    )
    issues = verify_device_ids_unique(config.model_copy(update={"devices": devices}))
    assert [i.path for i in issues] == [("devices", "sensors", 3, "id")]


def test_verify_devices_reference_known_gateways_of_their_kind() -> None:
    """A sensor behind a camera gateway is reported."""
    config = load_config(DEMO)
    moved = config.devices.sensors[0].model_copy(update={"gateway": "gw-cam-renmin"})
    devices = config.devices.model_copy(update={"sensors": (moved, *config.devices.sensors[1:])})
    issues = verify_devices_reference_known_gateways(config.model_copy(update={"devices": devices}))
    assert len(issues) == 1 and "camera gateway" in issues[0].message


def test_verify_placements_in_grid() -> None:
    """A community that is not in the device's street is reported."""
    config = load_config(DEMO)
    sensor = config.devices.sensors[0]
    moved = sensor.model_copy(
        update={"placement": sensor.placement.model_copy(update={"community": "c-xinhua"})}
    )
    devices = config.devices.model_copy(update={"sensors": (moved, *config.devices.sensors[1:])})
    issues = verify_placements_in_grid(config.model_copy(update={"devices": devices}))
    assert [i.path[-1] for i in issues] == ["community"]


def test_verify_categories_reference_departments_and_tiers() -> None:
    """A category owned by an undeclared department is reported."""
    config = load_config(DEMO)
    first = config.workflow.categories[0].model_copy(update={"department": "nobody"})
    workflow = config.workflow.model_copy(
        update={"categories": (first, *config.workflow.categories[1:])}
    )
    issues = verify_categories_reference_departments_and_tiers(
        config.model_copy(update={"workflow": workflow})
    )
    assert len(issues) == 1 and "nobody" in issues[0].message


def test_verify_every_produced_kind_has_a_category() -> None:
    """Sensors produce waterlogging alerts; without that category it is reported."""
    config = load_config(DEMO)
    kept = tuple(c for c in config.workflow.categories if c.kind.value != "waterlogging")
    workflow = config.workflow.model_copy(update={"categories": kept})
    issues = verify_every_produced_kind_has_a_category(
        config.model_copy(update={"workflow": workflow})
    )
    assert any("waterlogging" in i.message for i in issues)


def test_verify_refreshes_come_within_the_dedup_window() -> None:
    """A held flood or parked car refreshed less often than its kind's dedup window would
    age out while it lasts: refused once at the field, for the site policy and a camera rule."""
    from datetime import timedelta

    config = load_config(DEMO)
    assert verify_refreshes_come_within_the_dedup_window(config) == []
    policy = config.waterlogging.level_policy.model_copy(
        update={"update_every": timedelta(hours=2)}
    )
    waterlogging = config.waterlogging.model_copy(update={"level_policy": policy})
    camera = config.devices.cameras[0]
    rule = camera.rules[0].model_copy(update={"update_every": timedelta(hours=3)})
    cameras = (
        camera.model_copy(update={"rules": (rule, *camera.rules[1:])}),
        *config.devices.cameras[1:],
    )
    devices = config.devices.model_copy(update={"cameras": cameras})
    issues = verify_refreshes_come_within_the_dedup_window(
        config.model_copy(update={"waterlogging": waterlogging, "devices": devices})
    )
    assert [i.path for i in issues] == [
        ("waterlogging", "level_policy", "update_every"),
        ("devices", "cameras", 0, "rules", 0, "update_every"),
    ]
    # Sensors refresh fault tickets at the same pace: the tighter device_fault window counts.
    assert "not shorter than the device_fault dedup window (1:00:00)" in issues[0].message


def test_secret_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """env:, file: and secret: references resolve; a missing one says where it looked."""
    monkeypatch.setenv("CW_TEST_SECRET", "s3")
    (tmp_path / "gw").write_text("from-dir\n")
    assert resolve_secret("env:CW_TEST_SECRET", None) == "s3"
    assert resolve_secret(f"file:{tmp_path / 'gw'}", None) == "from-dir"
    assert resolve_secret("secret:gw", tmp_path) == "from-dir"
    with pytest.raises(SecretError, match="nope"):
        resolve_secret("secret:nope", tmp_path)


# -- the CLI -------------------------------------------------------------------------------------
def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "citywatch.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )


@pytest.mark.service
def test_config_check_passes_on_the_shipped_configs() -> None:
    """`citywatch config check configs/*.yaml` exits 0."""
    files = sorted(str(p) for p in (REPO / "configs").glob("*.yaml"))
    result = run_cli("config", "check", *files)
    assert result.returncode == 0, result.stderr


@pytest.mark.service
def test_config_check_fails_with_file_and_line(site: Path) -> None:
    """A broken file makes `config check` exit 1 and print FILE:LINE."""
    edit(site, "hysteresis_cm: 2\n", "hysteresis_cm: -1\n")
    result = run_cli("config", "check", str(site))
    assert result.returncode == 1
    assert f"{site}:{line_of(site, 'hysteresis_cm: -1')}:" in result.stderr


@pytest.mark.service
def test_config_schema_is_json_schema() -> None:
    """`citywatch config schema` prints a JSON Schema with the top-level sections."""
    import json

    result = run_cli("config", "schema")
    schema = json.loads(result.stdout)
    assert {"site", "devices", "workflow", "services"} <= set(schema["properties"])


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            'hours: [["09:00", "12:00"], ["13:30", "17:30"]]',
            'hours: [["09:00", "12:00"], ["11:30", "17:30"]]',
            "overlap",
        ),
        (
            'hours: [["09:00", "12:00"], ["13:30", "17:30"]]',
            'hours: [["12:00", "09:00"]]',
            "ends before",
        ),
        ("workdays: [mon, tue, wed, thu, fri]", "workdays: []", "working day"),
        (
            "{id: simple, limit: 1d, label: 简易 1 day}",
            "{id: simple, limit: 0s, label: none}",
            "longer than zero",
        ),
    ],
    ids=["overlapping periods", "reversed period", "no workdays", "zero limit"],
)
def test_unusable_sla_calendar_is_refused_at_load(
    site: Path, old: str, new: str, message: str
) -> None:
    """A calendar or tier the SLA clock cannot run on is a config error, not a runtime loop."""
    edit(site, old, new)
    assert message in only_problem(site)


def test_center_user_with_a_plain_token_is_refused_at_its_line(site: Path) -> None:
    """A token written into the YAML (not a secret reference) names the file, line and field."""
    edit(site, 'token: "secret:center-viewer"', 'token: "let-me-in"')
    problem = only_problem(site)
    assert problem.startswith(f"{site}:{line_of(site, 'let-me-in')}:")
    assert "center.users[2].token" in problem and "never hold it" in problem
