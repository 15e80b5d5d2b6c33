"""The learning loop's back half on stand-in ONNX models (constant boxes, no torch): the
back-test's figures and verdict, a rollout refused on regression and allowed with --force,
and a rollout that rewrites only the named cameras' weights, which a running gateway's hot
reload picks up and a rollback undoes."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from citywatch.cli.main import app
from citywatch.config import load_config
from citywatch.config.detector import DetectorConfig
from citywatch.models.backtest_scoring import ClassScore, ModelScore, VerdictRule, judge
from citywatch.models.config_weights import ConfigEditError, DetectorSlot, planned_texts
from citywatch.models.model_backtest import run_backtest
from citywatch.models.model_registry import (
    FileRef,
    ModelRecord,
    now,
    read_record,
    sha256_file,
    write_record,
)
from tests.conftest import REPO
from tests.unit.test_detectors import FAKE_ANCHORS, FAKE_NAMES, fake_yolo_onnx

runner = CliRunner()
NAMES = list(FAKE_NAMES.values())  # automobile, truck, smoke
CAR_BOX = (80, 80, 120, 120)  # FAKE_ANCHORS' automobile, in pixels of a 320 × 320 image
SMOKE_BOX = (270, 180, 330, 220)


def _standin(path: Path, tag: str, blind: bool = False) -> Path:
    """The constant-box model of test_detectors (or, ``blind``, one that sees nothing),
    tagged in its metadata so that each stand-in is other weights (another sha256)."""
    import onnx
    from onnx import numpy_helper

    fake_yolo_onnx(path, dynamic=True)
    model = onnx.load(str(path))
    if blind:
        table = np.array(FAKE_ANCHORS, np.float32).T[None]
        table[:, 4:] = 0.0
        anchors = next(i for i in model.graph.initializer if i.name == "anchors")
        anchors.CopyFrom(numpy_helper.from_array(table, "anchors"))
    model.metadata_props.add(key="standin", value=tag)
    onnx.save(model, str(path))
    return path


def _version(directory: Path, weights: Path, parent: Path) -> Path:
    """A model version directory holding ``weights`` as its ONNX, with its model.json."""
    directory.mkdir(parents=True)
    onnx = shutil.copy(weights, directory / "model.onnx")
    record = ModelRecord(
        name=directory.name.rsplit("-v", 1)[0],
        version=int(directory.name.rsplit("-v", 1)[1]),
        created=now(),
        files={"onnx": FileRef(path="model.onnx", sha256=sha256_file(Path(onnx)))},
        names=NAMES,
        imgsz=320,
        parent=FileRef(path=str(parent), sha256=sha256_file(parent)),
    )
    write_record(directory, record)
    return directory


def _dataset(root: Path) -> Path:
    """Six verdict images: five confirmed (a car and smoke each), one hard negative."""
    for sub in ("images/val", "labels/val", "images/train", "labels/train"):
        (root / sub).mkdir(parents=True)
    image = np.full((320, 320, 3), 90, np.uint8)

    def row(cls: int, box: tuple[int, int, int, int]) -> str:
        x0, y0, x1, y1 = box
        return f"{cls} {(x0 + x1) / 640} {(y0 + y1) / 640} {(x1 - x0) / 320} {(y1 - y0) / 320}"

    confirmed = [row(0, CAR_BOX), row(2, SMOKE_BOX)]
    for name, rows in [*((n, confirmed) for n in "abcde"), ("fp", [])]:
        cv2.imwrite(str(root / "images" / "val" / f"{name}.png"), image)
        (root / "labels" / "val" / f"{name}.txt").write_text("\n".join(rows))
    (root / "data.yaml").write_text(
        f"path: {root}\ntrain: images/train\nval: images/val\nnames: {FAKE_NAMES}\n"
    )
    (root / "manifest.json").write_text('{"content_sha256": "d4t4", "counts": {"images": 3}}')
    return root / "data.yaml"


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The current model, a blind candidate and a twin candidate (same boxes), a dataset."""
    root = tmp_path_factory.mktemp("loop")
    current = _standin(root / "current.onnx", "current")
    return {
        "current": current,
        "blind": _version(root / "blind-v2", _standin(root / "b.onnx", "blind", True), current),
        "twin": _version(root / "twin-v2", _standin(root / "t.onnx", "twin"), current),
        "data": _dataset(root / "dataset"),
    }


