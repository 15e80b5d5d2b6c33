"""Several detectors per camera, frame-shaped inference and class mapping (issue 20).

Pure parts first (input shapes, box mapping on a hand-built ONNX graph, merging, cadence,
class names); then stand-in models built offline from a tiny YOLO definition (an 80-class
model with the COCO names, a 2-class Fire/Smoke model, exported to dynamic ONNX): the
config accepts them, a camera runs both live, replay maps classes as live does.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from citywatch.config.camera import CameraConfig
from citywatch.config.detector import DetectorConfig, canonical_class
from citywatch.hardware.camera.frames import Frame
from citywatch.models.detections import Detections
from citywatch.models.detector_factory import ModelClasses
from citywatch.models.detector_set import EveryNth, ModelPool, merge
from citywatch.models.letterbox import frame_input_hw
from citywatch.models.yolo_onnx import OnnxDetector, OnnxModel
from tests.unit.test_detectors import fake_yolo_onnx

# --- frame-shaped input -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame_hw", "imgsz", "expected"),
    [((720, 1280), 320, (192, 320)), ((1080, 1920), 640, (384, 640)),
     ((480, 640), 320, (256, 320)), ((1280, 720), 320, (320, 192)), ((320, 320), 320, (320, 320))],
)  # fmt: skip
def test_frame_shaped_input_pads_only_to_the_stride(
    frame_hw: tuple[int, int], imgsz: int, expected: tuple[int, int]
) -> None:
    """A 16:9 frame at imgsz 320 goes in as 320×192, as ultralytics' minimal letterbox."""
    assert frame_input_hw(frame_hw, imgsz) == expected


def test_frame_shaped_input_matches_ultralytics_letterbox() -> None:
    """The shapes are ultralytics' own LetterBox(auto=True) shapes."""
    from ultralytics.data.augment import LetterBox

    for h, w in [(720, 1280), (1080, 1920), (600, 800), (333, 517)]:
        padded = LetterBox((320, 320), auto=True, stride=32)(image=np.zeros((h, w, 3), np.uint8))
        assert frame_input_hw((h, w), 320) == padded.shape[:2]


def test_a_known_box_maps_back_to_a_non_square_frame(tmp_path: Path) -> None:
    """A dynamic export gets 320×192 for a 1280×720 frame (gain 0.25, 6 px of padding top
    and bottom); a box at (80, 80)-(120, 120) of the input lands at source pixels."""
    model = OnnxDetector(fake_yolo_onnx(tmp_path / "dyn.onnx", dynamic=True), imgsz=320)
    assert model.onnx.input_hw_for((720, 1280)) == (192, 320)
    found = model.detect(np.zeros((720, 1280, 3), np.uint8))
    assert found.class_name[0] == "automobile"
    assert found.xyxy[0].tolist() == pytest.approx([320, (80 - 6) * 4, 480, (120 - 6) * 4])
    square = OnnxModel(tmp_path / "dyn.onnx", imgsz=320, input_shape="square")
    assert square.input_hw_for((720, 1280)) == (320, 320)
    fixed = OnnxModel(fake_yolo_onnx(tmp_path / "fixed.onnx"), imgsz=320)
    assert fixed.input_hw_for((720, 1280)) == (320, 320)  # a fixed export keeps its square


# --- class names, merging, cadence ----------------------------------------------------------


def test_model_names_differing_only_by_case_meet_the_rules() -> None:
    """A model's 'Smoke' is citywatch's 'smoke' (the classical confirmation and the rules
    look for that); class_map wins, and a map target stays as written."""
    classes = ModelClasses.build({0: "Fire", 1: "Smoke", 2: "Car"}, {"Car": "vehicle"}, source="m")
    assert classes.names == ("fire", "smoke", "vehicle")
    assert canonical_class("Smoke", {}) == "smoke"
    assert canonical_class("Vehicle", {"automobile": "Vehicle"}) == "Vehicle"


def _boxes(rows: list[tuple[float, float, float, float, float, str]]) -> Detections:
    return Detections(
        np.array([r[:4] for r in rows], np.float32).reshape(-1, 4),
        np.array([r[4] for r in rows], np.float32),
        tuple(r[5] for r in rows),
    )


def test_boxes_of_two_detectors_merge_and_one_object_stays_one() -> None:
    """Two models seeing the same car keep the surer box; other classes and places stay."""
    coco = _boxes([(10, 10, 50, 50, 0.6, "car"), (100, 100, 120, 160, 0.7, "person")])
    other = _boxes([(11, 10, 51, 50, 0.8, "car"), (10, 10, 50, 50, 0.5, "smoke")])
    merged = merge([coco, other])
    scores = [round(c, 2) for c in merged.confidence.tolist()]
    assert sorted(zip(merged.class_name, scores, strict=True)) == [
        ("car", 0.8),
        ("person", 0.7),
        ("smoke", 0.5),
    ]
    assert len(merge([Detections.empty(), coco])) == 2


