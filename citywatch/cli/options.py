"""What every ``citywatch`` subcommand shares: the config and data-dir options, loading the
config with its problems printed as FILE:LINE, and stopping on SIGINT/SIGTERM.

Defined once here, so every command reads ``--config`` and ``--data-dir`` the same way and
no command module imports another's privates.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from citywatch.config import CitywatchConfig, ConfigError, load_config

__all__ = [
    "DEFAULT_CONFIG",
    "ConfigOpt",
    "DataDirOpt",
    "GatewayOpt",
    "LogOpt",
    "load_config_or_exit",
    "stop_on_signals",
]

err = Console(stderr=True)

DEFAULT_CONFIG = Path("configs/demo-district.yaml")
ConfigOpt = Annotated[
    Path,
    typer.Option(
        "--config", "-c", envvar="CITYWATCH_CONFIG", help="Site config YAML.", show_default=True
    ),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        envvar="CITYWATCH_DATA_DIR",
        help="Stack, secrets and outboxes (default: services.data_dir).",
    ),
]
GatewayOpt = Annotated[
    str, typer.Option("--gateway", "-g", help="Gateway id from devices.gateways.")
]
LogOpt = Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR.")]


def load_config_or_exit(path: Path) -> CitywatchConfig:
    """The site config, or exit 2 after printing every problem as FILE:LINE:COLUMN: FIELD."""
    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            err.print(f"[red]✗[/] {problem}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM, for agents that run until stopped."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop
