"""The camera edge benchmark's runs (see ``benchmarks/edge.py`` for the method): the rendered
video, the agent's config and offline publisher, one timed pass of the bare loop or of the
agent, and the agent's peak RSS in a fresh process.
"""

from __future__ import annotations

import os

os.environ.setdefault("YOLO_OFFLINE", "1")  # never let ultralytics reach the network
os.environ.setdefault("YOLO_AUTOINSTALL", "false")

import cProfile
import json
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import cv2

from benchmarks.harness import REPO, console, profile_top
from citywatch.config import CitywatchConfig, load_config
from citywatch.config.camera import CameraConfig
from citywatch.config.detector import DetectorBackend, DetectorConfig
from citywatch.contracts import DeviceKind, DeviceRef
from citywatch.edge.camera.agent import CameraGateway
from citywatch.edge.outbox import Outbox
from citywatch.edge.session import EdgeSession
from citywatch.models.detector_factory import MODELS_DIR, load_detector
from citywatch.mqtt_client import BrokerSettings

SUITE = REPO / "configs" / "scenario-suite.yaml"
CACHE = REPO / ".cache" / "bench-edge"
GATEWAY = "gw-suite"
TEMPLATE_CAMERA = "cam-parked-car"
BENCH_DWELL = timedelta(seconds=2)
INLINE = "agent, inline clips"
"""The agent with clips encoded and written on the camera thread (``--inline-clips``)."""
SQUARE = "bare, square input"
"""The bare loop with the frame padded to imgsz × imgsz (what citywatch did before issue 20)."""
TWO_MODELS = "agent, two models"
"""The agent with a camera running two detectors (two loads of the street model)."""

Tick = Callable[..., object]
"""Reports progress: ``tick(completed=frames)``."""


# -- the video ---------------------------------------------------------------------------------
def rendered_video(scenario_name: str, seconds: float) -> tuple[Path, float, int]:
    """(path, fps, frames) of the scenario's first ``seconds``, rendered once into the cache."""
    from citywatch.hardware.camera.street.scenario import load_scenario, render_video

    scenario = load_scenario(scenario_name)
    scenario = scenario.model_copy(update={"duration_s": min(seconds, scenario.duration_s)})
    video = CACHE / f"{scenario.name}-{scenario.duration_s:g}s.mp4"
    if not video.exists():
        partial = video.with_suffix(".partial.mp4")
        render_video(scenario, partial, video.with_suffix(".truth.csv"), progress=True)
        partial.replace(video)
    capture = cv2.VideoCapture(str(video))
    fps = float(capture.get(cv2.CAP_PROP_FPS))
    frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    capture.release()
    if size != (1280, 720):
        console.print(f"[yellow]note: {scenario.name} renders at {size}, not 1280×720[/]")
    return video, fps, frames


# -- the agent's config and publisher ---------------------------------------------------------
@cache
def suite_config() -> tuple[CitywatchConfig, CameraConfig]:
    """The suite's config and the camera the benchmark copies (read once per run)."""
    suite = load_config(SUITE)
    return suite, next(c for c in suite.devices.cameras if c.id == TEMPLATE_CAMERA)


def detector_config(backend: DetectorBackend, imgsz: int, pt: Path | None) -> DetectorConfig:
    """The suite camera's detector (its class floors too) on ``backend`` at ``imgsz``; the
    bare loop and the agent both use it."""
    weights = pt if backend == "ultralytics" and pt is not None else None
    _, template = suite_config()
    return DetectorConfig.model_validate(
        {**template.detector.model_dump(), "backend": backend, "imgsz": imgsz, "weights": weights}
    )


def two_detectors(detector: DetectorConfig, work: Path) -> list[DetectorConfig]:
    """A two-model camera: the street model for vehicles, people and stalls, and a second
    load of it (a copy of the file, so the gateway loads it twice, as two different models)
    for smoke: two inferences per frame and two models in memory."""
    import shutil

    weights = detector.weights_path(MODELS_DIR)
    second = work / f"second-{weights.name}"
    if not second.exists():
        shutil.copy(weights, second)
    first = detector.model_copy(
        update={"classes": ("car", "truck", "bus", "person", "stall"), "corroborated_smoke": None}
    )
    return [first, detector.model_copy(update={"weights": second, "classes": ("smoke",)})]


