"""Camera edge benchmark: the whole agent path against a bare detector loop, same run.

Targets (the camera-agent issue), on a rendered 1280×720 street video:

- the agent path (decode → detect → track → rules → evidence → publish into the durable
  outbox) reaches ≥ 0.9 of the frames/s of a bare loop over the same frames: OpenCV decode
  plus the same backend's detector call and nothing else;
- frames/s at imgsz 320 and 640 for both backends (onnx, ultralytics);
- peak RSS of a one-camera agent process on the onnx backend ≤ 400 MB, and that process
  never imports torch.

Method. Every figure is a ratio against a baseline measured in the same run, because the
machine is shared. Per (backend, imgsz) and per repeat the runs alternate: bare loop, agent
with evidence (snapshots, crops and clips, the default), agent without; the median
frames/s of the repeats is reported (``--inline-clips`` adds an agent run that records clips
on the camera thread instead of the clip worker, to show what the worker saves;
``--no-read-ahead`` one that decodes on the camera thread, without the reader thread). Each kind
first runs once, untimed, on a 1 s clip (the process's one-time imports and setup); each
timed run then starts from a freshly loaded model (loading is not timed, the first
inference is, in both loops). Baselines:

- onnx: ``OnnxDetector.detect`` (letterbox, onnxruntime, decode, NMS): the detector call
  the agent makes, alone with decode;
- ultralytics: ``YOLO(pt).predict(frame, imgsz, conf, iou, rect=False, verbose=False)``,
  the same call and arguments the agent's detector makes (``rect=False`` pads to the full
  square; a default predict letterboxes 1280×720 to 640×384 and is faster for that reason
  alone, shown for reference as "predict default").

The agent runs :class:`~citywatch.edge.camera.agent.CameraGateway` on one camera of
``configs/scenario-suite.yaml`` with the video file as source, ``detect_fps`` = the video's
rate (every frame detected, like the bare loop), ``speed: 0``, and dwell times cut to 2 s
without schedules so alerts, evidence and clips do happen within a short video. It
publishes through a real :class:`~citywatch.edge.session.EdgeSession` that is never
connected: ``publish_many`` stores in the SQLite outbox (one fsync per batch), which is
the agent's whole publish cost; sending is the session's own threads' work.

Peak RSS is the high-water mark (VmHWM; ``ru_maxrss`` is recorded too, but Linux carries it
over from the parent through fork + exec) of a fresh subprocess running the agent on 1, 2
and 4 cameras sharing one onnx model (evidence on), and of a bare onnx loop process.

    YOLO_OFFLINE=1 .venv/bin/python benchmarks/edge.py [--seconds 20] [--repeats 3] [--quick]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import math
import os
import platform
import pstats
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache, partial
from io import StringIO
from pathlib import Path
from typing import Any

os.environ.setdefault("YOLO_OFFLINE", "1")  # never let ultralytics reach the network
os.environ.setdefault("YOLO_AUTOINSTALL", "false")

import cv2
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from citywatch.cli.progress import counted_progress
from citywatch.config import CitywatchConfig, load_config
from citywatch.config.camera import CameraConfig
from citywatch.config.detector import DetectorBackend, DetectorConfig
from citywatch.contracts import DeviceKind, DeviceRef
from citywatch.edge.camera.agent import CameraGateway
from citywatch.edge.outbox import Outbox
from citywatch.edge.session import EdgeSession
from citywatch.models.detector_factory import MODELS_DIR, load_detector
from citywatch.mqtt_client import BrokerSettings

REPO = Path(__file__).resolve().parents[1]
SUITE = REPO / "configs" / "scenario-suite.yaml"
CACHE = REPO / ".cache" / "bench-edge"
RESULTS = Path(__file__).resolve().parent / "results"
GATEWAY = "gw-suite"
TEMPLATE_CAMERA = "cam-parked-car"
RATIO_TARGET = 0.9
RSS_TARGET_MB = 400.0
BENCH_DWELL = timedelta(seconds=2)
INLINE = "agent, inline clips"
"""The agent with clips encoded and written on the camera thread (``--inline-clips``)."""
NO_READ_AHEAD = "agent, decode on camera thread"
"""The agent with ``source.read_ahead: 0`` (``--no-read-ahead``): no reader thread."""
WARMUP_S = 1.0
"""Seconds of video each kind of pass runs untimed first."""
console = Console(width=None if sys.stdout.isatty() else 140)


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


def bench_config(
    video: Path, fps: float, detector: DetectorConfig, cameras: int = 1, read_ahead: int = 2
) -> CitywatchConfig:
    """The suite's site with ``cameras`` copies of its first camera playing ``video``."""
    suite, template = suite_config()
    rules = []
    for rule in template.model_dump()["rules"]:
        rule["schedule"] = None  # the video's wall clock is "now": no rule may sleep
        if "dwell" in rule:
            rule["dwell"] = BENCH_DWELL
        rules.append(rule)
    copies = [
        CameraConfig.model_validate(
            {
                **template.model_dump(),
                "id": f"cam-bench-{i}",
                "source": {
                    "url": str(video),
                    "detect_fps": fps,
                    "speed": 0,
                    "loop": False,
                    "read_ahead": read_ahead,
                },
                "detector": detector.model_dump(),
                "rules": rules,
            }
        )
        for i in range(cameras)
    ]
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
        site=config.site.id,
        gateway_id=GATEWAY,
        devices=devices,
        broker=BrokerSettings(host="127.0.0.1", port=1883, username=GATEWAY, password="unused"),
        outbox=Outbox(outbox_path),
        software="citywatch bench",
    )


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


