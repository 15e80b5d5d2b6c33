"""What the launcher needs from each service it runs, and the bits they share.

Each service module (`mosquitto`, `amqtt_broker`, `tansu`, `postgres`) provides one class with
this shape; the launcher starts, probes and stops them all the same way.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Protocol

from citywatch.stack.processes import ServiceUser


class ProbeFailed(Exception):
    """The service does not (yet) accept a real client connection."""


class Service(Protocol):
    """One process of the stack, described well enough to start, probe and stop it."""

    name: str  # "mqtt", "kafka" or "postgres"
    log_path: Path
    run_as: ServiceUser | None
    stop_signal: signal.Signals
    stop_grace_s: float  # how long to wait after `stop_signal` before SIGKILL

    def prepare(self, port: int) -> None:
        """Create what the process needs before it starts (config files, a database cluster)."""

    def argv(self, port: int) -> list[str]:
        """The command line that runs the service on `127.0.0.1:port`."""

    def marker(self, port: int) -> str:
        """A string of `argv(port)` that identifies our process among others of its program."""

    def probe(self, port: int) -> None:
        """Connect like a real client would; raise `ProbeFailed` while it cannot."""

    def version(self) -> str:
        """The server's version, for `citywatch stack status`."""


def read_log_since(log_path: Path, offset: int, max_lines: int = 20) -> str:
    """The last lines written to `log_path` after byte `offset` (what this start-up logged)."""
    try:
        with open(log_path, "rb") as log_file:
            log_file.seek(offset)
            text = log_file.read().decode(errors="replace")
    except FileNotFoundError:
        return "(no log written)"
    lines = text.strip().splitlines()[-max_lines:]
    return "\n".join(lines) if lines else "(log is empty)"


def log_size(log_path: Path) -> int:
    try:
        return log_path.stat().st_size
    except FileNotFoundError:
        return 0


#: What each service writes when its port was taken between our pick and its bind.
ADDRESS_IN_USE_HINTS = ("address already in use", "address in use", "os error 98")


def failed_to_bind(log_text: str) -> bool:
    lowered = log_text.lower()
    return any(hint in lowered for hint in ADDRESS_IN_USE_HINTS)
