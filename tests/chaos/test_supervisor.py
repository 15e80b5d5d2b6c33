"""The embedded stack restarts a crashed service of its own (issue 16): the supervisor
(`citywatch stack supervise`) starts a SIGKILLed PostgreSQL again on its port, after
clearing the backends the dead postmaster left; a stack stopped on purpose stays down."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psycopg
import pytest

from benchmarks.chaos_rig import ChaosRig
from citywatch.stack import processes, state
from citywatch.stack.launcher import EmbeddedStack
from citywatch.stack.supervisor import Supervisor


@pytest.mark.integration
@pytest.mark.slow
def test_a_postgres_killed_with_sigkill_is_started_again_on_its_port(chaos_rig: ChaosRig) -> None:
    """kill -9 of the postmaster (its backends live on): back on the same port in seconds."""
    port = chaos_rig.endpoints.database_url.rsplit(":", 1)[1]
    chaos_rig.kill_service("postgres", signal.SIGKILL)
    killed = time.monotonic()
    back = chaos_rig.wait_service_back("postgres", timeout_s=60)
    assert chaos_rig.endpoints.database_url.rsplit(":", 1)[1] == port
    with psycopg.connect(chaos_rig.endpoints.database_url) as conn:
        assert conn.execute("SELECT count(*) FROM alerts").fetchone() is not None
    assert chaos_rig.supervisor is not None
    assert "postgres running again" in chaos_rig.supervisor.output()
    assert back - killed < 30


def test_a_stack_never_started_or_stopped_on_purpose_is_left_alone(tmp_path: Path) -> None:
    """No state file, or no service recorded as running: nothing to restart."""
    supervisor = Supervisor(EmbeddedStack(tmp_path / "stack"))
    assert supervisor.check_once() is None
    assert supervisor.restarts == []


def test_only_a_service_that_died_unasked_counts_as_crashed(tmp_path: Path) -> None:
    """A recorded process that is gone: crashed; one that runs, or none recorded (`stack
    down` clears them): not. The supervisor restarts nothing without a crash."""
    gone = processes.spawn(["sleep", "0"], log_path=tmp_path / "log", marker="sleep 0")
    while processes.is_alive(gone):
        time.sleep(0.02)
    running = processes.spawn(["sleep", "30"], log_path=tmp_path / "log", marker="sleep 30")
    st = state.StackState(services={
        "mqtt": state.ServiceState(port=1, backend="mosquitto", process=gone),
        "kafka": state.ServiceState(port=2, backend="tansu", process=running),
        "postgres": state.ServiceState(port=3, backend="system", process=None),
    })  # fmt: skip
    stack = EmbeddedStack(tmp_path / "stack")
    stack.data_dir.mkdir()
    try:
        state.save(stack.data_dir, st)
        assert stack.crashed() == ["mqtt"]
        st.services["mqtt"].process = None  # what `down` leaves
        state.save(stack.data_dir, st)
        assert stack.crashed() == []
        assert Supervisor(stack).check_once() is None
    finally:
        os.kill(running.pid, signal.SIGKILL)


def test_the_orphans_of_a_dead_session_leader_are_killed(tmp_path: Path) -> None:
    """A leader SIGKILLed with a child in its session (a postmaster's backends): the child
    is killed; while the leader runs, nothing is."""
    record = processes.spawn(
        ["sh", "-c", f"sleep 60 & echo $! > {tmp_path}/child; wait"],
        log_path=tmp_path / "log", marker="sleep 60",
    )  # fmt: skip
    deadline = time.monotonic() + 5
    while not (tmp_path / "child").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    child = int((tmp_path / "child").read_text())
    child_started = _start_ticks(child)
    processes.kill_orphans("test", record)
    assert _start_ticks(child) == child_started, "killed the session of a leader still running"
    os.kill(record.pid, signal.SIGKILL)
    while processes.is_alive(record):
        time.sleep(0.02)
    processes.kill_orphans("test", record)
    assert _start_ticks(child) != child_started, "the orphan lives on"


def _start_ticks(pid: int) -> int | None:
    """When ``pid`` started (None: gone or a zombie): tells the process from a later one
    that was given the same pid."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None if fields[0] in ("Z", "X") else int(fields[19])
