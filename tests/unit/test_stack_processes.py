"""Recognising, and stopping, only the stack's own processes."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from citywatch.stack import processes
from citywatch.stack.processes import ProcessRecord, ServiceUser


@pytest.fixture
def sleeper(tmp_path: Path) -> Iterator[ProcessRecord]:
    """A detached `sleep` started the way the launcher starts services."""
    record = processes.spawn(
        ["sleep", "30"], log_path=tmp_path / "sleep.log", marker="30", cwd=tmp_path
    )
    yield record
    if processes.is_alive(record):
        os.kill(record.pid, signal.SIGKILL)
        processes.stop_all({"sleep": (record, signal.SIGKILL, 1.0)}, 5.0)


@pytest.mark.service
def test_spawned_process_is_recognised(sleeper: ProcessRecord) -> None:
    """Pid, start time, program and marker all match the running process."""
    assert processes.is_alive(sleeper)
    assert processes.read_cmdline(sleeper.pid) == ["sleep", "30"]


@pytest.mark.service
def test_spawned_process_runs_in_its_own_session(sleeper: ProcessRecord) -> None:
    """Detached: it survives the launcher's terminal and process group."""
    assert os.getsid(sleeper.pid) == sleeper.pid


@pytest.mark.service
def test_same_pid_running_another_program_is_not_ours(sleeper: ProcessRecord) -> None:
    """A reused pid (another command line or start time) is never taken for our service."""
    other_marker = ProcessRecord(sleeper.pid, sleeper.start_ticks, "sleep", "/other/conf")
    other_program = ProcessRecord(sleeper.pid, sleeper.start_ticks, "mosquitto", "30")
    other_start = ProcessRecord(sleeper.pid, sleeper.start_ticks + 1, "sleep", "30")
    for record in (other_marker, other_program, other_start):
        assert not processes.is_alive(record)


@pytest.mark.service
def test_stop_all_never_signals_a_process_that_is_not_ours(sleeper: ProcessRecord) -> None:
    """A stale state file must not make `down` kill a stranger."""
    stranger = ProcessRecord(sleeper.pid, sleeper.start_ticks, "sleep", "/not/ours")
    processes.stop_all({"x": (stranger, signal.SIGTERM, 0.1)}, timeout_s=0.5)
    assert processes.is_alive(sleeper)


@pytest.mark.service
def test_stop_all_stops_with_the_polite_signal(sleeper: ProcessRecord) -> None:
    """A process that obeys SIGTERM is not SIGKILLed."""
    killed = processes.stop_all({"sleep": (sleeper, signal.SIGTERM, 5.0)}, timeout_s=5.0)
    assert killed == {"sleep": False}
    assert not processes.is_alive(sleeper)
    # Reaped, not a zombie (the reaper thread may need a moment on a loaded machine).
    deadline = time.monotonic() + 5
    while Path(f"/proc/{sleeper.pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{sleeper.pid}").exists()


@pytest.mark.service
def test_stop_all_kills_what_ignores_the_signal(tmp_path: Path) -> None:
    """After the grace period, SIGKILL; the whole thing stays within grace + a little."""
    script = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(30)"
    record = processes.spawn(
        [sys.executable, "-c", script], log_path=tmp_path / "log", marker="SIG_IGN"
    )
    time.sleep(0.3)  # let it install the handler
    started = time.monotonic()
    killed = processes.stop_all({"stubborn": (record, signal.SIGTERM, 0.3)}, timeout_s=5.0)
    assert killed == {"stubborn": True}
    assert not processes.is_alive(record)
    assert time.monotonic() - started < 2.0


@pytest.mark.service
def test_exited_process_is_not_alive(tmp_path: Path) -> None:
    """A child that exited reads as dead and gone, and its exit status is kept."""
    record = processes.spawn(["true"], log_path=tmp_path / "log", marker="true")
    deadline = time.monotonic() + 10
    while not processes.is_gone(record) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert processes.is_gone(record)
    assert not processes.is_alive(record)
    assert processes.exit_code(record) == 0


def test_service_environment_drops_the_operators_pg_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PGDATA or LISTENER_URL in the caller's shell must not steer our services."""
    monkeypatch.setenv("PGDATA", "/elsewhere")
    monkeypatch.setenv("LISTENER_URL", "tcp://0.0.0.0:9092")
    env = processes.service_env(None)
    assert "PGDATA" not in env and "LISTENER_URL" not in env
    assert env["LC_ALL"] == "C.UTF-8"


def _user(uid: int = 54321, gid: int = 54321) -> ServiceUser:
    return ServiceUser(name="nobody-in-particular", uid=uid, gid=gid, home="/")


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every user may pass through (pytest's own temp root is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="citywatch-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_closed_ancestor_is_reported(open_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 0700 directory on the way blocks a service that runs as another user."""
    monkeypatch.setattr(ServiceUser, "groups", lambda self: [self.gid])
    closed = open_dir / "closed"
    target = closed / "stack"
    target.mkdir(parents=True)
    closed.chmod(0o700)
    assert processes.unreachable_ancestor(target, _user()) == closed
    closed.chmod(0o711)
    assert processes.unreachable_ancestor(target, _user()) is None


def test_directories_yet_to_be_created_do_not_block(
    open_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only existing directories are checked; the launcher creates the rest itself."""
    monkeypatch.setattr(ServiceUser, "groups", lambda self: [self.gid])
    assert processes.unreachable_ancestor(open_dir / "a" / "b", _user()) is None