def test_a_detector_run_every_third_frame_keeps_its_boxes_in_between() -> None:
    """A slow smoke model run one frame in three still shows its plume on every frame."""
    calls: list[int] = []

    class Counting:
        classes = ("smoke",)

        def detect(self, image: object) -> Detections:
            calls.append(1)
            return _boxes([(0, 0, 10, 10, 0.9, "smoke")])

    every = EveryNth(Counting(), 3)
    image = np.zeros((4, 4, 3), np.uint8)
    found = [len(every.detect(image)) for _ in range(7)]
    assert found == [1] * 7 and len(calls) == 3


# --- config --------------------------------------------------------------------------------


def _camera(**fields: Any) -> CameraConfig:
    base: dict[str, Any] = {
        "id": "cam-a",
        "gateway": "gw",
        "placement": {"district": "d", "street": "s", "community": "c"},
        "source": {"url": "synthetic:parked-car"},
    }
    return CameraConfig.model_validate(base | fields)


def test_the_old_single_detector_block_is_a_one_element_list() -> None:
    """Operators' configs with `detector:` keep working; `detectors:` lists several."""
    old = _camera(detector={"imgsz": 640})
    assert old.detector_list == (DetectorConfig(imgsz=640),)
    new = _camera(detectors=[{"imgsz": 640}, {"backend": "classical"}])
    assert [d.backend for d in new.detector_list] == ["onnx", "classical"]
    with pytest.raises(ValueError, match="both detector and detectors"):
        _camera(detector={"imgsz": 640}, detectors=[{"imgsz": 320}])


@pytest.mark.parametrize(
    ("entry", "message"),
    [({"backend": "ultralytics", "weights": "yolov8n.yaml"}, "model definition, not trained"),
     ({"backend": "classical", "weights": "m.onnx"}, "weight-free smoke detector")],
)  # fmt: skip
def test_weights_that_cannot_serve_the_backend_are_refused(
    entry: dict[str, Any], message: str
) -> None:
    """A .yaml would build an untrained model; the classical detector takes no weights."""
    with pytest.raises(ValueError, match=message):
        DetectorConfig.model_validate(entry)


def test_a_rule_class_no_detector_reports_is_refused() -> None:
    """The classical detector reports smoke only; a classes filter drops the rest."""
    rules = [{"type": "illegal_parking", "name": "p", "zones": ["z"]}]
    zones = [{"name": "z", "polygon": [[0, 0], [1, 0], [1, 1]]}]
    with pytest.raises(ValueError, match="no detector of camera 'cam-a' reports"):
        _camera(detectors=[{"backend": "classical"}], rules=rules, zones=zones)
    _camera(detectors=[{"classes": ["car"]}, {"backend": "classical"}], rules=rules, zones=zones)


# --- stand-in models built offline ---------------------------------------------------------

TINY_YOLO: dict[str, Any] = {
    "backbone": [[-1, 1, "Conv", [8, 3, 2]], [-1, 1, "Conv", [16, 3, 2]],
                 [-1, 1, "Conv", [16, 3, 2]], [-1, 1, "Conv", [16, 3, 2]],
                 [-1, 1, "Conv", [16, 3, 2]]],
    "head": [[[2, 3, 4], 1, "Detect", ["nc"]]],
}  # fmt: skip
"""Five strided convolutions and a Detect head over P3-P5: exports in under a second."""


def build_standin(directory: Path, names: list[str], imgsz: int) -> tuple[Path, Path]:
    """A random-init tiny YOLO with ``names``, saved as .pt and exported to dynamic ONNX
    at ``imgsz`` (which its metadata records): no download, no training."""
    import os
    import warnings

    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    import torch
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(0)
    model: Any = DetectionModel({**TINY_YOLO, "nc": len(names)}, nc=len(names), verbose=False)
    model.names = dict(enumerate(names))
    model.eval()
    yolo: Any = YOLO("yolov8n.yaml", task="detect")
    yolo.model = model
    pt = directory / f"standin-{len(names)}.pt"
    yolo.save(str(pt))
    with warnings.catch_warnings():  # torch's notes on its legacy ONNX exporter
        warnings.simplefilter("ignore")
        exported = YOLO(str(pt), task="detect").export(
            format="onnx", imgsz=imgsz, dynamic=True, simplify=False, opset=17, verbose=False
        )
    return pt, Path(exported)


