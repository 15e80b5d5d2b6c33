"""Clips recorded on a worker thread: same clips as inline, bounded queue, flush and close."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from citywatch.edge.camera.clip_worker import ClipWorker, ClipWorkerClosed
from citywatch.edge.camera.clips import ClipReady, ClipRecorder
from citywatch.edge.camera.evidence import EvidenceStore
from citywatch.hardware.camera.frames import Frame

W, H = 160, 120
WHEN = datetime(2025, 6, 1, 23, 30, tzinfo=UTC)


def frame(index: int) -> Frame:
    image = np.full((H, W, 3), (index * 7) % 256, np.uint8)
    cv2.putText(image, str(index), (10, 60), cv2.FONT_HERSHEY_SIMPLEX, 1, (255, 255, 255), 2)
    return Frame(image, index, index * 0.2)


class GatedRecorder(ClipRecorder):
    """A recorder whose pushes wait for ``gate``: a worker that has fallen behind."""

    def __init__(self, store: EvidenceStore) -> None:
        super().__init__(store, before_s=1.0, after_s=1.0)
        self.gate = threading.Event()
        self.busy = threading.Event()

    def push(self, frame: Frame) -> list[ClipReady]:
        self.busy.set()
        self.gate.wait(10)
        return super().push(frame)


@pytest.fixture
def gated(tmp_path: Path) -> Iterator[tuple[ClipWorker, GatedRecorder]]:
    recorder = GatedRecorder(EvidenceStore(tmp_path, "cam1"))
    worker = ClipWorker(recorder, max_queued_frames=3)
    yield worker, recorder
    recorder.gate.set()
    worker.close()


def record(clips: ClipRecorder | ClipWorker) -> list[ClipReady]:
    """Forty frames at 5 fps with alerts at 2.0 s and 4.0 s, as a camera loop calls it."""
    ready = []
    for i in range(40):
        ready += clips.push(frame(i))
        if i in (10, 20):
            ready += clips.trigger(f"al{i}", i * 0.2, WHEN)
    return ready + clips.flush()


def test_worker_writes_the_clips_the_inline_recorder_writes(tmp_path: Path) -> None:
    """Same frames, same triggers: the same clips, frame for frame, in the same order."""
    inline = record(ClipRecorder(EvidenceStore(tmp_path / "a", "cam1"), before_s=1.0, after_s=1.0))
    recorder = ClipRecorder(EvidenceStore(tmp_path / "b", "cam1"), before_s=1.0, after_s=1.0)
    worker = ClipWorker(recorder, max_queued_frames=64)
    threaded = record(worker)
    worker.close()
    assert worker.frames_dropped == 0 and worker.errors == 0
    assert [(c.name, c.start_s, c.end_s, c.frames) for c in threaded] == [
        (c.name, c.start_s, c.end_s, c.frames) for c in inline
    ]
    assert [c.frames for c in threaded] == [11, 11]
    for a, b in zip(inline, threaded, strict=True):
        assert a.ref.content_type == b.ref.content_type
        assert a.ref.uri.replace("/a/", "/b/") == b.ref.uri and b.ref.sha256 is not None


def test_worker_encodes_ring_frames_in_order(tmp_path: Path) -> None:
    """The ring the worker fills holds the pushed frames in push order."""
    recorder = ClipRecorder(EvidenceStore(tmp_path, "cam1"), before_s=100.0, after_s=1.0)
    worker = ClipWorker(recorder, max_queued_frames=64)
    for i in range(30):
        worker.push(frame(i))
    worker.flush()
    worker.close()
    kept = recorder.ring.since(0)
    assert [f.index for f in kept] == list(range(30))
    decoded = kept[7].image()
    assert decoded.shape == (H, W, 3)
    assert abs(int(decoded[5, 5, 0]) - 49) <= 3  # frame 7's grey level, through JPEG


def test_a_full_queue_drops_new_frames_counted_without_blocking(
    gated: tuple[ClipWorker, GatedRecorder],
) -> None:
    """A worker behind by max_queued_frames: further frames are dropped and counted."""
    worker, recorder = gated
    worker.push(frame(0))
    assert recorder.busy.wait(5)  # the worker holds frame 0, the queue is empty
    for i in range(1, 11):
        assert worker.push(frame(i)) == []  # returns at once: the gate is still shut
    assert worker.queued_frames == 3 and worker.frames_dropped == 7
    recorder.gate.set()
    worker.flush()
    assert [f.index for f in recorder.ring.since(0)] == [0, 1, 2, 3]


def test_the_queue_is_bounded_in_bytes_too(tmp_path: Path) -> None:
    """Big frames fill the byte bound before the frame count: the rest are dropped."""
    recorder = GatedRecorder(EvidenceStore(tmp_path, "cam1"))
    worker = ClipWorker(recorder, max_queued_frames=100, max_queued_bytes=W * H * 3 * 5 // 2)
    try:
        worker.push(frame(0))
        assert recorder.busy.wait(5)
        for i in range(1, 6):
            worker.push(frame(i))
        assert worker.queued_frames == 2 and worker.frames_dropped == 3
    finally:
        recorder.gate.set()
        worker.close()


def test_triggers_are_never_dropped_and_flush_returns_their_clips(
    gated: tuple[ClipWorker, GatedRecorder],
) -> None:
    """A trigger queued behind a full frame queue still records its clip."""
    worker, recorder = gated
    for i in range(6):
        worker.push(frame(i))
    worker.trigger("al1", 0.6, WHEN)
    recorder.gate.set()
    (clip,) = worker.flush()
    assert clip.name == "al1" and clip.frames >= 1
    assert worker.frames_dropped > 0


def test_close_abandons_queued_work_and_refuses_more(
    gated: tuple[ClipWorker, GatedRecorder],
) -> None:
    """After close nothing is recorded and a push says why."""
    worker, recorder = gated
    worker.push(frame(0))
    assert recorder.busy.wait(5)
    worker.push(frame(1))
    recorder.gate.set()
    worker.close()
    assert worker.queued_frames == 0
    with pytest.raises(ClipWorkerClosed, match="closed"):
        worker.push(frame(2))


def test_a_failing_job_is_counted_and_the_worker_goes_on(tmp_path: Path) -> None:
    """A frame that cannot be encoded is logged and counted; later frames still go in."""
    recorder = ClipRecorder(EvidenceStore(tmp_path, "cam1"), before_s=100.0, after_s=1.0)
    worker = ClipWorker(recorder)
    worker.push(Frame(np.zeros((0, 0, 3), np.uint8), 0, 0.0))
    worker.push(frame(1))
    worker.flush()
    worker.close()
    assert worker.errors == 1
    assert [f.index for f in recorder.ring.since(0)] == [1]
