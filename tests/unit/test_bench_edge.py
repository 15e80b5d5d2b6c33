"""The camera edge benchmark's runs on a handful of frames (benchmarks/edge_runs.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from citywatch.config.detector import BUNDLED_WEIGHTS
from citywatch.models.detector_factory import MODELS_DIR

pytestmark = [
    pytest.mark.skipif(
        not (MODELS_DIR / BUNDLED_WEIGHTS["onnx"]).exists(), reason="no bundled onnx street model"
    ),
    pytest.mark.service,  # runs the camera agent, and a child process for its RSS
]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    import benchmarks.edge_runs

    return benchmarks.edge_runs


@pytest.fixture(scope="module")
def video(
    bench: ModuleType, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, float, int]]:
    """A 0.4 s street video, rendered into a cache of this module's own."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bench, "CACHE", tmp_path_factory.mktemp("bench-edge-cache"))
        yield bench.rendered_video("street-day", 0.4)


def test_bench_camera_detects_every_frame_as_fast_as_possible(
    bench: ModuleType, video: tuple[Path, float, int]
) -> None:
    """The benchmark camera plays the file at full speed, detecting every frame, no schedule."""
    path, fps, _ = video
    config = bench.bench_config(path, fps, bench.detector_config("onnx", 320, None), cameras=2)
    cameras = [c for c in config.devices.cameras if c.gateway == bench.GATEWAY]
    assert [c.id for c in cameras] == ["cam-bench-0", "cam-bench-1"]
    for camera in cameras:
        assert camera.source.url == str(path)
        assert camera.source.detect_fps == fps
        assert camera.source.speed == 0
        assert all(rule.schedule is None for rule in camera.rules)


def test_bare_loop_and_agent_see_the_same_frames(
    bench: ModuleType, video: tuple[Path, float, int], tmp_path: Path
) -> None:
    """Both loops process every frame of the video; the agent publishes into its outbox."""
    path, fps, frames = video
    bare = bench.bare_onnx(path, 320, lambda **_: None)
    config = bench.bench_config(path, fps, bench.detector_config("onnx", 320, None))
    agent = bench.agent(config, tmp_path, True, lambda **_: None)
    assert bare.frames == agent.frames == frames
    assert agent.outbox >= 1  # the gateway's closing telemetry, at least
    assert 0 < agent.detect_s <= agent.pipeline_s <= agent.wall_s


def test_rss_child_reports_peak_and_no_torch(
    bench: ModuleType, video: tuple[Path, float, int], tmp_path: Path
) -> None:
    """The RSS probe runs the onnx agent in a fresh process that never imports torch."""
    path, fps, frames = video
    result = bench.measure_rss(path, fps, 320, 1, tmp_path)
    assert result["frames"] == frames
    assert result["peak_rss_mb"] > 0
    assert result["torch_imported"] is False


@pytest.mark.slow
def test_trackzone_peer_sees_every_frame(bench: ModuleType, video: tuple[Path, float, int]) -> None:
    """ultralytics' TrackZone runs with the benchmark's settings over every frame of the
    video, drawing as shipped and without its drawing."""
    from benchmarks.edge_peer import trackzone, trackzone_missing

    missing = trackzone_missing()
    pt = MODELS_DIR / "street" / "citywatch-street.pt"
    if missing or not pt.exists():
        pytest.skip(missing or f"no {pt}")
    path, _, frames = video
    for draw in (True, False):
        run = trackzone(path, 320, pt, lambda **_: None, draw)
        assert run.frames == frames and 0 < run.detect_s <= run.wall_s
