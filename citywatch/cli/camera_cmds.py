"""``citywatch edge camera|replay|detect`` and ``citywatch sim camera``: the camera gateway,
its offline twin for back-testing rules, and the synthetic street scenes."""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from citywatch.cli.options import (
    DEFAULT_CONFIG,
    ConfigOpt,
    DataDirOpt,
    GatewayOpt,
    LogOpt,
    MetricsHostOpt,
    MetricsPortOpt,
    load_config_or_exit,
    start_metrics_or_exit,
    stop_on_signals,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from citywatch.config import CitywatchConfig
    from citywatch.config.camera import CameraConfig
    from citywatch.contracts import Alert, Status, Telemetry
    from citywatch.contracts.messages import Evidence
    from citywatch.edge.outbox import PutResult

console = Console()
err = Console(stderr=True)


def _camera(cfg: CitywatchConfig, camera_id: str) -> CameraConfig:
    cameras = {c.id: c for c in cfg.devices.cameras}
    if camera_id not in cameras:
        raise typer.BadParameter(f"unknown camera {camera_id!r}; configured: {sorted(cameras)}")
    return cameras[camera_id]


class _NoPublisherYet:
    def publish_many(self, messages: Sequence[Alert | Telemetry | Evidence | Status]) -> PutResult:
        raise RuntimeError("the camera gateway published before its MQTT session existed")


def edge_camera(
    gateway: GatewayOpt,
    config: ConfigOpt = DEFAULT_CONFIG,
    data_dir: DataDirOpt = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    telemetry_interval: Annotated[float, typer.Option(help="Seconds between telemetry.")] = 10.0,
    log_level: LogOpt = "INFO",
    metrics_port: MetricsPortOpt = None,
    metrics_host: MetricsHostOpt = "0.0.0.0",
) -> None:
    """Run a camera gateway: every camera of GATEWAY through detector, tracker and rules.

    Alerts, evidence notices, per-camera telemetry and status go out over MQTT through the
    durable outbox. Edit zones or rules in the config (or send SIGHUP) to apply them
    without dropping a stream; an invalid change is rejected and the old rules stay.
    """
    from citywatch.cli.logs import setup_logging
    from citywatch.edge.camera.agent import CameraGateway
    from citywatch.edge.gateway_session import edge_session
    from citywatch.edge.metrics import EDGE_HEALTH, EDGE_REGISTRY, watch_cameras, watch_session
    from citywatch.models.detector_factory import DetectorError
    from citywatch.stack.endpoints import data_dir_of

    setup_logging(log_level)
    cfg = load_config_or_exit(config)
    root = data_dir_of(cfg, data_dir)
    stop = stop_on_signals()
    try:
        # The models load (and the rules' classes are checked) before anything connects.
        agent = CameraGateway(
            cfg,
            gateway,
            _NoPublisherYet(),
            config_path=config,
            evidence_dir=root / "evidence",
            stop=stop,
            telemetry_interval_s=telemetry_interval,
        )
    except (DetectorError, ValueError) as exc:
        err.print(f"[red]✗[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    session = edge_session(cfg, gateway, data_dir)
    agent.publisher = session
    watch_session(session, "camera")
    watch_cameras(agent)
    start_metrics_or_exit(metrics_port, metrics_host, EDGE_REGISTRY, EDGE_HEALTH)
    signal.signal(signal.SIGHUP, lambda *_: agent.reload_requested.set())
    session.start()
    try:
        agent.run(duration)
        session.pump()
    finally:
        session.stop()
    for camera_id, worker in agent.workers.items():
        s = worker.stats
        console.print(
            f"{camera_id}: {s.frames} frames, {s.alerts} alerts, {s.evidence} evidence,"
            f" {s.reloads} reloads, {s.errors} errors"
            + (f" (last: {s.last_error})" if s.last_error else "")
        )
    console.print(f"{len(session.outbox)} messages still awaiting a receipt")
    if any(w.stats.last_error and w.stats.frames == 0 for w in agent.workers.values()):
        raise typer.Exit(1)


def edge_replay(
    camera: Annotated[str, typer.Option("--camera", help="Camera id whose rules to run.")],
    out: Annotated[Path, typer.Option("--out", help="Alerts, one JSON message per line.")],
    config: ConfigOpt = DEFAULT_CONFIG,
    video: Annotated[Path | None, typer.Option(help="A recording to decode and detect.")] = None,
    detections: Annotated[
        Path | None,
        typer.Option(help="MOTChallenge rows frame,id,left,top,width,height,conf,class[,vis]."),
    ] = None,
    fps: Annotated[
        float | None,
        typer.Option(help="Frame rate of the recording (detection files: default 25)."),
    ] = None,
    size: Annotated[
        str, typer.Option(help="Frame size WxH of a detection file's video.")
    ] = "1280x720",
    start: Annotated[
        str | None,
        typer.Option(
            help="ISO 8601 wall-clock time of frame 1, for schedules (default: the recording's"
            " own start where the source knows it, as synthetic scenes do; else now)."
        ),
    ] = None,
    truth: Annotated[
        Path | None, typer.Option(help="Expected alerts (JSON lines) to score the run against.")
    ] = None,
    report: Annotated[Path | None, typer.Option(help="Write the score as JSON here.")] = None,
    evidence: Annotated[
        Path | None, typer.Option(help="Write snapshots and crops under this directory.")
    ] = None,
    min_precision: Annotated[float, typer.Option(help="Exit 1 below this precision.")] = 0.0,
    min_recall: Annotated[float, typer.Option(help="Exit 1 below this recall.")] = 0.0,
) -> None:
    """Run one camera's rules over a recording or a detection file, offline.

    Writes exactly the alert messages the live agent would publish for the same video and
    start time; with --truth, scores them (event-level precision and recall per kind,
    duplicates, start delay) so a rule change can be back-tested before it goes live.
    """
    from citywatch.contracts import encode
    from citywatch.edge.camera.evaluation.backtest import score
    from citywatch.edge.camera.evaluation.backtest_report import render_report
    from citywatch.edge.camera.evaluation.replay import (
        expected_latency_s,
        replay_detections,
        replay_video,
        start_of,
    )
    from citywatch.edge.camera.evaluation.schedule_check import schedule_gaps
    from citywatch.edge.camera.evaluation.truth_file import read_truth
    from citywatch.edge.camera.evidence import EvidenceStore
    from citywatch.edge.camera.pipeline import CameraPipeline
    from citywatch.hardware.camera.video_source import recorded_start

    if (video is None) == (detections is None):
        raise typer.BadParameter("give exactly one of --video and --detections")
    cfg = load_config_or_exit(config)
    cam = _camera(cfg, camera)
    expected = read_truth(truth) if truth is not None else None  # a wrong file fails first
    known = recorded_start(str(video)) if video is not None else None
    try:
        started = start_of(start, known or datetime.now(UTC))
    except ValueError:
        raise typer.BadParameter(
            f"{start!r} is not an ISO 8601 time: write e.g. 2026-05-12T09:00:00+08:00",
            param_hint="--start",
        ) from None
    width, height = _frame_size(size)
    detector = None
    # Missing weights, an unreadable video or a bad detection file: cli/errors.py words them.
    if video is not None:
        from citywatch.edge.camera.camera_detectors import load_camera_detectors

        detector = load_camera_detectors(cam)
    pipeline = CameraPipeline(
        site_id=cfg.site.id,
        camera=cam,
        tz=cfg.site.timezone,
        start_time=started,
        detector=detector,
        evidence=EvidenceStore(evidence, cam.id, clip_format=cam.evidence.clip_format)
        if evidence
        else None,
    )
    with console.status(f"replaying {video or detections} through {cam.id}…"):
        if video is not None:
            result = replay_video(pipeline, video)
        else:
            assert detections is not None
            result = replay_detections(
                pipeline, detections, video_fps=fps or 25.0, frame_size=(width, height)
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as fh:
        for alert in result.alerts:
            fh.write(encode(alert) + b"\n")
    starts = sum(1 for a in result.alerts if a.phase.value == "start")
    console.print(
        f"{result.frames} frames → {len(result.alerts)} alert messages ({starts} episodes)"
        f" written to {out}"
    )
    duration_s = result.frames / cam.source.detect_fps
    for gap in schedule_gaps(cam, cfg.site.timezone, started, duration_s):
        note = " (--start was not given: it defaults to now)" if start is None and not known else ""
        err.print(f"[yellow]![/] {gap.message()}{note}", highlight=False, soft_wrap=True)
    if expected is None:
        return
    scored = score(
        result.alerts,
        expected,
        video_start=started,
        latency_s=expected_latency_s(cam),
        scenario=cam.id,
    )
    render_report(scored, console)
    if report is not None:
        report.write_text(scored.to_json())
    if not scored.passes(min_precision, min_recall):
        raise typer.Exit(1)


def edge_detect(
    camera: Annotated[str, typer.Option("--camera", help="Camera whose detector settings to use.")],
    video: Annotated[Path, typer.Option(help="The recording to run the detector over.")],
    out: Annotated[Path, typer.Option("--out", help="Detection file (MOTChallenge CSV).")],
    config: ConfigOpt = DEFAULT_CONFIG,
) -> None:
    """Detect once, back-test many times: the camera's detector over a recording at its
    detection rate, written as a detection file for `citywatch edge replay --detections`."""
    from citywatch.edge.camera.camera_detectors import camera_detector
    from citywatch.edge.camera.evaluation.detection_file import write_detections
    from citywatch.hardware.camera.video_source import VideoSource

    cfg = load_config_or_exit(config)
    cam = _camera(cfg, camera)
    detector = camera_detector(cam)
    rows = []
    with (
        VideoSource(str(video), detect_fps=cam.source.detect_fps) as source,
        _counting() as progress,
    ):
        task = progress.add_task(
            f"detecting in {video.name}: frames",
            total=_frames_due(video, cam.source.detect_fps),
        )
        for frame in source:
            rows.append((frame.index + 1, detector.detect(frame.image), None))
            progress.advance(task)
    count = write_detections(out, rows)
    console.print(f"{len(rows)} frames, {count} detections written to {out}")


def _frame_size(text: str) -> tuple[int, int]:
    """``--size WxH`` as (width, height)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a frame size: write WIDTHxHEIGHT, e.g. 1280x720", param_hint="--size"
        ) from None
    return width, height


def _counting() -> Progress:
    """A bar that counts (done/total) and says the time left."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeRemainingColumn(), console=console,
    )  # fmt: skip


def _frames_due(video: Path, detect_fps: float | None) -> int | None:
    """How many frames of a video file the detector will see (None when it cannot tell)."""
    import cv2

    capture = cv2.VideoCapture(str(video))
    try:
        count, fps = capture.get(cv2.CAP_PROP_FRAME_COUNT), capture.get(cv2.CAP_PROP_FPS)
    finally:
        capture.release()
    if not count or count <= 0 or not fps or fps <= 0:
        return None
    share = min(1.0, detect_fps / fps) if detect_fps else 1.0
    return max(1, round(count * share))


def sim_camera(
    scenario: Annotated[str, typer.Argument(help="Scenario name (configs/scenarios/) or file.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for the video and truth.")],
) -> None:
    """Render a street scenario: video.mp4, ground-truth boxes (MOT CSV) and the expected
    events (truth JSON lines for `citywatch edge replay --truth`)."""
    from citywatch.hardware.camera.street.scenario import load_scenario, render_video

    loaded = load_scenario(scenario)
    out_dir.mkdir(parents=True, exist_ok=True)
    rendered = render_video(
        loaded,
        out_dir / f"{loaded.name}.mp4",
        out_dir / f"{loaded.name}.gt.csv",
        out_dir / f"{loaded.name}.truth.jsonl",
    )
    console.print(
        f"rendered {loaded.name}: {rendered.frames} frames\n"
        f"  video              {rendered.video}\n"
        f"  ground-truth boxes {rendered.truth} (MOTChallenge rows)\n"
        f"  expected events    {rendered.expect} (for `citywatch edge replay --truth`)"
    )


def edge_suite(
    config: Annotated[Path, typer.Option("--config", "-c", help="Suite config.")] = Path(
        "configs/scenario-suite.yaml"
    ),
    scenario: Annotated[
        list[str] | None, typer.Option(help="Only these scenarios (repeatable).")
    ] = None,
    oracle: Annotated[
        bool, typer.Option(help="Use the renderer's own boxes instead of the model.")
    ] = False,
    min_precision: Annotated[float, typer.Option(help="Exit 1 below this, per kind.")] = 0.95,
    min_recall: Annotated[float, typer.Option(help="Exit 1 below this, per kind.")] = 0.95,
) -> None:
    """Score the rendered scenario suite: through the live agent path (all cameras at once,
    as fast as the model goes) and again as detection files through replay."""
    import tempfile

    from citywatch.edge.camera.evaluation.backtest_report import render_report, render_suite
    from citywatch.edge.camera.evaluation.scenario_suite import (
        SuiteRun,
        frames_due,
        run_live,
        run_replay,
        suite_cases,
        truth_detections,
    )

    cfg = load_config_or_exit(config)
    cases = suite_cases(cfg, scenario or ())
    if not cases:
        raise typer.BadParameter("no synthetic cameras (or none of the named scenarios)")
    work = Path(tempfile.mkdtemp(prefix="citywatch-suite-"))
    if oracle:
        live = SuiteRun()
        for case in cases:
            live.detections[case.camera.id] = truth_detections(
                case.scenario, case.camera.source.detect_fps
            )
    else:
        with _counting() as count:
            task = count.add_task(
                f"{len(cases)} scenarios through the camera agent: frames",
                total=sum(frames_due(case) for case in cases),
            )
            live = run_live(
                cfg, cases, evidence_dir=work / "evidence", on_frame=lambda: count.advance(task)
            )
        console.print("[bold]live agent path[/]")
        render_report(render_suite(live.reports, console), console, details=False)
    with _counting() as count:
        task = count.add_task("replaying the detection files: scenarios", total=len(cases))
        replayed = run_replay(
            cfg, cases, live, work / "detections", on_case=lambda: count.advance(task)
        )
    console.print("[bold]replay --detections[/]" + (" (perfect detector)" if oracle else ""))
    merged = render_suite(replayed.reports, console)
    render_report(merged, console, details=False)
    console.print(f"detection files and evidence in {work}")
    if not merged.passes(min_precision, min_recall):
        raise typer.Exit(1)
