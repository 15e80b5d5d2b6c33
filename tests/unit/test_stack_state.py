"""The embedded stack's state file, read back by later `status` and `down` calls."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from citywatch.stack import state
from citywatch.stack.errors import StackError
from citywatch.stack.processes import ProcessRecord


def _sample() -> state.StackState:
    st = state.StackState(accounts_fingerprint="abc")
    st.services["mqtt"] = state.ServiceState(
        port=1883,
        backend="mosquitto",
        version="2.0.11",
        process=ProcessRecord(pid=42, start_ticks=1000, program="mosquitto", marker="/x.conf"),
    )
    st.services["kafka"] = state.ServiceState(port=9092, backend="tansu", process=None)
    return st


def test_state_round_trips(tmp_path: Path) -> None:
    """What `up` saves is what `status` in another process reads."""
    original = _sample()
    state.save(tmp_path, original)
    assert state.load(tmp_path) == original


def test_state_file_is_owner_only(tmp_path: Path) -> None:
    """It holds the database password: mode 0600."""
    state.save(tmp_path, _sample())
    mode = stat.S_IMODE((tmp_path / state.STATE_FILE).stat().st_mode)
    assert mode == 0o600


def test_missing_state_means_no_stack(tmp_path: Path) -> None:
    """Nothing was ever started in an empty directory."""
    assert state.load(tmp_path) is None


def test_damaged_state_is_a_clear_error(tmp_path: Path) -> None:
    """A truncated file is reported, not silently treated as 'nothing running'."""
    (tmp_path / state.STATE_FILE).write_text('{"format": 1, "services": {')
    with pytest.raises(StackError, match=r"stack\.json"):
        state.load(tmp_path)


def test_state_from_another_format_is_refused(tmp_path: Path) -> None:
    """A future format is not misread."""
    (tmp_path / state.STATE_FILE).write_text(json.dumps({"format": 99}))
    with pytest.raises(StackError, match="format"):
        state.load(tmp_path)


def test_generated_secrets_differ_per_stack() -> None:
    """Each new stack gets its own passwords."""
    assert state.StackState().postgres_password != state.StackState().postgres_password
