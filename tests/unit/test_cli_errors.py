"""Every expected error of the CLI is one line saying what is wrong and what to do, with a
non-zero exit; only ``--debug`` shows the traceback."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from citywatch.cli.errors import explain
from citywatch.cli.main import app

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "configs" / "demo-district.yaml"
ROW = "1,1,100,400,200,100,0.9,car\n"


def citywatch(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The real command in a subprocess: commands that set up logging or signal handlers."""
    return subprocess.run(
        [sys.executable, "-m", "citywatch.cli.main", *args],
        capture_output=True, text=True, cwd=REPO, timeout=timeout,
    )  # fmt: skip


def one_line(stderr: str) -> str:
    """The single error line of a failed command (and nothing like a traceback)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("✗ ") and "Traceback" not in stderr, stderr
    return lines[0]


def replay(tmp_path: Path, rows: str, *extra: str) -> tuple[Path, Result]:
    """`edge replay` of cam-renmin-101 over a detection file holding ``rows``."""
    detections = tmp_path / "det.csv"
    detections.write_text(rows)
    result = CliRunner().invoke(
        app,
        ["edge", "replay", "--config", str(DEMO), "--camera", "cam-renmin-101",
         "--detections", str(detections), "--out", str(tmp_path / "out.jsonl"), *extra],
        prog_name="citywatch",
    )  # fmt: skip
    return detections, result


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def listening() -> Iterator[int]:
    """A port some other process already listens on."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield int(taken.getsockname()[1])


@pytest.mark.service
def test_center_serve_without_a_stack_says_to_start_it(tmp_path: Path) -> None:
    """No embedded stack running: one line naming `citywatch stack up`, exit 1."""
    result = citywatch("center", "serve", "--data-dir", str(tmp_path))
    line = one_line(result.stderr)
    assert result.returncode == 1
    assert line == (
        f"✗ the embedded stack in {tmp_path / 'stack'} is not running: start it with"
        " `citywatch stack up` (or point services.* at external URLs)"
    )


