"""The embedded stack restarts a crashed service of its own.

`citywatch stack up` starts Mosquitto, Tansu and PostgreSQL detached; nothing watched them
afterwards, so a broker that crashed stayed down until someone ran `stack up` again. The
supervisor (`citywatch stack supervise`, a long-running process the demo and the tests
start beside the stack) checks every `interval_s` whether each service still runs and,
when one does not, runs what `stack up` runs: the launcher starts it again on its recorded
port and data directory (a dead PostgreSQL's leftover backends are cleared first, see
`EmbeddedStack.up`), and returns once it accepts connections. The clients reconnect by
themselves (MQTT sessions resume, the stream worker notices a Kafka broker that lost its
log, the database steps retry through the outage).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from citywatch.stack.errors import StackError
from citywatch.stack.launcher import EmbeddedStack

log = logging.getLogger(__name__)
DEFAULT_INTERVAL_S = 2.0


@dataclass
class Restart:
    """One restart the supervisor made: which services, when (wall clock), how long."""

    services: tuple[str, ...]
    at: float
    took_s: float


@dataclass
class Supervisor:
    """Keeps `stack`'s services running (see the module doc); :meth:`run` until `stop`."""

    stack: EmbeddedStack
    interval_s: float = DEFAULT_INTERVAL_S
    start_timeout_s: float = 60.0
    on_restart: Callable[[Restart], None] | None = None
    restarts: list[Restart] = field(default_factory=list)

    def check_once(self) -> Restart | None:
        """Start again whatever service of the stack is down; the restart made, if any.

        A stack that was never started, or was stopped with `stack down` (no service
        recorded as running), is left alone: down on purpose is not a crash.
        """
        down = tuple(self.stack.crashed())
        if not down:
            return None
        log.warning("%s not running; starting again", ", ".join(down))
        started = time.monotonic()
        if self.stack.restart_crashed(timeout_s=self.start_timeout_s) is None:
            return None  # stopped on purpose meanwhile (`stack down` held the lock)
        restart = Restart(down, time.time(), time.monotonic() - started)
        self.restarts.append(restart)
        log.warning("%s running again after %.1f s", ", ".join(down), restart.took_s)
        if self.on_restart is not None:
            self.on_restart(restart)
        return restart

    def run(self, stop: threading.Event) -> None:
        """Check every `interval_s` until `stop` is set; a failed restart is tried again."""
        while not stop.wait(self.interval_s):
            try:
                self.check_once()
            except StackError as exc:  # the boundary: log it, try again at the next check
                log.error("could not restart the stack's services: %s; trying again", exc)
