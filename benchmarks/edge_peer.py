"""The camera edge benchmark's peer row and per-frame budget (issue 20; method in
``benchmarks/edge.py``).

Peer: ultralytics ``solutions.TrackZone`` against citywatch's camera agent on the same video,
``.pt`` and imgsz, runs alternated. What each side does per frame:

- TrackZone (ultralytics' own zone-tracking solution, as its docs run it): the frame decoded
  by ``cv2.VideoCapture.read`` on the calling thread (the bare loop's decode); masked to the
  region (``cv2.bitwise_and``), the region being the convex hull of the camera's zones in
  pixels (TrackZone tracks in one convex region; citywatch's camera watches the union of its
  two zones); ``model.track`` (``predict`` frame-shaped, 320×192 at 320, at the agent's model
  confidence and iou, then ultralytics' ByteTrack, ``bytetrack.yaml``: its default tracker in
  this version is TrackTrack); then its default drawing, the region outline and a labelled
  box per track on the frame it returns. No window (``show=False``), no per-frame log
  (``verbose=False``), ``YOLO_OFFLINE=1``.
- citywatch: the whole camera agent as the other rows run it (decode on the reader thread,
  detect, ByteTrack from ``trackers``, the three rules over two zones, smoke corroboration,
  evidence snapshots and clips of its alerts, publish into the outbox), on the onnx backend
  (the bundled ``.onnx`` export of the same weights) and on the ultralytics backend (the same
  ``.pt``). It draws nothing per frame (only an alert's snapshot is annotated).

Two pairings, each against the targets: as shipped (TrackZone drawing its frame, the agent
writing its evidence: snapshots, crops, frames and WebM clips of its alerts, which on this
benchmark's short video with its dwell cut to 2 s come every few seconds of video), and
both without their output (``TrackZone, no drawing``: its region mask and ``extract_tracks``
only, TrackZone's ``process`` less the drawing; the agent without evidence).

Per-frame budget: the agent's wall time per frame over the raw frame-shaped detector call's
ms per frame (the bare loop's clock around the call, decode excluded), same frames, same
backend, same detector settings; ≤ 1.3× is the issue's target.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.edge_runs import Run, Tick, bare_loop, detector_config, suite_config
from benchmarks.harness import mark

__all__ = [
    "AGENT_ONNX",
    "AGENT_ULTRALYTICS",
    "CALL_TARGET",
    "PEER",
    "PEER_PAIRS",
    "PEER_TARGET",
    "QUIET",
    "TRACKZONE",
    "TRACKZONE_QUIET",
    "budget",
    "budget_lines",
    "paired_median",
    "peer_lines",
    "peer_record",
    "trackzone",
    "trackzone_missing",
    "trackzone_region",
]

PEER = "trackzone"
"""The peer row's name in ``--backends``."""
TRACKZONE = "ultralytics TrackZone"
TRACKZONE_QUIET = "TrackZone, no drawing"
AGENT_ONNX = "agent, onnx"
AGENT_ULTRALYTICS = "agent, ultralytics"
QUIET = ", no evidence"
PEER_TARGET = {"onnx": 1.6, "ultralytics": 1.0}
"""citywatch frames/s over TrackZone's, per backend, at each imgsz (issue 20)."""
PEER_PAIRS = [
    (f"{agent}{quiet}", zone, PEER_TARGET[agent.removeprefix("agent, ")])
    for quiet, zone in (("", TRACKZONE), (QUIET, TRACKZONE_QUIET))
    for agent in (AGENT_ONNX, AGENT_ULTRALYTICS)
]
"""(citywatch run, TrackZone run, target): as shipped, then both without their output."""
CALL_TARGET = 1.3
"""The agent's time per frame over the raw frame-shaped detector call's, at most (issue 20)."""


def paired_median(
    runs: Sequence[Run], baselines: Sequence[Run], value: Callable[[Run], float],
    baseline_value: Callable[[Run], float] | None = None,
) -> float | None:  # fmt: skip
    """Median over the repeats of ``value(run)`` over ``baseline_value(baseline)`` (default
    ``value``) of the same repeat: robust to the load of a shared machine drifting between
    repeats; None with no usable pair."""
    of_baseline = baseline_value or value
    pairs = zip(runs, baselines, strict=False)
    ratios = [value(a) / of_baseline(b) for a, b in pairs if of_baseline(b) > 0]
    return statistics.median(ratios) if ratios else None


def budget(agent: Sequence[Run], bare: Sequence[Run]) -> float | None:
    """The agent's wall ms per frame over the bare loop's detector-call ms per frame."""
    return paired_median(agent, bare, ms_per_frame, call_ms)


def fps(run: Run) -> float:
    return run.fps


