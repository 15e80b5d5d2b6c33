"""A ``citywatch`` subcommand run as a child process, its output in a log file.

The demo, the integration tests and the stream benchmark all start the stream tier (and
gateways) as separate processes, as production does; this is the one way they do it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


class CliProcess:
    """``python -m citywatch.cli.main ARGS`` with ``env`` added, stopped by :meth:`stop`."""

    def __init__(
        self, args: list[str], log_path: Path, env: dict[str, str], cwd: Path | None = None
    ) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "citywatch.cli.main", *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            cwd=cwd,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout_s``; closes the log."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