def bare_onnx(video: Path, imgsz: int, tick: Callable[..., object]) -> Run:
    detector = load_detector(DetectorConfig(backend="onnx", imgsz=imgsz))
    detect_s = 0.0
    frames = 0
    started = time.perf_counter()
    capture = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
    while True:
        ok, image = capture.read()
        if not ok:
            break
        begun = time.perf_counter()
        detector.detect(image)
        detect_s += time.perf_counter() - begun
        frames += 1
        if frames % 10 == 0:
            tick(completed=frames)
    capture.release()
    return Run("bare", frames, time.perf_counter() - started, detect_s)


def bare_predict(
    video: Path, imgsz: int, pt: Path, tick: Callable[..., object], rect: bool = False
) -> Run:
    from ultralytics import YOLO

    config = DetectorConfig(backend="ultralytics", imgsz=imgsz)
    model = YOLO(str(pt), task="detect")
    detect_s = 0.0
    frames = 0
    started = time.perf_counter()
    capture = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
    while True:
        ok, image = capture.read()
        if not ok:
            break
        begun = time.perf_counter()
        model.predict(
            image,
            imgsz=imgsz,
            conf=config.confidence,
            iou=config.iou,
            device="cpu",
            rect=rect,
            verbose=False,
        )
        detect_s += time.perf_counter() - begun
        frames += 1
        if frames % 10 == 0:
            tick(completed=frames)
    capture.release()
    return Run(
        "bare" if not rect else "predict default", frames, time.perf_counter() - started, detect_s
    )


def agent(
    config: CitywatchConfig,
    work: Path,
    evidence: bool,
    tick: Callable[..., object],
    profiler: cProfile.Profile | None = None,
    clip_thread: bool = True,
) -> Run:
    """Run the gateway until the file ends; wall time ends when the camera threads do
    (``clip_thread`` False: clips recorded inline on the camera thread, for comparison)."""
    name = f"{'ev' if evidence else 'noev'}-{time.monotonic_ns()}"
    session = offline_session(config, work / f"outbox-{name}.sqlite")
    gateway = CameraGateway(
        config,
        GATEWAY,
        session,
        evidence_dir=work / f"evidence-{name}" if evidence else None,
        stop=threading.Event(),
        clip_thread=clip_thread,
    )
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
        sum(w.stats.frames for w in workers),
        wall_s,
        sum(p.stats.inference_s for p in pipelines),
        sum(p.stats.pipeline_s for p in pipelines),
        sum(w.stats.alerts for w in workers),
        sum(w.stats.evidence for w in workers),
        len(session.outbox),
        sum(p.clip_frames_dropped for p in pipelines),
    )
    session.outbox.close()
    errors = [w.stats.last_error for w in workers if w.stats.errors]
    if errors:
        raise RuntimeError(f"camera errors during the agent run: {errors}")
    return run


