"""Detectors: the onnx backend's decoding on a hand-built ONNX graph (fast, no torch), the
errors operators meet first, and the onnx backend against ultralytics on a real YOLO graph
(the bundled street model when present, else a random-init YOLOv8n built offline; slow)."""

from __future__ import annotations

import ast
import os
import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from citywatch.config.detector import DetectorConfig
from citywatch.models import detector_factory
from citywatch.models.detections import Detections, iou
from citywatch.models.detector_factory import (
    MappedDetector,
    ModelFormatError,
    UnknownClass,
    WeightsNotFound,
    load_detector,
    require_classes,
)
from citywatch.models.smoke_classical import ClassicalSmokeDetector
from citywatch.models.yolo_onnx import OnnxDetector, OnnxModel, letterbox

REPO = Path(__file__).resolve().parents[2]
BUNDLED = REPO / "models" / "street" / "citywatch-street"
TEST_CLASSES = ("car", "truck", "bus", "person", "stall", "smoke")

# --- a hand-built ONNX graph with ultralytics' output layout ----------------------------

FAKE_NAMES = {0: "automobile", 1: "truck", 2: "smoke"}
# Rows of (cx, cy, w, h, class scores...) in letterbox pixels of a 320×320 input.
FAKE_ANCHORS = [
    (100, 100, 40, 40, 0.9, 0.0, 0.0),  # automobile
    (104, 100, 40, 40, 0.8, 0.0, 0.0),  # same class, overlapping: suppressed
    (104, 100, 40, 40, 0.0, 0.7, 0.0),  # a truck in the same place: kept
    (200, 100, 30, 30, 0.0, 0.0, 0.1),  # smoke below the confidence threshold
    (300, 200, 60, 40, 0.0, 0.0, 0.6),  # smoke near the bottom-right corner
]