@pytest.mark.service
def test_edge_camera_without_a_stack_says_to_start_it(tmp_path: Path) -> None:
    """A camera gateway with no broker to reach gets the same one line, not a traceback."""
    result = citywatch("edge", "camera", "-g", "gw-cam-renmin", "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert "`citywatch stack up`" in one_line(result.stderr)


@pytest.mark.service
def test_debug_flag_shows_the_traceback(tmp_path: Path) -> None:
    """`--debug` (global, before the command) gives the full traceback instead."""
    result = citywatch("--debug", "center", "serve", "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert "Traceback" in result.stderr or "EndpointError" in result.stderr


@pytest.mark.service
def test_center_serve_with_the_database_down_is_one_line(tmp_path: Path) -> None:
    """--database-url at a closed port: one line naming the address, not 42 lines of
    OperationalError; and --database-url alone needs no embedded stack."""
    port = free_port()
    url = f"postgresql://citywatch@127.0.0.1:{port}/citywatch"
    result = citywatch(
        "center", "serve", "--data-dir", str(tmp_path), "--database-url", url,
        "--port", str(free_port()),
    )  # fmt: skip
    line = one_line(result.stderr)
    assert result.returncode == 1
    assert line.startswith(
        f'✗ cannot reach the database (connection to server at "127.0.0.1", port {port} failed:'
    )
    assert line.endswith(
        "start the stack with `citywatch stack up`, or fix services.database.url"
        " (center serve: --database-url)"
    )


@pytest.mark.service
def test_center_serve_on_a_taken_port_fails_before_saying_ready(
    tmp_path: Path, listening: int
) -> None:
    """A taken port is found before the ready line: no "command center on …", no Errno 98."""
    result = citywatch(
        "center", "serve", "--data-dir", str(tmp_path), "--port", str(listening),
        "--database-url", "postgresql://citywatch@127.0.0.1:1/citywatch",
    )  # fmt: skip
    assert result.returncode == 1
    assert "command center on" not in result.stdout
    assert one_line(result.stderr) == (
        f"✗ port {listening} on 127.0.0.1 is already in use (another center?): stop that"
        " process, or serve on another port with --port"
    )


def test_replay_with_a_truth_file_that_is_not_json_lines(tmp_path: Path) -> None:
    """A wrong --truth file (here a detection CSV) names file:line and what a truth file is,
    before any replay runs."""
    detections, result = replay(tmp_path, ROW, "--truth", str(tmp_path / "det.csv"))
    assert result.exit_code == 2
    assert one_line(result.stderr) == (
        f"✗ {detections}:1: not valid JSON: Extra data (a truth file holds one JSON event per"
        " line, as `citywatch sim camera` writes them to *.truth.jsonl)"
    )
    assert not (tmp_path / "out.jsonl").exists()


def test_replay_with_a_missing_truth_file(tmp_path: Path) -> None:
    """A --truth path that does not exist: the path and 'no such file', exit 2."""
    missing = tmp_path / "truth.jsonl"
    _, result = replay(tmp_path, ROW, "--truth", str(missing))
    assert result.exit_code == 2
    assert one_line(result.stderr) == f"✗ {missing}: no such file or directory (check the path)"


def test_detect_with_missing_weights_names_the_path(tmp_path: Path) -> None:
    """A camera whose weights are not there: one line with the path, exit 2."""
    shutil.copy(DEMO, tmp_path / DEMO.name)
    shutil.copytree(REPO / "configs" / "demo-district", tmp_path / "demo-district")
    devices = tmp_path / "demo-district" / "devices.yaml"
    weights = tmp_path / "nowhere" / "street.onnx"
    text = devices.read_text(encoding="utf-8")
    anchor = '      source: {url: "synthetic:street-day", detect_fps: 4, loop: true}\n'
    assert anchor in text
    devices.write_text(
        text.replace(anchor, anchor + f"      detector: {{weights: {weights}}}\n", 1),
        encoding="utf-8",
    )
    result = CliRunner().invoke(
        app,
        ["edge", "detect", "--config", str(tmp_path / DEMO.name), "--camera", "cam-renmin-101",
         "--video", str(tmp_path / "clip.mp4"), "--out", str(tmp_path / "det.csv")],
    )  # fmt: skip
    assert result.exit_code == 2
    line = one_line(result.stderr)
    assert str(weights) in line and "weights" in line


def test_detect_on_a_video_that_is_not_there(tmp_path: Path) -> None:
    """`edge detect --video` at a missing file: one line naming it, exit 2."""
    video = tmp_path / "clip.mp4"
    result = CliRunner().invoke(
        app,
        ["edge", "detect", "--config", str(DEMO), "--camera", "cam-renmin-101",
         "--video", str(video), "--out", str(tmp_path / "det.csv")],
    )  # fmt: skip
    assert result.exit_code == 2
    assert str(video) in one_line(result.stderr)


def test_unexpected_errors_keep_their_traceback() -> None:
    """Only the table's exceptions are expected: a bug (KeyError, a bare OSError) is not."""
    assert explain(KeyError("x")) is None
    assert explain(OSError("no filename")) is None
    assert explain(FileNotFoundError(2, "No such file", "/x")) == (
        "/x: no such file or directory (check the path)",
        2,
    )


@pytest.mark.service
def test_stream_replay_reports_each_bad_line_once_and_fails_unless_told_to_skip(
    tmp_path: Path,
) -> None:
    """Two bad lines: each printed once as FILE:LINE, exit 1; with --skip-bad, exit 0."""
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_text('not json\n{"a": 1}\n')
    args = ("stream", "replay", "--config", str(DEMO), "--alerts", str(alerts),
            "--out", str(tmp_path / "orders.jsonl"))  # fmt: skip
    failed = citywatch(*args)
    assert failed.returncode == 1
    lines = failed.stderr.splitlines()
    assert [line.split(": ")[0] for line in lines] == [
        f"! {alerts}:1",
        f"! {alerts}:2",
        "✗ 2 bad line(s) in " + str(alerts),
    ]
    assert lines[-1] == (
        f"✗ 2 bad line(s) in {alerts}: fix them, or pass --skip-bad to accept a replay without them"
    )
    skipped = citywatch(*args, "--skip-bad")
    assert skipped.returncode == 0
    assert skipped.stderr.count(f"{alerts}:1:") == 1 and "✗" not in skipped.stderr


def test_replay_warns_when_start_puts_a_rule_outside_its_schedule(tmp_path: Path) -> None:
    """A 07:00–22:00 rule replayed from 23:30 local says so, and what --start to give."""
    detections = tmp_path / "det.csv"
    detections.write_text("1,1,100,400,200,100,0.9,car\n250,1,100,400,200,100,0.9,car\n")
    args = ["edge", "replay", "--config", str(REPO / "configs" / "scenario-suite.yaml"),
            "--camera", "cam-parked-car", "--detections", str(detections),
            "--out", str(tmp_path / "out.jsonl")]  # fmt: skip
    night = CliRunner().invoke(app, [*args, "--start", "2026-05-12T23:30:00+08:00"])
    assert night.exit_code == 0
    assert one_line(night.stderr.replace("! ", "✗ ", 1)) == (
        "✗ rule 'curb-parking' is scheduled 07:00–22:00 but the replay runs 2026-05-12"
        " 23:30:00–23:30:10 local time, so it was never active: pass --start with the time the"
        " recording was made (ISO 8601, e.g. 2026-05-12T09:00:00+08:00)"
    )
    day = CliRunner().invoke(app, [*args, "--start", "2026-05-12T12:00:00+08:00"])
    assert day.exit_code == 0 and not day.stderr


def test_unknown_scenario_lists_the_known_ones() -> None:
    """`sim camera` with a scenario that does not exist: one line listing those that do."""
    result = CliRunner().invoke(app, ["sim", "camera", "no-such-scene", "--out", "/tmp/x"])
    assert result.exit_code == 2
    line = one_line(result.stderr)
    assert "no-such-scene.yaml: no such scenario file (known scenarios: brief-stop," in line


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--start", "yesterday"],
         "✗ Invalid value for --start: 'yesterday' is not an ISO 8601 time: write e.g."
         " 2026-05-12T09:00:00+08:00 (see `citywatch edge replay --help`)"),
        (["--size", "12"],
         "✗ Invalid value for --size: '12' is not a frame size: write WIDTHxHEIGHT, e.g."
         " 1280x720 (see `citywatch edge replay --help`)"),
    ],
    ids=["start", "size"],
)  # fmt: skip
def test_replay_option_mistakes_are_one_line(
    tmp_path: Path, extra: list[str], expected: str
) -> None:
    """A malformed --start or --size: one line naming the option and the form it takes."""
    _, result = replay(tmp_path, ROW, *extra)
    assert result.exit_code == 2
    assert one_line(result.stderr) == expected