def ms_per_frame(run: Run) -> float:
    """The run's whole wall time per frame."""
    return run.ms_per_frame(run.wall_s)


def call_ms(run: Run) -> float:
    """The detector call's own time per frame (the bare loop's clock around the call)."""
    return run.ms_per_frame(run.detect_s)


def trackzone_missing() -> str | None:
    """Why TrackZone cannot run here, or None: it needs ultralytics and ``lap`` (for its
    trackers; the ``vision`` extra installs both)."""
    import importlib.util

    for module in ("ultralytics", "lap"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install -e '.[vision]')"
    return None


def trackzone_region(width: int, height: int) -> list[tuple[int, int]]:
    """The benchmark camera's zones in pixels, as one convex region (TrackZone's kind)."""
    from shapely.geometry import Polygon
    from shapely.ops import unary_union

    _, camera = suite_config()
    zones = [Polygon([(x * width, y * height) for x, y in z.polygon]) for z in camera.zones]
    hull = unary_union(zones).convex_hull
    return [(round(x), round(y)) for x, y in list(hull.exterior.coords)[:-1]]


def trackzone(video: Path, imgsz: int, pt: Path, tick: Tick, draw: bool = True) -> Run:
    """One pass of ``solutions.TrackZone`` over ``video`` (loaded before the clock starts),
    at the agent's model confidence and iou, ByteTrack, no window, no per-frame log;
    ``draw`` False: its ``process`` without the drawing (mask and tracks only)."""
    import cv2
    from ultralytics import solutions
    from ultralytics.solutions.solutions import SolutionResults

    class TrackOnly(solutions.TrackZone):
        """TrackZone's ``process`` less its region outline and box labels."""

        def process(self, im0: Any) -> SolutionResults:
            if self.mask is None:
                self.mask = np.zeros_like(im0[:, :, 0])
                cv2.fillPoly(self.mask, [self.region], 255)
            self.extract_tracks(cv2.bitwise_and(im0, im0, mask=self.mask))
            return SolutionResults(plot_im=im0, total_tracks=len(self.track_ids))

    capture = cv2.VideoCapture(str(video))
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    capture.release()
    settings = detector_config("ultralytics", imgsz, pt)
    solution = (solutions.TrackZone if draw else TrackOnly)(
        model=str(pt), region=trackzone_region(*size), imgsz=imgsz, device="cpu",
        conf=settings.model_floor, iou=settings.iou, tracker="bytetrack.yaml", show=False, verbose=False,
    )  # fmt: skip
    return bare_loop(TRACKZONE if draw else TRACKZONE_QUIET, video, solution, tick)


def peer_record(runs: dict[str, list[Run]], imgsz: int) -> dict[str, Any]:
    """The peer row's figures for the JSON: per pairing, citywatch's frames/s over
    TrackZone's and the target."""
    out: dict[str, Any] = {"imgsz": imgsz}
    for side, zone, target in PEER_PAIRS:
        value = paired_median(runs.get(side, []), runs.get(zone, []), fps)
        out[f"{side} / {zone}"] = {"ratio": value, "target": target,
                                   "pass": None if value is None else value >= target}  # fmt: skip
    return out


def peer_lines(runs: dict[str, list[Run]], imgsz: int) -> list[str]:
    """One line per pairing: citywatch's frames/s against TrackZone's, and the target."""
    lines = []
    for side, zone, target in PEER_PAIRS:
        value = paired_median(runs.get(side, []), runs.get(zone, []), fps)
        if value is None:
            continue
        side_fps = statistics.median(r.fps for r in runs[side])
        zone_fps = statistics.median(r.fps for r in runs[zone])
        lines.append(
            f"  imgsz {imgsz}: {side} {side_fps:.1f} fps vs {zone} {zone_fps:.1f}: {value:.2f}×"
            f" (median of repeats; target ≥ {target}) {mark(value >= target)}"
        )
    return lines


def budget_lines(backend: str, imgsz: int, runs: dict[str, list[Run]]) -> list[str]:
    """The agent's ms per frame (with its evidence, and without where measured) against the
    raw frame-shaped detector call's, and the target."""
    bare = runs.get("bare", [])
    lines = []
    for kind in ("agent", "agent, no evidence"):
        value = budget(runs.get(kind, []), bare)
        if value is None:
            continue
        agent_ms = statistics.median(ms_per_frame(r) for r in runs[kind])
        call = statistics.median(call_ms(r) for r in bare)
        lines.append(
            f"  {backend} {imgsz}: {kind} {agent_ms:.1f} ms per frame vs the raw frame-shaped"
            f" call {call:.1f} ms: {value:.2f}× (median of repeats; target ≤ {CALL_TARGET})"
            f" {mark(value <= CALL_TARGET)}"
        )
    return lines