def bench_config(
    video: Path,
    fps: float,
    detector: DetectorConfig | list[DetectorConfig],
    cameras: int = 1,
    read_ahead: int = 2,
) -> CitywatchConfig:
    """The suite's site with ``cameras`` copies of its first camera playing ``video``
    (``detector`` a list: the camera runs each of them)."""
    suite, template = suite_config()
    rules = []
    for rule in template.model_dump()["rules"]:
        rule["schedule"] = None  # the video's wall clock is "now": no rule may sleep
        if "dwell" in rule:
            rule["dwell"] = BENCH_DWELL
        rules.append(rule)
    source = {"url": str(video), "detect_fps": fps, "speed": 0, "loop": False,
              "read_ahead": read_ahead}  # fmt: skip
    if isinstance(detector, list):
        detectors = {"detectors": [d.model_dump() for d in detector]}
    else:
        detectors = {"detector": detector.model_dump()}
    base = {k: v for k, v in template.model_dump().items() if k not in ("detector", "detectors")}
    copies = [
        CameraConfig.model_validate(base | detectors | {
            "id": f"cam-bench-{i}", "source": source, "rules": rules,
        })
        for i in range(cameras)
    ]  # fmt: skip
    others = [c for c in suite.devices.cameras if c.gateway != GATEWAY]
    devices = suite.devices.model_copy(update={"cameras": tuple([*others, *copies])})
    return suite.model_copy(update={"devices": devices})


def offline_session(config: CitywatchConfig, outbox_path: Path) -> EdgeSession:
    """The gateway's real session, never started: ``publish_many`` stores in the outbox."""
    devices = [
        DeviceRef(site=config.site.id, kind=DeviceKind.CAMERA, id=c.id)
        for c in config.devices.cameras
        if c.gateway == GATEWAY
    ]
    return EdgeSession(
        site=config.site.id, gateway_id=GATEWAY, devices=devices,
        broker=BrokerSettings(host="127.0.0.1", port=1883, username=GATEWAY, password="unused"),
        outbox=Outbox(outbox_path), software="citywatch bench",
    )  # fmt: skip


# -- runs --------------------------------------------------------------------------------------
@dataclass
class Run:
    """One timed pass over the video."""

    kind: str
    frames: int
    wall_s: float
    detect_s: float = 0.0
    """bare: time in the detector call; agent: the pipeline's inference time."""
    pipeline_s: float = 0.0
    """agent: detect + track + rules + evidence (the pipeline's own clock)."""
    alerts: int = 0
    evidence: int = 0
    outbox: int = 0
    clip_frames_dropped: int = 0
    """agent: ring frames the clip worker dropped because it was behind."""

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    def ms_per_frame(self, seconds: float) -> float:
        return 1000 * seconds / self.frames if self.frames else 0.0


def bare_loop(kind: str, video: Path, detect: Callable[[Any], object], tick: Tick) -> Run:
    """Decode every frame of ``video`` with OpenCV and ``detect`` it; nothing else."""
    detect_s = 0.0
    frames = 0
    started = time.perf_counter()
    capture = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
    while True:
        ok, image = capture.read()
        if not ok:
            break
        begun = time.perf_counter()
        detect(image)
        detect_s += time.perf_counter() - begun
        frames += 1
        if frames % 10 == 0:
            tick(completed=frames)
    capture.release()
    return Run(kind, frames, time.perf_counter() - started, detect_s)


def bare_onnx(video: Path, imgsz: int, tick: Tick, square: bool = False) -> Run:
    """The onnx baseline: the detector call the agent makes (its settings: the model runs at
    the lowest floor, corroborated smoke's), frame-shaped input (model loaded before the
    clock starts); ``square``: padded to imgsz × imgsz instead."""
    shape = "square" if square else "frame"
    settings = detector_config("onnx", imgsz, None)
    detector = load_detector(settings.model_copy(update={"input_shape": shape}))
    return bare_loop(SQUARE if square else "bare", video, detector.detect, tick)


def bare_predict(video: Path, imgsz: int, pt: Path, tick: Tick, rect: bool = True) -> Run:
    """The ultralytics baseline: ``predict`` with the agent's arguments (frame-shaped,
    ``rect=True``); ``rect=False`` pads to the square, for the shape comparison."""
    from ultralytics import YOLO

    config = detector_config("ultralytics", imgsz, pt)
    model = YOLO(str(pt), task="detect")
    return bare_loop(
        "bare" if rect else SQUARE, video,
        lambda image: model.predict(image, imgsz=imgsz, conf=config.model_floor, iou=config.iou,
                                    device="cpu", rect=rect, verbose=False),
        tick,
    )  # fmt: skip