@pytest.fixture(scope="session")
def standins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An 80-class model with the COCO names (exported at 640) and a Fire/Smoke model (320)."""
    import ultralytics
    from ultralytics.utils import YAML

    coco = YAML.load(Path(ultralytics.__file__).parent / "cfg" / "datasets" / "coco.yaml")
    directory = tmp_path_factory.mktemp("standins")
    coco_pt, coco_onnx = build_standin(directory, list(coco["names"].values()), 640)
    fire_pt, fire_onnx = build_standin(directory, ["Fire", "Smoke"], 320)
    return {"coco.pt": coco_pt, "coco": coco_onnx, "fire.pt": fire_pt, "fire": fire_onnx}


CAMERAS_YAML = """\
devices:
  gateways:
    - {{id: gw-suite, kind: camera, credentials: {{password: "secret:gw-suite"}}}}
  cameras:
{cameras}
"""
CAMERA_YAML = """\
    - id: {id}
      gateway: gw-suite
      placement: {{district: d-suite, street: s-suite, community: c-suite}}
      source: {{url: "synthetic:parked-car", detect_fps: 5, speed: 0}}
      detectors:
        - {{weights: {coco}, imgsz: 320{only}}}
{extra}
      zones:
        - {{name: curb, polygon: [[0.0, 0.58], [0.75, 0.58], [0.75, 0.70], [0.0, 0.70]]}}
      rules:
        - {{type: smoke, name: burning, zones: [curb], classes: [smoke], update_every: 1m}}
        - {{type: illegal_parking, name: parking, zones: [curb], dwell: 20s, update_every: 1m}}