def test_backtest_counts_recall_on_confirmed_boxes_and_false_alarms_on_negatives(
    loop: dict[str, Path],
) -> None:
    """The constant model finds both cars and both plumes; its truck (no truck was confirmed)
    and what it reports on the hard negative are false alarms; a blind model is worse."""
    entry = DetectorConfig(backend="onnx", imgsz=320, confidence=0.25)
    result = run_backtest(
        loop["blind"] / "model.onnx", loop["current"], loop["data"], entry, VerdictRule()
    )
    old, new = result.current_score, result.candidate_score
    assert (old.images, old.negatives) == (6, 1)
    assert old.classes["automobile"] == ClassScore(boxes=5, found=5, false_alarms=1)
    assert old.classes["smoke"] == ClassScore(boxes=5, found=5, false_alarms=1)
    assert old.classes["truck"] == ClassScore(boxes=0, found=0, false_alarms=6)
    assert old.false_alarms == 8 and old.precision == pytest.approx(10 / 18)
    assert new.recall == 0.0 and new.false_alarms == 0
    assert result.verdict.verdict == "worse"
    assert result.verdict.reasons == [
        "automobile recall 1.00 → 0.00 (5 boxes)",
        "smoke recall 1.00 → 0.00 (5 boxes)",
        "recall over all classes 1.00 → 0.00",
    ]
    assert result.dataset.content_hash == "d4t4"


@pytest.mark.parametrize(
    ("found", "alarms", "verdict"),
    [(10, 2, "same"), (11, 2, "same"), (12, 2, "better"), (8, 2, "worse"), (10, 3, "worse"),
     (10, 1, "better")],
)  # fmt: skip
def test_verdict_rule_on_recall_and_false_alarms(found: int, alarms: int, verdict: str) -> None:
    """Against 10 of 20 cars found and 2 false alarms: recall may move by the tolerance
    (0.05: one box of 20), one more false alarm is worse, one fewer better; a class with
    fewer boxes than min_boxes (smoke, 1 of 2 lost) is judged only within the pooled recall."""

    def score(found: int, alarms: int, smoke: int) -> ModelScore:
        return ModelScore(
            classes={
                "car": ClassScore(boxes=20, found=found, false_alarms=alarms),
                "smoke": ClassScore(boxes=2, found=smoke),
            }
        )

    assert judge(score(found, alarms, 1), score(10, 2, 2), VerdictRule()).verdict == verdict


CAMERAS = """\
# The site's cameras: comments, anchors and flow maps survive a rollout.
devices:
  gateways:
    - {{id: gw-suite, kind: camera, credentials: {{password: "secret:gw-suite"}}}}
  cameras:
    - id: cam-a  # the corner
      gateway: gw-suite
      placement: {{district: d-suite, street: s-suite, community: c-suite}}
      source: {{url: "synthetic:parked-car", detect_fps: 5}}
      detectors:
        - weights: {current}  # vehicles and smoke
          imgsz: 320
        - {{backend: classical}}
      zones: &zones
        - {{name: curb, polygon: [[0.0, 0.58], [0.75, 0.58], [0.75, 0.70], [0.0, 0.70]]}}
      rules: &rules
        - {{type: smoke, name: burning, zones: [curb], classes: [smoke], update_every: 1m}}
    - id: cam-b
      gateway: gw-suite
      placement: {{district: d-suite, street: s-suite, community: c-suite}}
      source: {{url: "synthetic:passing-traffic", detect_fps: 5}}
      detector: {{weights: "{current}", confidence: 0.3}}  # kept as it is
      zones: *zones
      rules: *rules
"""


def _site(tmp_path: Path, current: Path) -> Path:
    shutil.copy(REPO / "configs" / "scenario-suite.yaml", tmp_path / "site.yaml")
    (tmp_path / "scenario-suite").mkdir()
    (tmp_path / "scenario-suite" / "cameras.yaml").write_text(CAMERAS.format(current=current))
    return tmp_path / "site.yaml"


def _rollout(candidate: Path, site: Path, *extra: str) -> tuple[int, str, str]:
    store = site.parent / "deployed"
    result = runner.invoke(
        app, ["model", "rollout", str(candidate), "--config", str(site), "--camera", "cam-a",
              "--store", str(store), *extra],
    )  # fmt: skip
    return result.exit_code, result.stdout, result.stderr


def test_rollout_of_a_worse_model_is_refused_and_forced_loudly(
    tmp_path: Path, loop: dict[str, Path]
) -> None:
    """Without a back-test, and with one that says worse, nothing changes (exit 1); --force
    rewrites the camera's weights, says so on stderr and records it in model.json."""
    site = _site(tmp_path, loop["current"])
    candidate = tmp_path / "blind-v2"
    shutil.copytree(loop["blind"], candidate)
    cameras = site.parent / "scenario-suite" / "cameras.yaml"
    before = cameras.read_text()
    code, _, stderr = _rollout(candidate, site)
    assert code == 1 and "no back-test against" in stderr and cameras.read_text() == before
    code, _, stderr = _rollout(candidate, site, "--data", str(loop["data"]))
    assert code == 1 and "says worse: automobile recall 1.00 → 0.00" in stderr
    assert cameras.read_text() == before
    code, stdout, stderr = _rollout(candidate, site, "--force", "--reason", "night shift test")
    assert code == 0, stdout + stderr
    assert "FORCED rollout of blind-v2" in stderr
    record = read_record(candidate)
    assert [b.verdict for b in record.backtests] == ["worse"]
    assert record.rollouts[-1].forced and record.rollouts[-1].reason == "night shift test"
    assert (
        "blind-v2-" in cameras.read_text() and "FORCED" in (candidate / "MODEL_CARD.md").read_text()
    )