def agent(
    config: CitywatchConfig, work: Path, evidence: bool, tick: Tick,
    profiler: cProfile.Profile | None = None, clip_thread: bool = True,
) -> Run:  # fmt: skip
    """Run the gateway until the file ends; wall time ends when the camera threads do
    (``clip_thread`` False: clips recorded inline on the camera thread, for comparison)."""
    name = f"{'ev' if evidence else 'noev'}-{time.monotonic_ns()}"
    session = offline_session(config, work / f"outbox-{name}.sqlite")
    gateway = CameraGateway(
        config, GATEWAY, session, evidence_dir=work / f"evidence-{name}" if evidence else None,
        stop=threading.Event(), clip_thread=clip_thread,
    )  # fmt: skip
    workers = list(gateway.workers.values())
    finished: list[float] = []

    def watch() -> None:
        for worker in workers:
            while worker.thread.ident is None:
                time.sleep(0.001)
            while worker.thread.is_alive():
                worker.thread.join(0.25)
                tick(completed=sum(w.stats.frames for w in workers))
        finished.append(time.perf_counter())

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    if profiler is not None:  # cProfile sees one thread: enable it in the camera thread
        threading.setprofile(lambda *_: profiler.enable())
    started = time.perf_counter()
    try:
        gateway.run()
    finally:
        threading.setprofile(None)
    watcher.join()
    wall_s = finished[0] - started
    pipelines = [w.pipeline for w in workers if w.pipeline is not None]
    run = Run(
        ("agent" if clip_thread else INLINE) if evidence else "agent, no evidence",
        sum(w.stats.frames for w in workers), wall_s,
        sum(p.stats.inference_s for p in pipelines), sum(p.stats.pipeline_s for p in pipelines),
        sum(w.stats.alerts for w in workers), sum(w.stats.evidence for w in workers),
        len(session.outbox), sum(p.clip_frames_dropped for p in pipelines),
    )  # fmt: skip
    session.outbox.close()
    errors = [w.stats.last_error for w in workers if w.stats.errors]
    if errors:
        raise RuntimeError(f"camera errors during the agent run: {errors}")
    return run


def profile_agent(video: Path, fps: float, imgsz: int, work: Path, top: int) -> str:
    """cProfile of the camera thread over one onnx agent run: where the agent's time goes."""
    config = bench_config(video, fps, detector_config("onnx", imgsz, None))
    profiler = cProfile.Profile()
    agent(config, work, True, lambda **_: None, profiler)
    profiler.disable()
    return profile_top(profiler, top)


# -- peak RSS in a fresh process ---------------------------------------------------------------
def rss_child(
    video: Path, fps: float, imgsz: int, cameras: int, work: Path, models: int = 1
) -> dict[str, Any]:
    """Run in the subprocess: the agent on ``cameras`` cameras (0: the bare onnx loop), each
    running ``models`` detectors (1, or 2: :func:`two_detectors`)."""
    if cameras == 0:
        run = bare_onnx(video, imgsz, lambda **_: None)
    else:
        detector = detector_config("onnx", imgsz, None)
        chosen = two_detectors(detector, work) if models == 2 else detector
        run = agent(bench_config(video, fps, chosen, cameras), work, True, lambda **_: None)
    return {
        "cameras": cameras,
        "models": models,
        "frames": run.frames,
        "fps": run.fps,
        "peak_rss_mb": peak_rss_mb(),
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "torch_imported": "torch" in sys.modules,
        "ultralytics_imported": "ultralytics" in sys.modules,
    }


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM). Not ``ru_maxrss``: Linux carries that over
    fork + exec, so a child started by a big parent reports the parent's size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: no carry-over


def measure_rss(
    video: Path, fps: float, imgsz: int, cameras: int, work: Path, models: int = 1
) -> dict[str, Any]:
    """Peak RSS and more of :func:`rss_child` in a fresh ``benchmarks.edge`` process."""
    command = [sys.executable, "-m", "benchmarks.edge", "--rss-child", str(cameras), "--video",
               str(video), "--fps", str(fps), "--rss-imgsz", str(imgsz), "--work", str(work),
               "--rss-models", str(models)]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=1800, cwd=REPO
    )
    if done.returncode != 0:
        raise RuntimeError(f"RSS subprocess failed ({done.returncode}): {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