def test_replay_of_a_malformed_detection_file_names_its_line(tmp_path: Path) -> None:
    """A detection file row with too few columns: file:line and the columns it needs."""
    detections, result = replay(tmp_path, "1,1,100\n")
    assert result.exit_code == 2
    assert one_line(result.stderr) == (
        f"✗ {detections}:1: 3 columns, need 8 or 9"
        " (expected frame,id,left,top,width,height,conf,class[,visibility])"
    )


@pytest.fixture
def external_site(tmp_path: Path) -> Path:
    """The demo site pointed at services on closed loopback ports (nothing embedded)."""
    shutil.copytree(REPO / "configs" / "demo-district", tmp_path / "demo-district")
    text = DEMO.read_text(encoding="utf-8")
    for old, new in (
        ("mqtt: {url: embedded}", 'mqtt: {url: "mqtt://127.0.0.1:1"}'),
        ("kafka: {bootstrap: embedded}", 'kafka: {bootstrap: "127.0.0.1:2"}'),
        ("database: {url: embedded}", 'database: {url: "postgresql://citywatch@127.0.0.1:3/x"}'),
    ):
        assert old in text
        text = text.replace(old, new)
    (tmp_path / DEMO.name).write_text(text, encoding="utf-8")
    return tmp_path / DEMO.name


@pytest.mark.service
def test_a_missing_secret_says_where_it_was_looked_for(external_site: Path) -> None:
    """The bridge's MQTT password file is not there: one line with the path, exit 2."""
    data_dir = external_site.parent / "data"
    result = citywatch("stream", "bridge", "-c", str(external_site), "--data-dir", str(data_dir))
    assert result.returncode == 2
    assert one_line(result.stderr) == (
        f"✗ cannot read secret 'secret:mqtt-bridge' from {data_dir}/secrets/mqtt-bridge: No"
        " such file or directory (`citywatch stack up` writes the stack's secret: files; for"
        " env: and file: references set the variable or create the file)"
    )


@pytest.mark.service
def test_kafka_down_is_one_line(external_site: Path) -> None:
    """The bridge with Kafka unreachable ends in one line naming services.kafka.bootstrap."""
    data_dir = external_site.parent / "data"
    (data_dir / "secrets").mkdir(parents=True)
    (data_dir / "secrets" / "mqtt-bridge").write_text("pw")
    result = citywatch("stream", "bridge", "-c", str(external_site), "--data-dir", str(data_dir))
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("✗")]
    assert errors == [
        "✗ cannot reach Kafka (Unable to bootstrap from [('127.0.0.1', 2,"
        " <AddressFamily.AF_INET: 2>)]): start the stack with `citywatch stack up`, or fix"
        " services.kafka.bootstrap"
    ]
    assert "Traceback" not in result.stderr