# -- the table rows ----------------------------------------------------------------------------
@dataclass
class Row:
    backend: str
    imgsz: int
    runs: dict[str, list[Run]] = field(default_factory=dict)
    skipped: str | None = None

    def median_fps(self, kind: str) -> float | None:
        runs = self.runs.get(kind)
        return statistics.median(r.fps for r in runs) if runs else None

    def ratio(self, kind: str = "agent") -> float | None:
        bare, other = self.median_fps("bare"), self.median_fps(kind)
        return other / bare if bare and other is not None else None

    def breakdown(self) -> dict[str, float]:
        """ms per frame where the time goes (medians over repeats)."""
        out: dict[str, float] = {}
        for kind, runs in self.runs.items():
            parts = {
                "total": [r.ms_per_frame(r.wall_s) for r in runs],
                "detect": [r.ms_per_frame(r.detect_s) for r in runs],
            }
            if kind.startswith("agent"):
                parts["track+rules+evidence"] = [
                    r.ms_per_frame(r.pipeline_s - r.detect_s) for r in runs
                ]
                parts["decode+publish+other"] = [
                    r.ms_per_frame(r.wall_s - r.pipeline_s) for r in runs
                ]
            else:
                parts["decode"] = [r.ms_per_frame(r.wall_s - r.detect_s) for r in runs]
            for name, values in parts.items():
                out[f"{kind}: {name}"] = round(statistics.median(values), 2)
        return out

    def record(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "imgsz": self.imgsz,
            "skipped": self.skipped,
            "median_fps": {k: self.median_fps(k) for k in self.runs},
            "ratio_agent": self.ratio("agent"),
            "ratio_agent_no_evidence": self.ratio("agent, no evidence"),
            "ratio_agent_inline_clips": self.ratio(INLINE),
            "ratio_agent_no_read_ahead": self.ratio(NO_READ_AHEAD),
            "target_ratio": RATIO_TARGET,
            "pass": (self.ratio() or 0.0) >= RATIO_TARGET if not self.skipped else None,
            "ms_per_frame": self.breakdown() if self.runs else {},
            "runs": {k: [asdict(r) | {"fps": r.fps} for r in v] for k, v in self.runs.items()},
        }


Runner = Callable[[Path, float, Callable[..., object]], Run]
"""One kind of timed pass: (video, fps, progress tick) → the run."""


def runners(row: Row, args: argparse.Namespace, work: Path) -> list[tuple[str, Runner]]:
    """The kinds of pass one row alternates, the bare baseline first."""
    backend: DetectorBackend = "onnx" if row.backend == "onnx" else "ultralytics"
    detector = detector_config(backend, row.imgsz, args.pt)
    pt = args.pt or MODELS_DIR / "street" / "citywatch-street.pt"

    def on_agent(evidence: bool, clip_thread: bool = True, read_ahead: int = 2) -> Runner:
        return lambda video, fps, tick: agent(
            bench_config(video, fps, detector, read_ahead=read_ahead),
            work,
            evidence,
            tick,
            clip_thread=clip_thread,
        )

    kinds: list[tuple[str, Runner]] = []
    if backend == "onnx":
        kinds.append(("bare", lambda video, fps, tick: bare_onnx(video, row.imgsz, tick)))
    else:
        kinds.append(("bare", lambda video, fps, tick: bare_predict(video, row.imgsz, pt, tick)))
    kinds.append(("agent", on_agent(True)))
    if args.inline_clips:
        kinds.append((INLINE, on_agent(True, clip_thread=False)))
    if args.no_read_ahead:
        kinds.append((NO_READ_AHEAD, on_agent(True, read_ahead=0)))
    if not args.quick:
        kinds.append(("agent, no evidence", on_agent(False)))
        if backend == "ultralytics":
            kinds.append(
                (
                    "predict default",
                    lambda video, fps, tick: bare_predict(video, row.imgsz, pt, tick, rect=True),
                )
            )
    return kinds


