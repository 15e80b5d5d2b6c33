"""Long CLI runs count what they do against a known total (and say the time left)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from typer.testing import CliRunner

from citywatch.cli.main import app

REPO = Path(__file__).resolve().parents[2]


def test_detect_counts_frames_against_the_videos_total(tmp_path: Path) -> None:
    """A 40-frame 10 fps clip at the camera's 5 detections a second: the bar ends at 20/20."""
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (160, 96))
    for index in range(40):
        writer.write(np.full((96, 160, 3), index * 5, np.uint8))
    writer.release()
    result = CliRunner().invoke(
        app,
        ["edge", "detect", "--config", str(REPO / "configs" / "scenario-suite.yaml"),
         "--camera", "cam-parked-car", "--video", str(video), "--out", str(tmp_path / "d.csv")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "detecting in clip.mp4: frames" in result.stdout and "20/20" in result.stdout
    assert "20 frames" in result.stdout