"""


def _site(tmp_path: Path, standins: dict[str, Path], bad: bool = True) -> Path:
    """A copy of the suite's site with two cameras running COCO + Fire/Smoke (the second
    model every other frame) and, when ``bad``, a third whose COCO model alone cannot
    serve its smoke rule."""
    import shutil

    from tests.conftest import REPO

    shutil.copy(REPO / "configs" / "scenario-suite.yaml", tmp_path / "site.yaml")
    (tmp_path / "scenario-suite").mkdir()
    fire = f"        - {{weights: {standins['fire']}, every_n_frames: 2}}"
    only = ", classes: [car, truck, bus, person]"  # random weights: every box counts
    fire = fire.replace("}", ", confidence: 0.0}")
    only += ", confidence: 0.0"
    cameras = [
        CAMERA_YAML.format(id=f"cam-{n}", coco=standins["coco"], extra=fire, only=only)
        for n in ("a", "b")
    ]
    if bad:
        cameras.append(CAMERA_YAML.format(id="cam-bad", coco=standins["coco"], extra="", only=""))
    text = CAMERAS_YAML.format(cameras="".join(cameras)).replace("\n\n", "\n")
    (tmp_path / "scenario-suite" / "cameras.yaml").write_text(text)
    return tmp_path / "site.yaml"


@pytest.mark.slow
def test_config_check_reads_the_models_names_and_points_at_the_rule(
    tmp_path: Path, standins: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    """Without running a model: a rule asking the COCO model for smoke fails at its
    file:line; a 640-exported model at 320 is warned about; Fire/Smoke serves 'smoke'."""
    from citywatch.config.loader import check_files

    site = _site(tmp_path, standins)
    problems = check_files([site])
    assert len(problems) == 1, problems
    problem = problems[0]
    assert problem.file.name == "cameras.yaml" and problem.line is not None
    assert problem.path == "devices.cameras[2].rules[0].classes"
    assert "['smoke']" in problem.message and "'airplane'" in problem.message
    lines = (tmp_path / "scenario-suite" / "cameras.yaml").read_text().splitlines()
    assert "burning" in lines[problem.line - 1]
    warned = [
        r.getMessage() for r in caplog.records if "imgsz 320 is below the 640" in r.getMessage()
    ]
    assert warned and "detectors[0].imgsz" in warned[0]
    good = tmp_path / "good"
    good.mkdir()
    assert not check_files([_site(good, standins, bad=False)])


@pytest.mark.slow
def test_checkpoint_names_are_read_without_torch(standins: dict[str, Path]) -> None:
    """A .pt's class names come from its pickle read inertly: no torch import, no code run."""
    import subprocess
    import sys

    code = (
        "import sys; from pathlib import Path;"
        "from citywatch.config.model_checks import read_model_info;"
        f"info = read_model_info(Path({str(standins['fire.pt'])!r}));"
        "print(info.names, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "('Fire', 'Smoke') False"


@pytest.mark.slow
def test_two_models_per_camera_run_live_and_a_bad_camera_is_refused_alone(
    tmp_path: Path, standins: dict[str, Path]
) -> None:
    """Two cameras share two loaded models and run both on each frame (boxes mapped and
    merged); the camera whose model cannot serve its rule is refused and reported offline,
    and the others run."""
    from citywatch.config import load_config
    from citywatch.contracts import Status
    from citywatch.edge.camera.agent import CameraGateway

    config = load_config(_site(tmp_path, standins))
    seen: dict[str, set[str]] = {"cam-a": set(), "cam-b": set()}
    lock = threading.Lock()

    def record(camera_id: str, frame: Frame, detections: Detections) -> None:
        with lock:
            seen[camera_id] |= set(detections.class_name)

    published: list[Any] = []

    class Collect:
        def publish_many(self, messages: list[Any]) -> None:
            published.extend(messages)

    gateway = CameraGateway(
        config, "gw-suite", Collect(), telemetry_interval_s=3600, record_detections=record
    )  # type: ignore[arg-type]
    assert sorted(gateway.workers) == ["cam-a", "cam-b"] and list(gateway.refused) == ["cam-bad"]
    assert len(gateway.models) == 2  # two cameras × two entries: two loads
    gateway.run(duration_s=6)
    assert all(w.stats.frames > 5 for w in gateway.workers.values())
    reported = set().union(*seen.values())
    assert reported and reported <= {"car", "truck", "bus", "person", "fire", "smoke"}
    assert {"fire", "smoke"} & reported  # the Fire/Smoke model's boxes, mapped to lower case
    offline = [m for m in published if isinstance(m, Status) and m.device.id == "cam-bad"]
    assert offline and "smoke" in (offline[0].detail or "")


def test_replayed_detections_are_mapped_as_the_live_detector_maps_them() -> None:
    """`edge replay --detections` applies the camera's class_map (and lower case), so a file
    of a model's own names meets the same rules as live."""
    from citywatch.edge.camera.pipeline import CameraPipeline

    camera = _camera(detectors=[{"class_map": {"automobile": "car"}}, {"backend": "classical"}])
    seen: list[tuple[str, ...]] = []
    pipeline = CameraPipeline(
        site_id="site",
        camera=camera,
        tz="UTC",
        start_time=datetime(2026, 5, 12, tzinfo=UTC),
        on_detections=lambda _, found: seen.append(found.class_name),
    )
    rows = _boxes([(0, 0, 9, 9, 0.9, "automobile"), (20, 20, 29, 29, 0.9, "Smoke")])
    pipeline.process(Frame(np.zeros((64, 64, 3), np.uint8), 0, 0.0), rows)
    assert seen == [("car", "smoke")]


@pytest.mark.slow
def test_models_are_shared_by_weights_backend_and_size(standins: dict[str, Path]) -> None:
    """Entries differing only in floors or map share one load; another imgsz loads again."""
    pool = ModelPool()
    coco = DetectorConfig(weights=standins["coco"], imgsz=320)
    first = pool.detector(coco)
    stricter = pool.detector(coco.model_copy(update={"confidence": 0.6}))
    assert first is not stricter and len(pool) == 1
    assert pool.detector(coco) is first
    pool.detector(coco.model_copy(update={"imgsz": 640}))
    assert len(pool) == 2
    found = first.detect(np.full((720, 1280, 3), 90, np.uint8))
    assert set(found.class_name) <= set(first.classes)


@pytest.mark.slow
def test_edge_detect_runs_every_detector_of_the_camera(standins: dict[str, Path]) -> None:
    """`citywatch edge detect` writes what the live camera sees: both models' boxes, mapped,
    the Fire/Smoke model's 'Smoke' as 'smoke', the COCO model kept to its classes filter."""
    from citywatch.edge.camera.camera_detectors import camera_detector
    from citywatch.models.detector_set import MergedDetectors

    camera = _camera(
        detectors=[
            {"weights": str(standins["coco"]), "confidence": 0.0, "classes": ["car", "person"]},
            {"weights": str(standins["fire.pt"]), "backend": "ultralytics", "confidence": 0.0},
        ]
    )
    detector = camera_detector(camera)
    assert isinstance(detector, MergedDetectors)
    assert detector.classes == ("person", "car", "fire", "smoke")
    found = detector.detect(np.random.default_rng(1).integers(0, 255, (360, 640, 3), np.uint8))
    assert set(found.class_name) <= {"person", "car", "fire", "smoke"}
    assert {"fire", "smoke"} & set(found.class_name)


def test_a_fixed_size_export_at_another_imgsz_is_warned_about(tmp_path: Path) -> None:
    """A model exported at a fixed 320×320 runs at that size whatever imgsz says: a warning
    (not an error) on the entry's imgsz; its class_map is checked against its names."""
    from citywatch.config.model_checks import camera_issues

    weights = fake_yolo_onnx(tmp_path / "fixed.onnx")
    camera = _camera(detector={"weights": str(weights), "imgsz": 640, "class_map": {"car": "x"}})
    issues = camera_issues(camera, ("devices", "cameras", 0), tmp_path, {})
    by_key = {loc[-1]: (message, fatal) for loc, message, fatal in issues}
    assert "fixed 320×320" in by_key["imgsz"][0] and by_key["imgsz"][1] is False
    assert "['car']" in by_key["class_map"][0] and by_key["class_map"][1] is True