def measure_row(
    row: Row,
    video: tuple[Path, float, int],
    warmup: tuple[Path, float, int],
    args: argparse.Namespace,
    work: Path,
    progress: Progress,
) -> None:
    """Warm each kind up on a short clip (one-time imports and kernel setup of the process),
    then time the repeats, alternating the kinds."""
    kinds = runners(row, args, work)
    task = progress.add_task(f"{row.backend} {row.imgsz} · warm-up", total=len(kinds))
    for _kind, run in kinds:
        run(warmup[0], warmup[1], lambda **_: None)
        progress.advance(task)
    path, fps, frames = video
    for repeat in range(args.repeats):
        for kind, run in kinds:
            label = f"{row.backend} {row.imgsz} · {kind} · {repeat + 1}/{args.repeats}"
            task = progress.add_task(label, total=frames)
            result = run(path, fps, partial(progress.update, task))
            progress.update(task, completed=frames, description=f"{label} · {result.fps:.1f} fps")
            row.runs.setdefault(kind, []).append(result)


def profile_agent(video: Path, fps: float, imgsz: int, work: Path, top: int) -> str:
    """cProfile of the camera thread over one onnx agent run: where the agent's time goes."""
    config = bench_config(video, fps, detector_config("onnx", imgsz, None))
    profiler = cProfile.Profile()
    agent(config, work, True, lambda **_: None, profiler)
    profiler.disable()
    text = StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)
    return text.getvalue()


