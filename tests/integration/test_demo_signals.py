"""`citywatch demo` stops everything it started when it is told to stop by a signal."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.service]


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data directory the stack's unprivileged service users can reach."""
    path = Path(tempfile.mkdtemp(prefix="citywatch-demo-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_demo_stops_every_process_it_started_on_sigterm(data_dir: Path) -> None:
    """Once the gateways run, SIGTERM to the demo alone leaves no process of the stack, the
    stream tier, the center or the gateways running (SIGINT takes the same clean-up path:
    both raise in the main thread, and the clean-up ignores a second signal)."""
    demo = subprocess.Popen(
        [sys.executable, "-m", "citywatch.cli.main", "demo", "--data-dir", str(data_dir),
         "--duration", "300"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
    )  # fmt: skip
    assert demo.stdout is not None
    seen = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        line = demo.stdout.readline()
        seen.append(line)
        if "started gw-dock-01" in line or not line:
            break
    assert "started gw-dock-01" in seen[-1], "".join(seen)
    time.sleep(1)  # the sensor gateways' threads start
    children = psutil.Process(demo.pid).children(recursive=True)
    assert len(children) >= 7, children  # 3 stack services, app, bridge, supervisor, center…
    demo.send_signal(signal.SIGTERM)
    output, _ = demo.communicate(timeout=120)
    assert demo.returncode == 128 + signal.SIGTERM, "".join(seen) + output
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, [(p.pid, p.cmdline()) for p in alive]
    assert "stack stopped" in output and "✗ stopped by SIGTERM" in output
