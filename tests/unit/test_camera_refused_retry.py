"""A camera refused when its gateway starts runs once a config reload makes it valid."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from citywatch.config import load_config
from citywatch.contracts import Status
from citywatch.contracts.messages import DeviceState
from citywatch.edge.camera.agent import CameraGateway
from tests.unit.test_camera_agent import CAMERA, Collected, _cameras_file, _edit, suite_copy

__all__ = ["suite_copy"]  # the fixture, imported for this module's tests

REFUSED = "cam-passing-traffic"
BROKEN = "detector: {corroborated_smoke: 0.05, weights: /nowhere/model.onnx}"


@pytest.mark.service
def test_a_camera_refused_at_start_starts_when_a_reload_fixes_its_model(suite_copy: Path) -> None:
    """The fixed camera gets a worker that delivers frames and is announced online; cameras
    new to the file still wait for a restart."""
    cameras = _cameras_file(suite_copy)
    for scene in ("parked-car", "passing-traffic"):
        _edit(cameras, f'"synthetic:{scene}", detect_fps: 5', f'"synthetic:{scene}", detect_fps: 2')
    _edit(cameras, "detector: *suite-detector", BROKEN)  # the first alias: cam-passing-traffic
    config = load_config(suite_copy)
    two = tuple(c for c in config.devices.cameras if c.id in (CAMERA, REFUSED))
    config = config.model_copy(update={"devices": config.devices.model_copy(update={"cameras": two})})
    collected = Collected()
    gateway = CameraGateway(
        config, "gw-suite", collected, config_path=suite_copy, telemetry_interval_s=3600,
        reload_check_s=0.2,
    )  # fmt: skip
    assert list(gateway.workers) == [CAMERA] and "/nowhere/model.onnx" in gateway.refused[REFUSED]
    running = threading.Thread(target=gateway.run, kwargs={"duration_s": 60}, daemon=True)
    running.start()
    try:
        _edit(cameras, BROKEN, "detector: *suite-detector")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (
            REFUSED in gateway.workers and gateway.workers[REFUSED].stats.frames > 0
        ):
            time.sleep(0.1)
    finally:
        gateway.stop.set()
        running.join(timeout=30)
    assert not gateway.refused and sorted(gateway.workers) == sorted([CAMERA, REFUSED])
    assert gateway.workers[REFUSED].stats.frames > 0
    states = [m.state for m in collected.messages if isinstance(m, Status) and m.device.id == REFUSED]
    assert DeviceState.ONLINE in states
