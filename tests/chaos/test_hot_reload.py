"""Bad YAML on hot reload (issue 16): a config file an operator saves half-edited, so it
no longer parses, is refused as a whole; the camera gateway keeps running on its old
config and says why, with the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_camera_agent import CAMERA, _cameras_file, _edit, _gateway, suite_copy

__all__ = ["suite_copy"]  # the fixture, used by name


@pytest.mark.slow
def test_yaml_that_no_longer_parses_is_refused_and_the_old_config_kept(
    suite_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An unclosed bracket: no reload, one failure counted, the running rules unchanged."""
    gateway = _gateway(suite_copy)
    before = gateway.workers[CAMERA].camera
    _edit(_cameras_file(suite_copy), "dwell: 20s", "dwell: [20s")
    assert not gateway.check_reload()
    assert gateway.reload_failures == 1
    assert gateway.workers[CAMERA]._pending is None
    assert gateway.workers[CAMERA].camera == before
    refused = [r.getMessage() for r in caplog.records if "config change rejected" in r.getMessage()]
    assert refused and "cameras.yaml:" in refused[0], refused
