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
from prometheus_client import CollectorRegistry
from rich.console import Console

from citywatch.config import CitywatchConfig, ConfigError, load_config
from citywatch.metrics_server import Health, MetricsPortError, MetricsServer, serve

__all__ = [
    "DEFAULT_CONFIG",
    "ConfigOpt",
    "DataDirOpt",
    "GatewayOpt",
    "LogOpt",
    "MetricsHostOpt",
    "MetricsPortOpt",
    "load_config_or_exit",
    "start_metrics_or_exit",
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
DatabaseUrlOpt = Annotated[
    str | None, typer.Option(help="Use this database instead of the configured one.")
]
GatewayOpt = Annotated[
    str, typer.Option("--gateway", "-g", help="Gateway id from devices.gateways.")
]
LogOpt = Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR.")]
MetricsPortOpt = Annotated[
    int | None,
    typer.Option(
        "--metrics-port", envvar="CITYWATCH_METRICS_PORT", min=0, max=65535,
        help="Serve Prometheus /metrics, /healthz and /readyz on this port (default: off).",
    ),
]  # fmt: skip
MetricsHostOpt = Annotated[
    str,
    typer.Option(
        "--metrics-host", envvar="CITYWATCH_METRICS_HOST", help="Address the metrics port binds."
    ),
]


def load_config_or_exit(path: Path) -> CitywatchConfig:
    """The site config, or exit 2 after printing every problem as FILE:LINE:COLUMN: FIELD."""
    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            err.print(f"[red]✗[/] {problem}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def start_metrics_or_exit(
    port: int | None, host: str, registry: CollectorRegistry, health: Health
) -> MetricsServer | None:
    """Serve the component's metrics and health when ``--metrics-port`` is given; exit 2
    saying why when the port cannot be bound (an orchestrator would probe it in vain)."""
    if port is None:
        return None
    try:
        return serve(registry, health, host, port)
    except MetricsPortError as exc:
        err.print(f"[red]✗[/] {exc.strerror}", highlight=False)
        raise typer.Exit(2) from None


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM, for agents that run until stopped."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop
