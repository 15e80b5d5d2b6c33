"""The ``citywatch`` command: one CLI for gateways, the stream tier, the stack and operators."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from citywatch import __version__
from citywatch.cli import truth_cmds  # noqa: F401  (registers `center export-truth`)
from citywatch.cli.broker_cmds import broker_app
from citywatch.cli.camera_cmds import edge_camera, edge_detect, edge_replay, edge_suite, sim_camera
from citywatch.cli.center_cmds import center_app
from citywatch.cli.dock_cmds import edge_dock
from citywatch.cli.errors import DEBUG_KEY, CliGroup
from citywatch.cli.model_cmds import model_app
from citywatch.cli.options import (
    DEFAULT_CONFIG,
    ConfigOpt,
    DataDirOpt,
    GatewayOpt,
    LogOpt,
    MetricsHostOpt,
    MetricsPortOpt,
    load_config_or_exit,
    start_metrics_or_exit,
    stop_on_signals,
)
from citywatch.cli.outbox_cmds import quarantine_app
from citywatch.cli.sim_cmds import sim_app
from citywatch.config import check_files
from citywatch.config.tree import CitywatchConfig

console = Console()
err = Console(stderr=True)

app = typer.Typer(
    help=(
        "citywatch turns what city sensors and cameras see into deduplicated work orders.\n\n"
        "Quick start: `citywatch stack up` starts Mosquitto, a Kafka-protocol broker and"
        " PostgreSQL on loopback; `citywatch demo` runs the whole pipeline with simulated"
        " gateways. Every command reads one site config (default configs/demo-district.yaml,"
        " or $CITYWATCH_CONFIG)."
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
    cls=CliGroup,
)
config_app = typer.Typer(
    help="Validate operator config and export its JSON Schema.", no_args_is_help=True
)
stack_app = typer.Typer(
    help="Start, inspect and stop the embedded single-machine stack.", no_args_is_help=True
)
edge_app = typer.Typer(
    help="Run an edge gateway agent (publishes over MQTT).", no_args_is_help=True
)
stream_app = typer.Typer(
    help="Run the stream tier: the MQTT→Kafka bridge and the Faust app.", no_args_is_help=True
)
db_app = typer.Typer(help="Database schema management.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(stack_app, name="stack")
app.add_typer(edge_app, name="edge")
app.add_typer(stream_app, name="stream")
app.add_typer(db_app, name="db")
app.add_typer(sim_app, name="sim")
app.add_typer(model_app, name="model")
app.add_typer(center_app, name="center")
app.add_typer(broker_app, name="broker")

@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            envvar="CITYWATCH_DEBUG",
            help="Show the traceback of an error instead of its one-line message.",
        ),
    ] = False,
) -> None:
    ctx.meta[DEBUG_KEY] = debug
    if version:
        console.print(f"citywatch {__version__}")
        raise typer.Exit()


# -- config ------------------------------------------------------------------------------------
@config_app.command("check")
def config_check(
    files: Annotated[list[Path], typer.Argument(help="Config files to validate.")],
) -> None:
    """Validate config files; print each problem as FILE:LINE:COLUMN: FIELD: MESSAGE.

    Exits 0 when every file is valid, 1 otherwise. Included files are checked through the
    file that includes them.
    """
    problems = []
    for path in files:
        found = check_files([path])
        for problem in found:
            err.print(f"[red]✗[/] {problem}", highlight=False, soft_wrap=True)
        if not found:
            console.print(f"[green]✓[/] {path}", highlight=False)
        problems += found
    raise typer.Exit(1 if problems else 0)


@config_app.command("schema")
def config_schema(
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write to this file instead of stdout.")
    ] = None,
) -> None:
    """Print the JSON Schema of the config tree (point your editor's YAML plugin at it)."""
    schema = CitywatchConfig.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "citywatch site config"
    text = json.dumps(schema, indent=2, ensure_ascii=False)
    if out:
        out.write_text(text + "\n", encoding="utf-8")
        console.print(f"wrote {out}")
    else:
        sys.stdout.write(text + "\n")


# -- stack -------------------------------------------------------------------------------------
@stack_app.command("up")
def stack_up(config: ConfigOpt = DEFAULT_CONFIG, data_dir: DataDirOpt = None) -> None:
    """Start Mosquitto, the Kafka-protocol broker and PostgreSQL (idempotent).

    Broker accounts and ACLs come from the config's device registry; missing `secret:`
    credentials are generated into DATA_DIR/secrets. Returns once every service accepts a
    real connection.
    """
    from citywatch.stack.endpoints import data_dir_of, embedded_stack
    from citywatch.stack.errors import StackError

    cfg = load_config_or_exit(config)
    stack = embedded_stack(cfg, data_dir_of(cfg, data_dir))
    try:
        with console.status("starting the embedded stack…") as status:
            info = stack.up(progress=lambda line: status.update(line))
    except StackError as exc:
        err.print(f"[red]✗[/] {exc}")
        raise typer.Exit(1) from None
    _print_stack(info)


@stack_app.command("status")
def stack_status(config: ConfigOpt = DEFAULT_CONFIG, data_dir: DataDirOpt = None) -> None:
    """Print each service of the embedded stack with its URL, PID and version."""
    from citywatch.stack.endpoints import data_dir_of
    from citywatch.stack.launcher import EmbeddedStack

    cfg = load_config_or_exit(config)
    info = EmbeddedStack(data_dir_of(cfg, data_dir) / "stack").status()
    if info is None:
        console.print("the embedded stack is not running (start it with `citywatch stack up`)")
        raise typer.Exit(3)
    _print_stack(info)
    if not all(s.running for s in info.services):
        raise typer.Exit(1)


@stack_app.command("down")
def stack_down(config: ConfigOpt = DEFAULT_CONFIG, data_dir: DataDirOpt = None) -> None:
    """Stop every service of the embedded stack and verify no process is left."""
    from citywatch.stack.endpoints import data_dir_of
    from citywatch.stack.launcher import EmbeddedStack

    cfg = load_config_or_exit(config)
    with console.status("stopping the embedded stack…"):
        EmbeddedStack(data_dir_of(cfg, data_dir) / "stack").down()
    console.print("[green]✓[/] embedded stack stopped")


@stack_app.command("supervise")
def stack_supervise(
    config: ConfigOpt = DEFAULT_CONFIG,
    data_dir: DataDirOpt = None,
    interval: Annotated[
        float, typer.Option(help="Seconds between two checks that every service runs.", min=0.1)
    ] = 2.0,
) -> None:
    """Keep the embedded stack running: start again, on its port and data, any service that
    crashed (not one stopped by `stack down`). Runs until interrupted."""
    import logging
    import signal
    import threading

    from citywatch.stack.endpoints import data_dir_of, embedded_stack
    from citywatch.stack.supervisor import Supervisor

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    cfg = load_config_or_exit(config)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    supervisor = Supervisor(embedded_stack(cfg, data_dir_of(cfg, data_dir)), interval_s=interval)
    console.print(f"supervising the embedded stack (a check every {interval:g} s)")
    supervisor.run(stop)


def _print_stack(info: object) -> None:
    table = Table(title=f"embedded stack in {info.data_dir}")  # type: ignore[attr-defined]
    for column in ("service", "state", "url", "pid", "version", "log"):
        table.add_column(column)
    for service in info.services:  # type: ignore[attr-defined]
        state = "[green]running[/]" if service.running else "[red]stopped[/]"
        table.add_row(
            service.name,
            state,
            service.url,
            str(service.pid),
            service.version,
            str(service.log_path),
        )
    console.print(table)


# -- db ----------------------------------------------------------------------------------------
@db_app.command("migrate")
def db_migrate(config: ConfigOpt = DEFAULT_CONFIG, data_dir: DataDirOpt = None) -> None:
    """Apply pending schema migrations, and TimescaleDB's policies from config when it is usable.

    A database that started on plain PostgreSQL gets its hypertables here once TimescaleDB
    is installed and preloaded."""
    from citywatch.stack.endpoints import data_dir_of, resolve_endpoints
    from citywatch.stream.migrate import migrate_for

    cfg = load_config_or_exit(config)
    endpoints = resolve_endpoints(cfg, data_dir_of(cfg, data_dir))
    report = migrate_for(cfg, endpoints.database_url)
    upgraded = f"; TimescaleDB parts applied now: {list(report.upgraded)}" if report.upgraded else ""
    console.print(
        f"schema at version {report.current_version}; applied now: {list(report.applied)}{upgraded}"
    )
    console.print(f"database: {report.reason}", highlight=False)


# -- edge --------------------------------------------------------------------------------------
@edge_app.command("sensor")
def edge_sensor(
    gateway: GatewayOpt,
    config: ConfigOpt = DEFAULT_CONFIG,
    data_dir: DataDirOpt = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    log_level: LogOpt = "INFO",
    metrics_port: MetricsPortOpt = None,
    metrics_host: MetricsHostOpt = "0.0.0.0",
) -> None:
    """Run a waterlogging-sensor gateway: levels with hysteresis → alerts and telemetry."""
    from citywatch.cli.logs import setup_logging
    from citywatch.edge.gateway_session import edge_session
    from citywatch.edge.metrics import EDGE_HEALTH, EDGE_REGISTRY, watch_session
    from citywatch.edge.sensor.agent import run_sensor_gateway
    from citywatch.hardware.water.sim import SimulatedWaterSensor
    from citywatch.stack.endpoints import data_dir_of, resolve_endpoints

    setup_logging(log_level)
    cfg = load_config_or_exit(config)
    session = edge_session(cfg, gateway, data_dir)
    stop = stop_on_signals()
    watch_session(session, "sensor")
    start_metrics_or_exit(metrics_port, metrics_host, EDGE_REGISTRY, EDGE_HEALTH)
    session.start()
    try:
        secrets_dir = resolve_endpoints(cfg, data_dir_of(cfg, data_dir)).secrets_dir
        stats = run_sensor_gateway(
            cfg,
            gateway,
            session,
            stop,
            duration,
            secrets_dir=secrets_dir,
            simulator=SimulatedWaterSensor.for_sensor,
        )
        session.pump()
    finally:
        session.stop()
    console.print(
        f"{stats.readings} readings, {len(stats.alerts)} alerts, {stats.telemetry} telemetry;"
        f" {len(session.outbox)} still awaiting a receipt"
    )


edge_app.command("dock")(edge_dock)
edge_app.command("camera")(edge_camera)
edge_app.command("replay")(edge_replay)
edge_app.command("detect")(edge_detect)
edge_app.command("suite")(edge_suite)
edge_app.add_typer(quarantine_app, name="quarantine")
sim_app.command("camera")(sim_camera)


# -- stream ------------------------------------------------------------------------------------
@stream_app.command("bridge")
def stream_bridge(
    config: ConfigOpt = DEFAULT_CONFIG,
    data_dir: DataDirOpt = None,
    bridge_id: Annotated[
        str, typer.Option(help="Unique per bridge instance (fixed MQTT client id).")
    ] = "1",
    log_level: LogOpt = "INFO",
    metrics_port: MetricsPortOpt = None,
    metrics_host: MetricsHostOpt = "0.0.0.0",
) -> None:
    """Bridge every device's uplink from MQTT to Kafka, and receipts back to MQTT."""
    from citywatch.cli.logs import setup_logging
    from citywatch.stream.bridge import Bridge
    from citywatch.stream.settings import stream_settings

    setup_logging(log_level)
    from citywatch.stream.partitioning import device_positions

    cfg = load_config_or_exit(config)
    settings = stream_settings(cfg, data_dir, bridge_id)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        bridge = Bridge(settings, device_positions(cfg))
        instrument_bridge(bridge)
        await bridge.run(stop)

    from citywatch.stream.metrics import BRIDGE_HEALTH, BRIDGE_REGISTRY, instrument_bridge

    start_metrics_or_exit(metrics_port, metrics_host, BRIDGE_REGISTRY, BRIDGE_HEALTH)
    asyncio.run(main())


@stream_app.command("app")
def stream_app_cmd(
    config: ConfigOpt = DEFAULT_CONFIG,
    data_dir: DataDirOpt = None,
    log_level: LogOpt = "INFO",
    metrics_port: MetricsPortOpt = None,
    metrics_host: MetricsHostOpt = "0.0.0.0",
) -> None:
    """Run the Faust worker: validate, store, dead-letter and send receipts.

    Applies pending database migrations first. Scale out by starting more workers: they
    form one consumer group.
    """
    import faust

    from citywatch.contracts import KafkaTopics
    from citywatch.stream.app import build_app
    from citywatch.stream.kafka_admin import ensure_topics
    from citywatch.stream.migrate import migrate_for
    from citywatch.stream.settings import stream_settings

    cfg = load_config_or_exit(config)
    settings = stream_settings(cfg, data_dir)
    migrate_for(cfg, settings.database_url)
    # The worker subscribes when it joins its group: its topics must exist by then. A loop
    # of its own, so Faust's worker still finds no event loop set and makes its own.
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(ensure_topics(settings, KafkaTopics(settings.topic_prefix)))
    finally:
        loop.close()
    worker = faust.Worker(build_app(cfg, settings), loglevel=log_level.lower(), quiet=True)
    # Faust's progress spinner sets the root logger to DEBUG at WARNING and above, so every
    # aiokafka and Faust debug line would be formatted (and dropped) on the hot path.
    worker.spinner = None
    from citywatch.stream.metrics import WORKER_HEALTH, WORKER_REGISTRY

    start_metrics_or_exit(metrics_port, metrics_host, WORKER_REGISTRY, WORKER_HEALTH)
    worker.execute_from_commandline()


@stream_app.command("replay")
def stream_replay(
    alerts: Annotated[
        Path, typer.Option("--alerts", help="Alert messages as published, one JSON per line.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Where to write the work orders (JSONL).")],
    config: ConfigOpt = DEFAULT_CONFIG,
    lateness: Annotated[
        float, typer.Option(help="Seconds of out-of-order arrival tolerated.")
    ] = 300.0,
    shuffle: Annotated[
        int | None, typer.Option(metavar="SEED", help="Also check a random arrival order.")
    ] = None,
    delay: Annotated[
        list[str] | None,
        typer.Option(metavar="DEVICE:MINUTES", help="Also check with a device's alerts late."),
    ] = None,
    skip_bad: Annotated[
        bool, typer.Option("--skip-bad", help="Exit 0 even when some lines cannot be read.")
    ] = False,
) -> None:
    """Back-test dedup offline: alerts in, the work orders the live app would make out.

    Runs the same dedup core as the Faust app over a recorded file (any arrival order within
    the lateness), so an operator can try a radius or window change on last week's alerts.
    Bad lines are reported once each with their line numbers, and make the exit status 1
    unless --skip-bad is given. With --shuffle or --delay it
    also dedups the alerts in that arrival order and says whether the work orders are the
    same as in event-time order (exit status 1 when they are not).
    """
    import logging
    from datetime import timedelta

    from citywatch.stream.replay import (
        check_order,
        order_check_line,
        parse_delay,
        read_alerts,
        replay,
    )

    try:
        delays = dict(parse_delay(text) for text in delay or [])
    except ValueError as exc:
        err.print(f"[red]✗[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    cfg = load_config_or_exit(config)
    # The replay core logs each bad line too; here they are printed once, as FILE:LINE.
    logging.getLogger("citywatch.stream.replay").setLevel(logging.ERROR)
    summary = replay(cfg, alerts, out, lateness=timedelta(seconds=lateness))
    for bad in summary.bad_lines:
        err.print(f"[yellow]![/] {alerts}:{bad.line}: {bad.error}", highlight=False, soft_wrap=True)
    console.print(
        f"{summary.alerts} alerts ({summary.duplicates} resends, {summary.late} late,"
        f" {len(summary.bad_lines)} bad lines) → {summary.incidents} work orders"
        f" ({summary.open} open, {summary.closed} closed, {summary.reopened} reopened) in {out}"
    )
    if shuffle is not None or delays:
        arrivals = list(read_alerts(alerts, []))
        check = check_order(
            cfg, arrivals, seed=shuffle, delays=delays, lateness=timedelta(seconds=lateness)
        )
        console.print(order_check_line(check, shuffle, delays), highlight=False, soft_wrap=True)
        if not check.same:
            raise typer.Exit(1)
    if summary.bad_lines and not skip_bad:
        err.print(
            f"[red]✗[/] {len(summary.bad_lines)} bad line(s) in {alerts}: fix them, or pass"
            " --skip-bad to accept a replay without them",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1)


@app.command("demo")
def demo(
    config: ConfigOpt = DEFAULT_CONFIG,
    data_dir: DataDirOpt = None,
    duration: Annotated[float, typer.Option(help="Seconds to run the simulated gateways.")] = 75.0,
    keep_stack: Annotated[bool, typer.Option(help="Leave the stack running afterwards.")] = False,
    linger: Annotated[
        float, typer.Option(help="Keep the command center up this many seconds after the run.")
    ] = 0.0,
) -> None:
    """Run the whole pipeline on the embedded stack with the simulated gateways of CONFIG.

    Starts the stack, the Faust app and the bridge, runs the simulated sensor gateways with a
    live view of depths, alerts and receipts, and ends with a summary of what reached the
    database.
    """
    from citywatch.cli.demo import run_demo

    cfg = load_config_or_exit(config)
    code = run_demo(cfg, config, data_dir, duration, keep_stack, console, linger)
    raise typer.Exit(code)
if __name__ == "__main__":
    app()