def fake_yolo_onnx(
    path: Path, *, dynamic: bool = False, names: dict[int, str] | None = FAKE_NAMES
) -> Path:
    """An ONNX model whose output is the constant FAKE_ANCHORS, shaped (1, 4 + nc, N)."""
    import onnx  # here, not at the top: importing onnx costs a second of every collection
    from onnx import TensorProto, helper

    table = np.array(FAKE_ANCHORS, np.float32).T[None]  # (1, 7, N)
    shape: list[Any] = ["batch", 3, "height", "width"] if dynamic else [1, 3, 320, 320]
    nodes = [
        helper.make_node("ReduceSum", ["images"], ["total"], keepdims=0),
        helper.make_node("Mul", ["total", "zero"], ["nothing"]),
        helper.make_node("Add", ["anchors", "nothing"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "fake-yolo",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(table.shape))],
        initializer=[
            onnx.numpy_helper.from_array(table, "anchors"),
            onnx.numpy_helper.from_array(np.zeros((), np.float32), "zero"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    props = {"task": "detect", "stride": "32", "imgsz": "[320, 320]"}
    if names is not None:
        props["names"] = repr(names)
    helper.set_model_props(model, props)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def fake_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fake_yolo_onnx(tmp_path_factory.mktemp("fake") / "fake.onnx")


def test_onnx_backend_decodes_nms_and_undoes_the_letterbox(fake_onnx: Path) -> None:
    """Class-aware NMS keeps one box per object and class; boxes land in source pixels."""
    detector = OnnxDetector(fake_onnx, confidence=0.25, iou=0.5)
    found = detector.detect(np.zeros((480, 640, 3), np.uint8))  # letterbox: ×0.5, 40 px pad
    assert found.class_name == ("automobile", "truck", "smoke")
    assert found.confidence.tolist() == pytest.approx([0.9, 0.7, 0.6])
    assert found.xyxy[0].tolist() == pytest.approx([160, 80, 240, 160])
    assert found.xyxy[1].tolist() == pytest.approx([168, 80, 248, 160])
    assert found.xyxy[2].tolist() == pytest.approx([540, 280, 640, 360])  # clipped at x=640


def test_a_class_floor_lets_that_class_through_lower_and_no_other(fake_onnx: Path) -> None:
    """``class_confidence`` lowers one class's floor (young, dark smoke scores low) while the
    vehicles keep ``confidence``; the floors apply to citywatch's class names."""
    detector = OnnxDetector(
        fake_onnx,
        confidence=0.75,
        class_confidence={"smoke": 0.05},
        class_map={"automobile": "car"},
    )
    found = detector.detect(np.zeros((320, 320, 3), np.uint8))
    assert detector.model_confidence == 0.05
    assert found.class_name == ("car", "smoke", "smoke")  # the 0.7 truck stays out
    assert found.confidence.tolist() == pytest.approx([0.9, 0.6, 0.1])


def test_a_class_floor_for_a_class_the_model_lacks_is_refused(fake_onnx: Path) -> None:
    """A floor for a class no box can have is a typo: say so, and what the model has."""
    with pytest.raises(UnknownClass, match=r"class_confidence.*\['fire'\].*'automobile'"):
        OnnxDetector(fake_onnx, class_confidence={"fire": 0.1})


def test_onnx_backend_maps_model_classes_to_citywatch_classes(fake_onnx: Path) -> None:
    """``class_map`` renames a model class; unlisted classes keep their names."""
    detector = OnnxDetector(fake_onnx, class_map={"automobile": "car"})
    assert detector.classes == ("car", "truck", "smoke")
    assert detector.model_classes == ("automobile", "truck", "smoke")
    assert detector.detect(np.zeros((320, 320, 3), np.uint8)).class_name[0] == "car"


def test_class_map_naming_a_class_the_model_lacks_is_refused(fake_onnx: Path) -> None:
    """A class_map key the model does not have names the model's classes."""
    with pytest.raises(UnknownClass, match=r"\['car'\].*\['automobile', 'truck', 'smoke'\]"):
        OnnxDetector(fake_onnx, class_map={"car": "car"})


def test_rule_class_the_model_lacks_names_the_available_classes(fake_onnx: Path) -> None:
    """A rule asking for 'stall' of a model without it fails, listing what it detects."""
    detector = OnnxDetector(fake_onnx, class_map={"automobile": "car"})
    detector.require_classes(["car", "smoke"])
    with pytest.raises(UnknownClass, match=r"rule 'vending'.*\['stall'\].*'car', 'truck'") as e:
        detector.require_classes(["stall", "car"], context="rule 'vending'")
    assert e.value.missing == ("stall",) and e.value.available == ("car", "truck", "smoke")


def test_class_check_is_shared_with_the_classical_detector() -> None:
    """The same check serves any detector, e.g. the weight-free smoke detector."""
    require_classes(ClassicalSmokeDetector(), ["smoke"])
    with pytest.raises(UnknownClass, match="car"):
        require_classes(ClassicalSmokeDetector(), ["car"])


def test_dynamic_input_uses_the_configured_size(tmp_path: Path) -> None:
    """A dynamic-shape export is fed at detector.imgsz; a fixed one at its own size."""
    dynamic = OnnxDetector(fake_yolo_onnx(tmp_path / "dyn.onnx", dynamic=True), imgsz=640)
    assert dynamic.input_hw == (640, 640)
    found = dynamic.detect(np.zeros((640, 640, 3), np.uint8))
    assert found.xyxy[0].tolist() == pytest.approx([80, 80, 120, 120])
    fixed = OnnxDetector(fake_yolo_onnx(tmp_path / "fixed.onnx"), imgsz=640)
    assert fixed.input_hw == (320, 320)


def test_onnx_without_class_names_is_refused(tmp_path: Path) -> None:
    """An ONNX file lacking ultralytics' names metadata says how to re-export it."""
    path = fake_yolo_onnx(tmp_path / "anon.onnx", names=None)
    with pytest.raises(ModelFormatError, match="no 'names' metadata"):
        OnnxDetector(path)


def test_not_an_onnx_file_is_refused(tmp_path: Path) -> None:
    """Garbage with an .onnx name is a format error naming the file."""
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"not a model")
    with pytest.raises(ModelFormatError, match=r"broken\.onnx"):
        OnnxDetector(path)


@pytest.mark.parametrize("backend", ["onnx", "ultralytics"])
def test_missing_weights_name_the_path_and_config_key(tmp_path: Path, backend: str) -> None:
    """Either backend: a missing weights file is reported before any library loads."""
    config = DetectorConfig(backend=backend, weights=tmp_path / "street.onnx")
    with pytest.raises(WeightsNotFound, match=r"street\.onnx.*'detector\.weights'"):
        load_detector(config)


def test_default_weights_are_the_bundled_model_per_backend(tmp_path: Path) -> None:
    """No weights configured: the bundled street model for the backend, under models/."""
    assert DetectorConfig().weights_path(tmp_path) == tmp_path / "street/citywatch-street.onnx"
    pt = DetectorConfig(backend="ultralytics").weights_path(tmp_path)
    assert pt == tmp_path / "street/citywatch-street.pt"
    assert DetectorConfig(weights=Path("/abs/m.onnx")).weights_path(tmp_path) == Path("/abs/m.onnx")


def test_load_detector_builds_the_onnx_backend(fake_onnx: Path) -> None:
    """The factory passes thresholds and the class map through to the onnx backend."""
    config = DetectorConfig(weights=fake_onnx, confidence=0.65, class_map={"automobile": "car"})
    detector = load_detector(config)
    assert isinstance(detector, MappedDetector) and isinstance(detector.model, OnnxModel)
    assert detector.detect(np.zeros((320, 320, 3), np.uint8)).class_name == ("car", "truck")


@pytest.mark.parametrize(
    "fields",
    [{"imgsz": 300}, {"backend": "tflite"}, {"confidence": 1.5}, {"class_map": {"car": " "}}],
)
def test_bad_detector_config_is_refused(fields: dict[str, Any]) -> None:
    """imgsz off the 32 grid, unknown backends, out-of-range thresholds, blank map entries."""
    with pytest.raises(ValueError):
        DetectorConfig(**fields)


def test_letterbox_matches_ultralytics_rounding() -> None:
    """640×480 into 320×320: scaled by half, 40 px grey bars top and bottom."""
    padded, placement = letterbox(np.zeros((480, 640, 3), np.uint8), (320, 320))
    assert padded.shape == (320, 320, 3)
    assert (placement.pad_x, placement.pad_y) == (0, 40)
    assert padded[:40].min() == 114 and padded[40:280].max() == 0


def test_onnx_backend_imports_neither_torch_nor_ultralytics() -> None:
    """The light-gateway backend and the factory it imports stay free of torch."""
    for module in ("yolo_onnx.py", "detector_factory.py", "detections.py"):
        tree = ast.parse((REPO / "models" / module).read_text(encoding="utf-8"))
        imported: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
        assert not imported & {"torch", "torchvision", "ultralytics"}, module


# --- the real YOLO graph: onnx backend against ultralytics ------------------------------


def street_like_images() -> list[NDArray[np.uint8]]:
    """Deterministic test images, square and not: blocks, discs and noise on grey."""
    rng = np.random.default_rng(7)
    images = []
    for height, width in ((480, 480), (480, 640), (360, 200)):
        image = np.full((height, width, 3), 96, np.uint8)
        for _ in range(14):
            x, y = int(rng.integers(0, width - 20)), int(rng.integers(0, height - 20))
            colour = tuple(int(c) for c in rng.integers(0, 255, 3))
            w, h = int(rng.integers(20, width // 3)), int(rng.integers(20, height // 3))
            if rng.random() < 0.5:
                cv2.rectangle(image, (x, y), (x + w, y + h), colour, -1)
            else:
                cv2.circle(image, (x, y), min(w, h) // 2, colour, -1)
        noise = rng.normal(0, 8, image.shape)
        images.append(np.clip(image + noise, 0, 255).astype(np.uint8))
    return images


def build_random_yolo(directory: Path, imgsz: int = 320) -> tuple[Path, Path]:
    """A random-init YOLOv8n with our six classes, saved as .pt and exported to .onnx.

    Offline: built from the packaged yaml, never a hub name. Plain random init passes
    nothing through 20 layers (every score equal), so batch-norm statistics are set from
    a few images and the class biases lowered: scores then spread and boxes differ.
    """
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    import torch
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(0)
    model: Any = DetectionModel("yolov8n.yaml", nc=len(TEST_CLASSES), verbose=False)
    batch = [
        torch.from_numpy(np.ascontiguousarray(cv2.resize(im, (imgsz, imgsz))[:, :, ::-1]))
        for im in street_like_images()
    ]
    images = torch.stack(batch).permute(0, 3, 1, 2).float() / 255
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # cumulative average: the statistics of this batch
    model.train()
    with torch.no_grad():
        model(torch.cat([images, torch.rand(3, 3, imgsz, imgsz)]))
        for branch in model.model[-1].cv3:
            branch[-1].bias.fill_(-3.0)
    model.eval()
    model.names = dict(enumerate(TEST_CLASSES))
    yolo: Any = YOLO("yolov8n.yaml", task="detect")
    yolo.model = model
    pt = directory / "random-yolov8n.pt"
    yolo.save(str(pt))
    with warnings.catch_warnings():  # torch's notes on its legacy ONNX exporter
        warnings.simplefilter("ignore")
        exported = YOLO(str(pt), task="detect").export(
            format="onnx", imgsz=imgsz, simplify=False, dynamic=False, opset=17, verbose=False
        )
    return pt, Path(exported)


@pytest.fixture(scope="session")
def yolo_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, float]:
    """(.pt, .onnx, confidence): the bundled street model when present, else a random one."""
    pytest.importorskip("ultralytics")
    pt, exported = BUNDLED.with_suffix(".pt"), BUNDLED.with_suffix(".onnx")
    if pt.exists() and exported.exists():
        return pt, exported, 0.05
    pt, exported = build_random_yolo(tmp_path_factory.mktemp("yolo"))
    return pt, exported, 0.3


def matched(reference: Detections, candidate: Detections, min_conf: float) -> list[float]:
    """Best same-class IoU in ``candidate`` for each reference box scored at least min_conf."""
    best = []
    for box in reference:
        if box.confidence < min_conf:
            continue
        ious = [
            iou((box.x1, box.y1, box.x2, box.y2), (other.x1, other.y1, other.x2, other.y2))
            for other in candidate
            if other.class_name == box.class_name
        ]
        best.append(max(ious, default=0.0))
    return best


@pytest.mark.slow
def test_onnx_backend_returns_the_ultralytics_boxes(yolo_pair: tuple[Path, Path, float]) -> None:
    """Same weights, same images: every box either backend reports clearly above the
    threshold has a same-class twin with IoU >= 0.9 in the other's output."""
    from citywatch.models.yolo_ultralytics import UltralyticsModel

    pt, exported, confidence = yolo_pair
    onnx_backend = OnnxDetector(exported, confidence=confidence, iou=0.5)
    imgsz = onnx_backend.input_hw[0]
    references = {
        name: MappedDetector(UltralyticsModel(path, imgsz=imgsz), confidence=confidence, iou=0.5)
        for name, path in (("pt", pt), ("onnx", exported))
    }
    compared = 0
    for image in street_like_images():
        ours = onnx_backend.detect(image)
        for name, reference in references.items():
            theirs = reference.detect(image)
            margin = confidence + 0.02  # a box on the threshold may fall either side
            for a, b in ((theirs, ours), (ours, theirs)):
                ious = matched(a, b, margin)
                assert min(ious, default=1.0) >= 0.9, (name, image.shape, sorted(ious)[:5])
                compared += len(ious)
    assert compared > 0, "no boxes to compare: lower the confidence for this model"


@pytest.mark.slow
def test_ultralytics_backend_maps_classes_and_checks_rules(
    yolo_pair: tuple[Path, Path, float],
) -> None:
    """class_map and the rule-class check behave as in the onnx backend."""
    pt, _, _ = yolo_pair
    config = DetectorConfig(
        backend="ultralytics", weights=pt, imgsz=320, class_map={"truck": "car"}
    )
    detector = load_detector(config)
    assert "truck" not in detector.classes and "car" in detector.classes
    with pytest.raises(UnknownClass, match=r"\['fire'\]"):
        detector_factory.require_classes(detector, ["fire"])
    with pytest.raises(UnknownClass, match="lorry"):
        load_detector(config.model_copy(update={"class_map": {"lorry": "truck"}}))
    floors = load_detector(config.model_copy(update={"class_confidence": {"smoke": 0.05}}))
    assert floors.model_confidence == 0.05  # type: ignore[attr-defined]


@pytest.mark.parametrize("spin_wait", [False, True])
def test_onnx_threads_spin_only_when_asked(fake_onnx: Path, spin_wait: bool) -> None:
    """On a gateway, busy-waiting inference threads take the cores the camera loops need."""
    detector = OnnxDetector(fake_onnx, spin_wait=spin_wait)
    options = detector.onnx._session.get_session_options()
    expected = "1" if spin_wait else "0"
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == expected
    assert options.get_session_config_entry("session.inter_op.allow_spinning") == expected
