"""Camera evidence: bounded frame ring, best frame, drawing, files, clips and retention."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlparse

import cv2
import numpy as np
import pytest

from citywatch.config.camera import Zone
from citywatch.contracts.messages import EvidenceKind, EvidenceRef
from citywatch.edge.camera.annotate import annotate, evidence_label, zone_overlays
from citywatch.edge.camera.clips import ClipRecorder
from citywatch.edge.camera.evidence import EvidenceError, EvidenceStore, crop, prune
from citywatch.edge.camera.frame_ring import BestFrame, FrameRing
from citywatch.hardware.camera.frames import Frame

W, H = 160, 120
WHEN = datetime(2025, 6, 1, 23, 30, tzinfo=UTC)


def frame(index: int, pts_s: float | None = None, value: int | None = None) -> Frame:
    image = np.full((H, W, 3), (index * 7) % 256 if value is None else value, np.uint8)
    cv2.putText(image, str(index), (10, 60), cv2.FONT_HERSHEY_SIMPLEX, 1, (255, 255, 255), 2)
    return Frame(image, index, index * 0.2 if pts_s is None else pts_s)


def noisy(index: int, pts_s: float) -> Frame:
    rng = np.random.default_rng(index)
    return Frame(rng.integers(0, 256, (H, W, 3), dtype=np.uint8), index, pts_s)


def local(ref: EvidenceRef) -> Path:
    assert ref.uri.startswith("file://")
    return Path(unquote(urlparse(ref.uri).path))


# --- ring ---------------------------------------------------------------------------


def test_ring_keeps_only_max_age_seconds_behind_the_newest_frame() -> None:
    """Frames older than max_age_s behind the newest are dropped."""
    ring = FrameRing(max_age_s=2.0, max_frames=1000)
    for i in range(50):  # 10 s at 5 fps
        ring.push(frame(i))
    times = [f.pts_s for f in ring.since(0)]
    assert times[0] == pytest.approx(9.8 - 2.0)
    assert times[-1] == pytest.approx(9.8)


def test_ring_is_bounded_by_frame_count() -> None:
    """Never more than max_frames, whatever the age bound allows."""
    ring = FrameRing(max_age_s=100, max_frames=5)
    for i in range(20):
        ring.push(frame(i))
    assert len(ring) == 5
    assert [f.index for f in ring.since(0)] == [15, 16, 17, 18, 19]


def test_ring_is_bounded_by_bytes_and_stores_jpeg_smaller_than_raw() -> None:
    """The kept JPEG bytes stay under max_bytes; each frame is smaller than raw pixels."""
    ring = FrameRing(max_age_s=100, max_frames=1000, max_bytes=40_000)
    for i in range(60):
        ring.push(noisy(i, i * 0.1))
        assert ring.nbytes <= 40_000
    assert sum(len(f.jpeg) for f in ring.since(0)) == ring.nbytes
    assert 1 <= len(ring) < 60
    plain = FrameRing()
    kept = plain.push(frame(1))
    assert len(kept.jpeg) < W * H * 3 / 5
    assert kept.image().shape == (H, W, 3)


def test_ring_empties_when_video_time_goes_back() -> None:
    """A restarted source is not spliced onto the previous run."""
    ring = FrameRing()
    for i in range(5):
        ring.push(frame(i))
    ring.push(frame(100, pts_s=0.0))
    assert [f.index for f in ring.since(-1)] == [100]


# --- best frame ----------------------------------------------------------------------


def test_best_frame_keeps_the_most_confident_frame_per_episode() -> None:
    """A less confident later frame does not replace the best one."""
    best = BestFrame()
    assert best.offer("e1", 0.6, frame(1), (0, 0, 10, 10))
    assert best.offer("e1", 0.9, frame(2), (5, 5, 20, 20))
    assert not best.offer("e1", 0.8, frame(3), (0, 0, 1, 1))
    best.offer("e2", 0.1, frame(4), (0, 0, 1, 1))
    shot = best.pop("e1")
    assert shot is not None and shot.frame.index == 2 and shot.box == (5, 5, 20, 20)
    assert best.get("e1") is None and best.get("e2") is not None


def test_best_frame_copies_the_image_and_forgets_oldest_episodes() -> None:
    """A reused source buffer does not change the kept frame; memory is bounded."""
    best = BestFrame(max_episodes=2)
    source = frame(1, value=10)
    best.offer("e1", 0.5, source, (0, 0, 1, 1))
    source.image[:] = 0
    shot = best.get("e1")
    assert shot is not None and shot.frame.image[0, 0, 0] == 10
    best.offer("e2", 0.5, frame(2), (0, 0, 1, 1))
    best.offer("e3", 0.5, frame(3), (0, 0, 1, 1))
    assert len(best) == 2 and best.get("e1") is None


# --- drawing ---------------------------------------------------------------------------


ZONES = (
    Zone(name="curb", polygon=((0.1, 0.5), (0.9, 0.5), (0.9, 0.95), (0.1, 0.95))),
    Zone(name="private", polygon=((0.0, 0.0), (0.3, 0.0), (0.3, 0.3)), mask=True),
)


def test_zone_overlays_scale_unit_polygons_to_pixels() -> None:
    """0–1 vertices are scaled to the image size; pixel zones are kept as drawn."""
    overlays = zone_overlays(ZONES, 200, 100)
    assert overlays[0].polygon_px.tolist() == [[20, 50], [180, 50], [180, 95], [20, 95]]
    assert overlays[1].mask
    pixel = Zone(name="px", polygon=((10, 20), (30, 20), (30, 40)), units="pixel")
    assert zone_overlays([pixel], 200, 100)[0].polygon_px.tolist() == [[10, 20], [30, 20], [30, 40]]


def test_annotate_draws_on_a_copy_inside_zone_and_box() -> None:
    """The input is untouched; zone fill tints pixels; the box outline is red."""
    image = np.full((H, W, 3), 100, np.uint8)
    out = annotate(image, zone_overlays(ZONES, W, H), (40, 20, 100, 50), "car 0.9")
    assert (image == 100).all()
    assert out.shape == image.shape
    assert not np.array_equal(out[100, 80], image[100, 80])  # inside "curb", tinted
    assert tuple(out[35, 40]) == (0, 0, 255)  # on the left edge of the box


def test_annotate_accepts_non_ascii_labels_and_no_box() -> None:
    """A Chinese class name does not break drawing (it is drawn as '?')."""
    image = np.zeros((H, W, 3), np.uint8)
    out = annotate(image, [], (10, 10, 50, 50), "小汽车 0.90")
    assert out.any()
    assert annotate(image, [], None).shape == image.shape


def test_evidence_label_states_class_confidence_and_dwell() -> None:
    """The drawn label is short and ASCII for ASCII classes."""
    assert evidence_label("car", 0.874, 191.6) == "car 0.87 dwell 192s"
    assert evidence_label("smoke", 0.5) == "smoke 0.50"


def test_crop_grows_the_box_by_margin_and_clips_to_the_image() -> None:
    """Margin is a share of box size (at least 8 px); the crop never leaves the image."""
    image = np.zeros((H, W, 3), np.uint8)
    assert crop(image, (40, 40, 140, 80), margin=0.1).shape == (40 + 16, 100 + 20, 3)
    assert crop(image, (0, 0, 10, 10)).shape == (18, 18, 3)
    with pytest.raises(EvidenceError, match="outside"):
        crop(image, (500, 500, 600, 600))


# --- store ------------------------------------------------------------------------------


def test_snapshot_and_crop_are_valid_jpegs_with_matching_refs(tmp_path: Path) -> None:
    """Files land under camera/UTC-date/, read back with cv2, and the sha256 matches."""
    store = EvidenceStore(tmp_path, "cam1")
    image = frame(3).image
    snap = store.write_snapshot("al:1", WHEN + timedelta(hours=1), image)
    crop_ref = store.write_crop("al:1", WHEN, image, (20, 20, 60, 60))
    assert local(snap) == tmp_path.resolve() / "cam1" / "20250602" / "al_1-snapshot.jpg"
    assert local(crop_ref).name == "al_1-crop.jpg"
    assert (snap.kind, crop_ref.kind) == (EvidenceKind.SNAPSHOT, EvidenceKind.CROP)
    for ref in (snap, crop_ref):
        path = local(ref)
        assert ref.content_type == "image/jpeg"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == ref.sha256
        assert cv2.imread(str(path)) is not None
    cropped = cv2.imread(str(local(crop_ref)))
    assert cropped is not None and cropped.shape == (56, 56, 3)
    assert not list(tmp_path.rglob("*.partial*"))


def test_store_rejects_an_unsafe_camera_id(tmp_path: Path) -> None:
    """A camera id is a directory name; ``..`` or ``/`` would escape the root."""
    with pytest.raises(ValueError, match="not safe"):
        EvidenceStore(tmp_path, "../etc")


@pytest.mark.parametrize(
    ("clip_format", "suffix", "content_type"),
    [("webm", ".webm", "video/webm"), ("mp4", ".mp4", "video/mp4")],
)
def test_clip_is_a_readable_video_with_all_frames(
    tmp_path: Path, clip_format: Literal["webm", "mp4"], suffix: str, content_type: str
) -> None:
    """The clip reads back with cv2 with as many frames as were written, in the chosen
    format: WebM (VP8) by default, which browsers play, or the cheaper MP4."""
    ring = FrameRing()
    frames = [ring.push(frame(i)) for i in range(12)]
    ref = EvidenceStore(tmp_path, "cam1", clip_format=clip_format).write_clip("al1", WHEN, frames)
    path = local(ref)
    assert ref.kind is EvidenceKind.CLIP
    assert (path.suffix, ref.content_type) == (suffix, content_type)
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    assert count == 12
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(5, abs=0.1)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == ref.sha256


def test_clip_without_frames_is_an_error(tmp_path: Path) -> None:
    """An empty clip is refused rather than written as a broken file."""
    with pytest.raises(EvidenceError, match="no frames"):
        EvidenceStore(tmp_path, "cam1").write_clip("al1", WHEN, [])


# --- clip recorder ----------------------------------------------------------------------


def test_recorder_clip_spans_before_to_after_the_trigger(tmp_path: Path) -> None:
    """Frames from before_s before the trigger to after_s after it; returned when complete."""
    recorder = ClipRecorder(EvidenceStore(tmp_path, "cam1"), before_s=1.0, after_s=1.0)
    ready = []
    for i in range(40):  # 0.0 .. 7.8 s at 5 fps
        ready += recorder.push(frame(i))
        if i == 20:  # the alert starts at 4.0 s
            assert recorder.trigger("al1", 4.0, WHEN) == []
            assert recorder.pending == ("al1",)
        if i < 25:
            assert ready == []
    (clip,) = ready
    assert clip.name == "al1"
    assert clip.start_s == pytest.approx(3.0) and clip.end_s == pytest.approx(5.0)
    assert clip.frames == 11
    capture = cv2.VideoCapture(str(local(clip.ref)))
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 11
    assert recorder.pending == ()


def test_recorder_trigger_in_the_past_finishes_at_once(tmp_path: Path) -> None:
    """If frames past after_s are already buffered, the trigger returns the clip."""
    recorder = ClipRecorder(EvidenceStore(tmp_path, "cam1"), before_s=1.0, after_s=0.5)
    for i in range(13):  # 0.0 .. 3.0 s
        recorder.push(frame(i, pts_s=i * 0.25))
    (clip,) = recorder.trigger("al1", 2.0, WHEN)
    assert (clip.start_s, clip.end_s, clip.frames) == (1.0, 2.5, 7)
    assert recorder.pending == ()


def test_recorder_ignores_a_repeated_trigger_and_flushes_at_source_end(tmp_path: Path) -> None:
    """A resend of the same alert records one clip; flush writes what there is."""
    recorder = ClipRecorder(EvidenceStore(tmp_path, "cam1"), before_s=0.5, after_s=5.0)
    for i in range(5):
        recorder.push(frame(i))
    recorder.trigger("al1", 0.8, WHEN)
    assert recorder.trigger("al1", 0.8, WHEN) == []
    recorder.push(frame(5))
    (clip,) = recorder.flush()
    assert clip.frames == 4 and clip.end_s == pytest.approx(1.0)
    assert recorder.flush() == []


def test_recorder_bounds_pending_clips_by_finishing_the_oldest(tmp_path: Path) -> None:
    """More triggers than max_pending end the oldest clip early instead of growing."""
    recorder = ClipRecorder(
        EvidenceStore(tmp_path, "cam1"), before_s=0.4, after_s=10, max_pending=2
    )
    for i in range(3):
        recorder.push(frame(i))
    recorder.trigger("a", 0.4, WHEN)
    recorder.trigger("b", 0.4, WHEN)
    ready = recorder.trigger("c", 0.4, WHEN)
    assert [c.name for c in ready] == ["a"]
    assert recorder.pending == ("b", "c")


# --- retention ---------------------------------------------------------------------------


def _aged_files(root: Path, ages_s: list[int], size: int) -> list[Path]:
    now = WHEN.timestamp()
    paths = []
    for n, age in enumerate(ages_s):
        path = root / "cam1" / f"2025060{n % 2 + 1}" / f"f{n}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * size)
        os.utime(path, (now - age, now - age))
        paths.append(path)
    return paths


def test_prune_by_bytes_deletes_oldest_first(tmp_path: Path) -> None:
    """Until the total fits, the oldest files go; newer ones stay."""
    paths = _aged_files(tmp_path, [50, 10, 40, 30, 20], size=100)
    deleted = prune(tmp_path, max_bytes=250, now=WHEN)
    assert deleted == [paths[0], paths[2], paths[3]]
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == sorted([paths[1], paths[4]])


def test_prune_by_age_deletes_only_expired_and_empty_folders(tmp_path: Path) -> None:
    """Files older than max_age go; a day folder left empty is removed."""
    paths = _aged_files(tmp_path, [3600 * 30, 3600 * 2, 3600 * 40], size=10)
    store = EvidenceStore(tmp_path, "cam1")
    deleted = store.prune(max_age=timedelta(days=1), now=WHEN)
    assert deleted == [paths[2], paths[0]]
    assert paths[1].exists()
    assert not (tmp_path / "cam1" / "20250601").exists()


def test_prune_of_a_missing_directory_does_nothing(tmp_path: Path) -> None:
    """A camera that has written nothing yet has nothing to prune."""
    assert prune(tmp_path / "none", max_bytes=0) == []
