"""``synthetic:SCENARIO`` camera sources: a rendered street scenario behaves like a video file.

Registered with :func:`~citywatch.hardware.camera.video_source.register_scheme`, so the agent, the
demo and the tests open ``synthetic:street-day`` exactly as they open a recording: frames
are clocked by the scenario's fps, and a frame skipped at the detection rate is never
rendered (``grab`` only advances the clock), which is what skipping without decode costs.
"""

from __future__ import annotations

from datetime import datetime

import cv2
import numpy as np
from numpy.typing import NDArray

from citywatch.hardware.camera.street.scenario import ScenarioError, ScenarioPlayer, load_scenario
from citywatch.hardware.camera.video_source import SourceOpenError, register_scheme

__all__ = ["SyntheticCapture", "open_synthetic", "scripted_start"]


class SyntheticCapture:
    """The OpenCV capture protocol over a :class:`ScenarioPlayer`."""

    def __init__(self, player: ScenarioPlayer) -> None:
        self.player = player
        self._next = 0
        self._current: int | None = None
        self._open = True

    def isOpened(self) -> bool:
        return self._open

    def grab(self) -> bool:
        if not self._open or self._next >= self.player.frame_count:
            return False
        self._current = self._next
        self._next += 1
        return True

    def retrieve(self) -> tuple[bool, NDArray[np.uint8] | None]:
        if self._current is None:
            return False, None
        image, _ = self.player.frame(self._current)
        return True, image

    def get(self, prop_id: int) -> float:
        if prop_id == cv2.CAP_PROP_FPS:
            return float(self.player.scenario.fps)
        if prop_id == cv2.CAP_PROP_FRAME_COUNT:
            return float(self.player.frame_count)
        if prop_id == cv2.CAP_PROP_FRAME_WIDTH:
            return float(self.player.size[0])
        if prop_id == cv2.CAP_PROP_FRAME_HEIGHT:
            return float(self.player.size[1])
        return 0.0

    def release(self) -> None:
        self._open = False


def open_synthetic(name: str) -> SyntheticCapture:
    """Open the scenario ``name`` (configs/scenarios/NAME.yaml, or a path)."""
    try:
        return SyntheticCapture(ScenarioPlayer(load_scenario(name)))
    except (ScenarioError, FileNotFoundError) as exc:
        raise SourceOpenError(f"synthetic:{name}: {exc}") from exc


def scripted_start(name: str) -> datetime | None:
    """The scenario's scripted start time (``source.clock: recording`` times schedules by it)."""
    try:
        return load_scenario(name).start_time
    except (ScenarioError, FileNotFoundError):
        return None


register_scheme("synthetic", open_synthetic, scripted_start)