# -- peak RSS in a fresh process ---------------------------------------------------------------
def rss_child(video: Path, fps: float, imgsz: int, cameras: int, work: Path) -> dict[str, Any]:
    """Run in the subprocess: the agent on ``cameras`` cameras (0: the bare onnx loop)."""
    if cameras == 0:
        run = bare_onnx(video, imgsz, lambda **_: None)
    else:
        config = bench_config(video, fps, detector_config("onnx", imgsz, None), cameras)
        run = agent(config, work, True, lambda **_: None)
    return {
        "cameras": cameras,
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


def measure_rss(video: Path, fps: float, imgsz: int, cameras: int, work: Path) -> dict[str, Any]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--rss-child",
        str(cameras),
        "--video",
        str(video),
        "--fps",
        str(fps),
        "--rss-imgsz",
        str(imgsz),
        "--work",
        str(work),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"RSS subprocess failed ({done.returncode}): {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# -- main --------------------------------------------------------------------------------------
def reproduce(args: argparse.Namespace) -> str:
    parts = [
        "YOLO_OFFLINE=1",
        ".venv/bin/python",
        "benchmarks/edge.py",
        "--seconds",
        f"{args.seconds:g}",
        "--repeats",
        str(args.repeats),
        "--imgsz",
        *map(str, args.imgsz),
        "--backends",
        *args.backends,
        "--scenario",
        args.scenario,
    ]
    if args.quick:
        parts.append("--quick")
    if args.pt:
        parts += ["--pt", str(args.pt)]
    if args.no_rss:
        parts.append("--no-rss")
    if args.profile:
        parts.append("--profile")
    if args.inline_clips:
        parts.append("--inline-clips")
    if args.no_read_ahead:
        parts.append("--no-read-ahead")
    return " ".join(shlex.quote(p) if p[0] not in "Y." else p for p in parts)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--seconds", type=float, default=None, help="video length (default 20; 6 with --quick)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="alternated repeats per row")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="short smoke run: 6 s video, 1 repeat, no no-evidence runs, RSS of one camera only",
    )
    parser.add_argument("--imgsz", type=int, nargs="+", default=[320, 640])
    parser.add_argument(
        "--backends", nargs="+", choices=["onnx", "ultralytics"], default=["onnx", "ultralytics"]
    )
    parser.add_argument("--scenario", default="street-day", help="scene in configs/scenarios/")
    parser.add_argument(
        "--pt",
        type=Path,
        default=None,
        help="ultralytics weights (default: the bundled models/street/*.pt)",
    )
    parser.add_argument("--no-rss", action="store_true", help="skip the RSS subprocesses")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="cProfile one onnx agent run (the camera thread) and print the top",
    )
    parser.add_argument(
        "--inline-clips",
        action="store_true",
        help="also run the agent with clips recorded on the camera thread (no clip worker)",
    )
    parser.add_argument(
        "--no-read-ahead",
        action="store_true",
        help="also run the agent decoding on the camera thread (source.read_ahead: 0)",
    )
    parser.add_argument("--out", type=Path, default=None, help="results JSON path")
    parser.add_argument("--rss-child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--video", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--fps", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--rss-imgsz", type=int, default=320, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.seconds is None:
        args.seconds = 6.0 if args.quick else 20.0
    if args.quick:
        args.repeats = 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.rss_child is not None:
        print(
            json.dumps(rss_child(args.video, args.fps, args.rss_imgsz, args.rss_child, args.work))
        )
        return 0
    console.print(f"[bold]reproduce:[/] {reproduce(args)}", highlight=False, soft_wrap=True)
    with console.status(f"rendering {args.scenario}, {args.seconds:g} s…"):
        video, fps, frames = rendered_video(args.scenario, args.seconds)
        warmup = rendered_video(args.scenario, WARMUP_S)
    console.print(f"video: {video} ({frames} frames at {fps:g} fps)", highlight=False)
    pt = args.pt or MODELS_DIR / "street" / "citywatch-street.pt"
    rows: list[Row] = []
    for backend in args.backends:
        for imgsz in args.imgsz:
            row = Row(backend, imgsz)
            if backend == "ultralytics" and not pt.exists():
                row.skipped = f"no ultralytics weights at {pt} (pass --pt, or wait for the model)"
            rows.append(row)
    for row in rows:
        if row.skipped:
            console.print(f"[yellow]skip {row.backend} {row.imgsz}: {row.skipped}[/]")
    rss: list[dict[str, Any]] = []
    profile = ""
    with tempfile.TemporaryDirectory(prefix="citywatch-bench-edge-") as tmp:
        work = Path(tmp)
        with counted_progress(console) as progress:
            for row in rows:
                if not row.skipped:
                    measure_row(row, (video, fps, frames), warmup, args, work, progress)
        if not args.no_rss:
            for cameras in [0, 1] if args.quick else [0, 1, 2, 4]:
                what = f"{cameras} camera(s)" if cameras else "bare onnx loop"
                with console.status(f"peak RSS in a fresh process: {what}…"):
                    rss.append(measure_rss(video, fps, min(args.imgsz), cameras, work))
        if args.profile:
            with console.status("profiling one onnx agent run…"):
                profile = profile_agent(video, fps, min(args.imgsz), work, 25)
    return report(args, video, fps, frames, rows, rss, profile)


def breakdown_table(rows: list[Row]) -> Table:
    """ms per frame by stage (medians over the repeats), from the loops' and pipeline's clocks."""
    table = Table(title="where the time goes (ms per frame, median)")
    for column in (
        "backend",
        "imgsz",
        "run",
        "total",
        "detect",
        "track+rules+evidence",
        "decode+publish+other",
        "alerts",
        "evidence",
        "outbox",
    ):
        table.add_column(column, justify="left" if column in ("backend", "run") else "right")
    for row in rows:
        cells = row.breakdown()
        for kind, runs in row.runs.items():
            last = runs[-1]
            agent_run = kind.startswith("agent")
            table.add_row(
                row.backend,
                str(row.imgsz),
                kind,
                f"{cells[f'{kind}: total']:.1f}",
                f"{cells[f'{kind}: detect']:.1f}",
                f"{cells[f'{kind}: track+rules+evidence']:.1f}" if agent_run else "–",
                f"{cells[f'{kind}: ' + ('decode+publish+other' if agent_run else 'decode')]:.1f}",
                str(last.alerts) if agent_run else "",
                str(last.evidence) if agent_run else "",
                str(last.outbox) if agent_run else "",
            )
    return table


def report(
    args: argparse.Namespace,
    video: Path,
    fps: float,
    frames: int,
    rows: list[Row],
    rss: list[dict[str, Any]],
    profile: str,
) -> int:
    table = Table(title=f"camera agent vs bare detector loop ({frames} frames, 1280×720)")
    for column in (
        "backend",
        "imgsz",
        "bare fps",
        "agent fps",
        "ratio",
        "no-evidence fps",
        "ratio",
        "target",
        "pass",
    ):
        table.add_column(column, justify="right" if column not in ("backend", "pass") else "left")
    for row in rows:
        if row.skipped:
            table.add_row(
                row.backend, str(row.imgsz), "–", "–", "–", "–", "–", f"≥ {RATIO_TARGET}", "skipped"
            )
            continue
        cells = [row.median_fps(k) for k in ("bare", "agent", "agent, no evidence")]
        ratios = [row.ratio("agent"), row.ratio("agent, no evidence")]
        ok = (ratios[0] or 0.0) >= RATIO_TARGET
        fmt = lambda v, spec=".1f": "–" if v is None else format(v, spec)  # noqa: E731
        table.add_row(
            row.backend,
            str(row.imgsz),
            fmt(cells[0]),
            fmt(cells[1]),
            fmt(ratios[0], ".2f"),
            fmt(cells[2]),
            fmt(ratios[1], ".2f"),
            f"≥ {RATIO_TARGET}",
            "[green]✓[/]" if ok else "[red]✗[/]",
        )
    console.print(table)
    console.print(breakdown_table(rows))
    for row in rows:
        if INLINE in row.runs:
            console.print(
                f"  {row.backend} {row.imgsz}: with clips recorded inline on the camera thread"
                f" the agent runs {row.median_fps(INLINE):.1f} fps"
                f" ({row.ratio(INLINE):.2f} of bare)",
                highlight=False,
            )
        if "predict default" in row.runs:
            console.print(
                f"  {row.backend} {row.imgsz}: a default predict (rect=True: 1280×720 goes in as"
                f" {row.imgsz}×{math.ceil(row.imgsz * 720 / 1280 / 32) * 32}) runs"
                f" {row.median_fps('predict default'):.1f} fps, for reference",
                highlight=False,
            )
    rss_pass: bool | None = None
    if rss:
        one = next((r for r in rss if r["cameras"] == 1), None)
        rss_pass = one is not None and one["peak_rss_mb"] <= RSS_TARGET_MB
        rss_pass = rss_pass and not any(r["torch_imported"] for r in rss)
        console.print(
            f"[bold]peak RSS, onnx imgsz {min(args.imgsz)}, fresh process[/]"
            f" (target ≤ {RSS_TARGET_MB:g} MB for one camera, no torch):"
        )
        for r in rss:
            what = f"agent, {r['cameras']} camera(s)" if r["cameras"] else "bare onnx loop"
            console.print(
                f"  {what}: {r['peak_rss_mb']:.0f} MB peak, {r['fps']:.1f} fps"
                f" total, torch imported: {r['torch_imported']}",
                highlight=False,
            )
        by_cameras = {r["cameras"]: r["peak_rss_mb"] for r in rss}
        if 1 in by_cameras and 4 in by_cameras:
            per = (by_cameras[4] - by_cameras[1]) / 3
            console.print(f"  each further camera sharing the model: +{per:.0f} MB")
        console.print(f"  one-camera process: {'[green]✓[/]' if rss_pass else '[red]✗[/]'}")
    if profile:
        console.print("[bold]cProfile of the camera thread (onnx agent run, by own time):[/]")
        console.print(profile, highlight=False, markup=False, soft_wrap=True)
    results = {
        "benchmark": "edge",
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "reproduce": reproduce(args),
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": os.cpu_count(),
        "load_avg_at_end": os.getloadavg(),
        "video": {"path": str(video), "frames": frames, "fps": fps, "scenario": args.scenario},
        "baselines": {
            "onnx": "cv2.VideoCapture.read + OnnxDetector.detect (letterbox, onnxruntime, NMS)",
            "ultralytics": "cv2.VideoCapture.read + YOLO(pt).predict(imgsz, conf, iou,"
            " rect=False) as the agent's detector calls it",
        },
        "rows": [row.record() for row in rows],
        "rss": {"target_mb_one_camera": RSS_TARGET_MB, "runs": rss, "pass": rss_pass},
        "profile_top": profile or None,
    }
    out = args.out or RESULTS / f"edge-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    console.print(f"wrote {out}")
    measured = [r for r in rows if not r.skipped]
    ratios_ok = all((r.ratio() or 0.0) >= RATIO_TARGET for r in measured)
    return 0 if ratios_ok and rss_pass is not False else 1


if __name__ == "__main__":
    sys.exit(main())