@pytest.mark.slow
def test_rollout_rewrites_only_the_named_cameras_weights_and_the_gateway_reloads_it(
    tmp_path: Path, loop: dict[str, Path]
) -> None:
    """A twin that back-tests the same goes to cam-a alone: one line of the file changes,
    the config still loads, the running gateway's check_reload hands cam-a the new model,
    `model list` shows cam-a on it; a rollback puts the file back as it was."""
    from citywatch.edge.camera.agent import CameraGateway
    from tests.unit.test_camera_agent import Collected

    site = _site(tmp_path, loop["current"])
    candidate = tmp_path / "twin-v2"
    shutil.copytree(loop["twin"], candidate)
    cameras = site.parent / "scenario-suite" / "cameras.yaml"
    before = cameras.read_text()
    gateway = CameraGateway(load_config(site), "gw-suite", Collected(), config_path=site)
    code, stdout, stderr = _rollout(candidate, site, "--data", str(loop["data"]))
    assert code == 0, stdout + stderr
    assert "verdict: same" in stdout and "cam-a:" in stdout and "cam-b" not in stdout
    stored = next((tmp_path / "deployed").glob("twin-v2-*.onnx"))
    changed = [(a, b) for a, b in zip(before.splitlines(), cameras.read_text().splitlines(),
                                       strict=True) if a != b]  # fmt: skip
    assert changed == [(f"        - weights: {loop['current']}  # vehicles and smoke",
                        f"        - weights: {stored}  # vehicles and smoke")]  # fmt: skip
    config = load_config(site)
    assert config.devices.cameras[0].detectors[0].weights == stored
    assert gateway.check_reload()
    pending = gateway.workers["cam-a"]._pending
    assert pending is not None and pending[0].detectors[0].weights == stored
    assert gateway.workers["cam-b"]._pending is None
    listed = runner.invoke(app, ["model", "list", "--registry", str(tmp_path), "-c", str(site)])
    row = next(line for line in listed.stdout.splitlines() if "twin-v2" in line)
    assert "cam-a" in row and "cam-b" not in listed.stdout
    result = runner.invoke(app, ["model", "rollback", str(candidate), "--config", str(site)])
    assert result.exit_code == 0, result.stdout + result.stderr
    assert cameras.read_text() == before
    assert [r.action for r in read_record(candidate).rollouts] == ["rollout", "rollback"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("      detector: {confidence: 0.3}\n", "      detector: {weights: new.onnx, confidence: 0.3}\n"),
        ("      detector: {}\n", "      detector: {weights: new.onnx}\n"),
        ('      detector: {weights: "old one.onnx", imgsz: 640}\n',
         "      detector: {weights: new.onnx, imgsz: 640}\n"),
        ("      detectors:\n        - imgsz: 640\n",
         "      detectors:\n        - imgsz: 640\n          weights: new.onnx\n"),
        ("", "      detector: {weights: new.onnx}\n"),
    ],
    ids=["flow without weights", "empty flow", "quoted", "block item", "no detector"],
)  # fmt: skip
def test_weights_edit_touches_one_place_whatever_the_style(
    tmp_path: Path, text: str, expected: str
) -> None:
    """Flow or block, quoted or not, present or missing: only the detector line changes."""
    head = "devices:\n  cameras:\n    - id: cam-a\n      gateway: gw\n"
    path = tmp_path / "cameras.yaml"
    path.write_text(head + text + "      zones: []  # kept\n")
    new = planned_texts([path], {DetectorSlot("cam-a", 0): "new.onnx"})[path]
    assert new == head + expected + "      zones: []  # kept\n"


def test_an_anchor_shared_with_a_camera_not_named_is_refused(tmp_path: Path) -> None:
    """Changing cam-a's anchored detector would change cam-b's too: refused, with the line."""
    path = tmp_path / "cameras.yaml"
    path.write_text(
        "devices:\n  cameras:\n    - id: cam-a\n      detector: &d {weights: a.onnx}\n"
        "    - id: cam-b\n      detector: *d\n"
    )
    with pytest.raises(ConfigEditError, match=r"cameras.yaml:4: .*\['cam-b'\]"):
        planned_texts([path], {DetectorSlot("cam-a", 0): "new.onnx"})
    both = planned_texts(
        [path], {DetectorSlot("cam-a", 0): "n.onnx", DetectorSlot("cam-b", 0): "n.onnx"}
    )
    assert both[path].count("n.onnx") == 1 and "&d {weights: n.onnx}" in both[path]
