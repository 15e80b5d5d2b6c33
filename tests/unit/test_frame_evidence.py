"""The camera keeps the clean frame beside the annotated snapshot: the learning loop's
training image (``citywatch model dataset``), so it must be the camera's pixels, nothing drawn."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from citywatch.config import load_config
from citywatch.config.camera import CameraConfig
from citywatch.contracts import Alert
from citywatch.contracts.messages import EvidenceKind
from citywatch.edge.camera.evaluation.detection_file import DetectionFrame
from citywatch.edge.camera.evaluation.replay import detection_frames
from citywatch.edge.camera.evaluation.scenario_suite import suite_cases, truth_detections
from citywatch.edge.camera.evidence import EvidenceStore, encode_jpeg
from citywatch.edge.camera.pipeline import CameraPipeline
from citywatch.hardware.camera.frames import Frame
from tests.conftest import REPO

SUITE = REPO / "configs" / "scenario-suite.yaml"
SIZE = (1280, 720)
"""The scenario's frame size (its boxes are in these pixels)."""


def textured(width: int, height: int) -> np.ndarray:
    """A smooth gradient (JPEG keeps it close), so a drawn box stands out in the snapshot."""
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    image = np.stack([x + 0 * y, y + 0 * x, (x + y) / 2], axis=-1)
    return np.ascontiguousarray(image.astype(np.uint8))


def first_start(camera: CameraConfig, evidence: Path, image: np.ndarray) -> Alert:
    """Run the parked-car scene's perfect detections over ``image`` until the first start."""
    config = load_config(SUITE)
    case = next(c for c in suite_cases(config) if c.scenario.name == "parked-car")
    rows = [
        DetectionFrame(*row) for row in truth_detections(case.scenario, camera.source.detect_fps)
    ]
    pipeline = CameraPipeline(
        site_id=config.site.id, camera=camera, tz=config.site.timezone,
        start_time=datetime(2026, 5, 12, 2, 0, tzinfo=UTC),
        evidence=EvidenceStore(evidence, camera.id),
    )  # fmt: skip
    for frame, detections in detection_frames(
        rows, video_fps=25, detect_fps=camera.source.detect_fps, frame_size=SIZE
    ):
        out = pipeline.process(Frame(image, frame.index, frame.pts_s), detections)
        starts = [a for a in out.alerts if a.phase.value == "start"]
        if starts:
            return starts[0]
    raise AssertionError("the parked-car scene raised no alert")


def parked_camera(frame: bool = True) -> CameraConfig:
    config = load_config(SUITE)
    camera = next(c for c in config.devices.cameras if c.id == "cam-parked-car")
    evidence = camera.evidence.model_copy(update={"frame": frame})
    return camera.model_copy(update={"evidence": evidence})


@pytest.mark.slow
def test_the_clean_frame_is_the_cameras_pixels_where_the_snapshot_has_the_box_drawn(
    tmp_path: Path,
) -> None:
    """The frame evidence is the source frame's JPEG byte for byte (its SHA-256 announced);
    inside the alert's box outline the snapshot differs from it, the frame does not."""
    image = textured(*SIZE)
    start = first_start(parked_camera(), tmp_path, image)
    refs = {ref.kind: ref for ref in start.evidence}
    assert set(refs) == {EvidenceKind.SNAPSHOT, EvidenceKind.CROP, EvidenceKind.FRAME}
    frame_ref = refs[EvidenceKind.FRAME]
    data = Path(frame_ref.uri.removeprefix("file://")).read_bytes()
    assert data == encode_jpeg(image, 90)
    assert frame_ref.sha256 == hashlib.sha256(data).hexdigest()
    assert frame_ref.content_type == "image/jpeg"

    attrs = start.attributes
    width, height = SIZE
    x1, y1 = round(float(attrs["x1"]) * width), round(float(attrs["y1"]) * height)
    y2 = round(float(attrs["y2"]) * height)
    edge = np.s_[max(y1 - 2, 0) : y2 + 3, max(x1 - 2, 0) : x1 + 3]  # the box's left side
    clean = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    snapshot = cv2.imread(refs[EvidenceKind.SNAPSHOT].uri.removeprefix("file://"))
    source = cv2.imdecode(np.frombuffer(encode_jpeg(image, 90), np.uint8), cv2.IMREAD_COLOR)
    assert np.array_equal(clean[edge], source[edge])
    drawn = np.abs(snapshot[edge].astype(int) - image[edge].astype(int)).max()
    assert drawn > 60, "the snapshot should carry the drawn box"


@pytest.mark.slow
def test_a_camera_with_frame_evidence_off_writes_no_frame(tmp_path: Path) -> None:
    """`evidence.frame: false` (short of disk or uplink): snapshot and crop only."""
    start = first_start(parked_camera(frame=False), tmp_path, textured(*SIZE))
    assert {ref.kind for ref in start.evidence} == {EvidenceKind.SNAPSHOT, EvidenceKind.CROP}
    assert not list(tmp_path.rglob("*-frame.jpg"))
