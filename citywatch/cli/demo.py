"""``citywatch demo``: the whole pipeline on the embedded stack, with a live view.

Starts the stack, the Faust app and the bridge as their own processes (as in production),
runs the config's simulated sensor gateways in this process, and ends with a summary
checked against the database.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from citywatch.cli.errors import raise_on_sigterm
from citywatch.config import CitywatchConfig
from citywatch.config.secrets import resolve_secret
from citywatch.edge.gateway_session import edge_session
from citywatch.edge.sensor.agent import (
    SensorAgentStats,
    SensorChannel,
    build_channels,
    run_sensor_agent,
)
from citywatch.edge.session import EdgeSession
from citywatch.hardware.water.sim import SimulatedWaterSensor
from citywatch.stack.child import CliProcess
from citywatch.stack.endpoints import data_dir_of, embedded_stack, resolve_endpoints, secrets_dir_of
from citywatch.stack.launcher import EmbeddedStack
from citywatch.stream.migrate import migrate_for


@dataclass
class Gateway:
    id: str
    session: EdgeSession
    channels: list[SensorChannel]
    thread: threading.Thread | None = None
    stats: SensorAgentStats = field(default_factory=SensorAgentStats)


def run_demo(
    config: CitywatchConfig,
    config_path: Path,
    data_dir: Path | None,
    duration_s: float,
    keep_stack: bool,
    console: Console,
    linger_s: float = 0.0,
) -> int:
    """Run the demo; whatever it started is stopped on return, error, SIGINT or SIGTERM."""
    root = data_dir_of(config, data_dir)
    stack = embedded_stack(config, root)
    run = _Started()
    raise_on_sigterm()
    try:
        return _run(config, config_path, root, stack, duration_s, console, linger_s, run)
    finally:
        # A second signal must not cut the clean-up short.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        run.stop.set()
        for gateway in run.gateways:
            gateway.session.stop()
            gateway.session.outbox.close()
        for process in run.processes.values():
            process.stop()
        if not keep_stack:
            with console.status("stopping the stack…"):
                stack.down()
            console.print("[green]✓[/] stack stopped")


@dataclass
class _Started:
    """What a demo run has started so far, for the clean-up to stop, whatever happens."""

    processes: dict[str, CliProcess] = field(default_factory=dict)
    gateways: list[Gateway] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)


def _run(
    config: CitywatchConfig, config_path: Path, root: Path, stack: EmbeddedStack,
    duration_s: float, console: Console, linger_s: float, run: _Started,
) -> int:  # fmt: skip
    """The demo itself: each process and gateway it starts is recorded in ``run`` first."""
    processes, gateways, stop = run.processes, run.gateways, run.stop
    started = time.monotonic()
    with console.status("starting the embedded stack (Mosquitto, Tansu, PostgreSQL)…") as status:
        info = stack.up(progress=lambda line: status.update(line))
    console.print(
        f"[green]✓[/] stack up in {time.monotonic() - started:.1f}s: "
        + ", ".join(f"{s.name} {s.url}" for s in info.services),
        highlight=False,
    )
    endpoints = resolve_endpoints(config, root)
    report = migrate_for(config, endpoints.database_url)
    console.print(
        f"[green]✓[/] database schema v{report.current_version}"
        f" ({'TimescaleDB' if report.timescale else 'plain PostgreSQL: timescaledb not available'})"
    )
    env = {"CITYWATCH_DATA_DIR": str(root), "CITYWATCH_CONFIG": str(config_path)}
    logs = root / "logs"
    processes["stream app"] = CliProcess(["stream", "app"], logs / "stream-app.log", env)
    processes["bridge"] = CliProcess(["stream", "bridge"], logs / "bridge.log", env)
    # Starts a crashed Mosquitto, Tansu or PostgreSQL again (stopped before the stack).
    processes["stack supervisor"] = CliProcess(
        ["stack", "supervise"], logs / "stack-supervisor.log", env
    )
    console.print(f"[green]✓[/] started the Faust app and the bridge (logs in {logs})")
    center_url, login = _start_center(config, root, env, logs, processes)
    console.print(
        f"[green]✓[/] command center: [bold]{center_url}[/] — log in with the token"
        f" [bold]{login}[/] (work orders appear there live; API docs at {center_url}docs)",
        highlight=False,
    )
    started_at = datetime.now(UTC)
    # The dock and camera gateways run as their own processes, as they would on their boxes.
    for gateway_config in config.devices.gateways:
        kind, gateway_id = gateway_config.kind, gateway_config.id
        if kind == "dock":
            what = "the simulated drone dock gateway (patrol)"
        elif kind == "camera":
            cameras = [c.id for c in config.devices.cameras if c.gateway == gateway_id]
            if not cameras:
                continue
            what = f"the camera gateway ({', '.join(cameras)}: rendered scenes, bundled model)"
        else:
            continue
        processes[f"{kind} {gateway_id}"] = CliProcess(
            ["edge", kind, "--gateway", gateway_id, "--duration", str(duration_s)],
            logs / f"edge-{kind}-{gateway_id}.log",
            env,
        )
        console.print(f"[green]✓[/] started {gateway_id}: {what}")
    gateways += [
        Gateway(
            g.id,
            edge_session(config, g.id, root),
            build_channels(config, g.id, simulator=SimulatedWaterSensor.for_sensor),
        )
        for g in config.devices.gateways
        if g.kind == "sensor"
    ]
    for gateway in gateways:
        gateway.session.start()

        def work(gw: Gateway = gateway) -> None:
            run_sensor_agent(gw.channels, gw.session, stop, duration_s, stats=gw.stats)

        gateway.thread = threading.Thread(target=work, name=f"agent-{gateway.id}", daemon=True)
        gateway.thread.start()
    with Live(console=console, refresh_per_second=2) as live:
        begin = time.monotonic()

        def refresh() -> None:
            elapsed = time.monotonic() - begin
            live.update(_view(gateways, endpoints.database_url, elapsed, duration_s, processes))
            time.sleep(0.5)

        while any(g.thread and g.thread.is_alive() for g in gateways):
            refresh()
        # Then wait (bounded) for the receipts of what was published last.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_pending_alerts(g) for g in gateways):
            for g in gateways:
                g.session.pump()
            refresh()
    for name, process in processes.items():
        if name.startswith(("dock ", "camera ")):
            process.process.wait(timeout=60)
    code = _summary(gateways, endpoints.database_url, console, started_at)
    code |= _center_check(center_url, login, endpoints.database_url, started_at, console)
    if linger_s > 0:
        console.print(f"the command center stays up for {linger_s:.0f}s at {center_url} …")
        time.sleep(linger_s)
    return code


def _pending_alerts(gateway: Gateway) -> int:
    return gateway.session.outbox.counts().get("alert", 0)


def _db_counts(database_url: str) -> tuple[int, int]:
    try:
        with psycopg.connect(database_url, connect_timeout=2) as conn:
            alerts = conn.execute("SELECT count(*) FROM alerts").fetchone()
            telemetry = conn.execute("SELECT count(*) FROM telemetry").fetchone()
            return (alerts[0] if alerts else 0, telemetry[0] if telemetry else 0)
    except psycopg.Error:
        return (-1, -1)


def _view(
    gateways: list[Gateway],
    database_url: str,
    elapsed: float,
    duration: float,
    processes: dict[str, CliProcess],
) -> Group:
    table = Table(title="simulated waterlogging sensors", expand=True)
    for column in ("sensor", "depth cm", "level", "alerts sent", "awaiting receipt"):
        table.add_column(column)
    for gateway in gateways:
        sent: dict[str, int] = {}
        for alert in gateway.stats.alerts:
            sent[alert.device.id] = sent.get(alert.device.id, 0) + 1
        for channel in gateway.channels:
            depth = channel.tracker.depth_cm
            level = channel.tracker.level or "dry"
            colour = "green" if level == "dry" else "yellow" if level == "lane" else "red"
            table.add_row(
                channel.config.id,
                f"{depth:5.1f}" if depth is not None else "–",
                f"[{colour}]{level}[/]",
                str(sent.get(channel.config.id, 0)),
                "",
            )
        table.add_row(f"[dim]gateway {gateway.id}[/]", "", "", "", str(_pending_alerts(gateway)))
    alerts, telemetry = _db_counts(database_url)
    states = "  ".join(
        f"{name}: {'[green]running[/]' if p.process.poll() is None else f'[red]exited {p.process.returncode}[/]'}"
        for name, p in processes.items()
    )
    footer = (
        f"{min(elapsed, duration):.0f}/{duration:.0f}s   database: {alerts} alerts,"
        f" {telemetry} telemetry rows   {states}"
    )
    return Group(table, Panel(footer, title="pipeline"))


def _summary(
    gateways: list[Gateway], database_url: str, console: Console, started_at: datetime
) -> int:
    published = [a for g in gateways for a in g.stats.alerts]
    with psycopg.connect(database_url) as conn:
        dock_ids = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM alerts WHERE device_kind IN ('dock', 'camera') AND received_at >= %s",
                (started_at,),
            ).fetchall()
        ]
    receipts = sum(g.session.receipts for g in gateways)
    pending = sum(_pending_alerts(g) for g in gateways)
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT id, device_id, kind, phase, attributes->>'level', attributes->>'depth_cm', event_time"
            " FROM alerts WHERE id = ANY(%s) ORDER BY event_time",
            ([a.id for a in published] + dock_ids,),
        ).fetchall()
    table = Table(title="alerts in the database (published this run)")
    for column in ("alert id", "device", "kind", "phase", "level", "depth cm", "event time (UTC)"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row[0], row[1], row[2], row[3], row[4] or "", row[5] or "", row[6].strftime("%H:%M:%S")
        )
    console.print(table)
    with psycopg.connect(database_url) as conn:
        orders = conn.execute(
            """SELECT coalesce(w.number, w.id), w.kind, w.category_code, w.department, w.priority, w.state, w.due_at,
                      w.alert_count, w.incident_state
               FROM work_orders w WHERE w.id IN (
                   SELECT work_order_id FROM work_order_alerts WHERE alert_id = ANY(%s))
               ORDER BY w.opened_at""",
            ([a.id for a in published] + dock_ids,),
        ).fetchall()
    wo_table = Table(title="work orders (one per problem, however many alerts)")
    for column in (
        "work order",
        "kind",
        "class",
        "department",
        "prio",
        "state",
        "due (UTC)",
        "alerts",
        "incident",
    ):
        wo_table.add_column(column)
    for order in orders:
        wo_table.add_row(
            order[0], order[1], order[2], order[3], str(order[4]), order[5],
            order[6].strftime("%H:%M:%S") if order[6] else "", str(order[7]), order[8],
        )  # fmt: skip
    console.print(wo_table)
    ok = len(rows) == len(published) + len(dock_ids) and pending == 0 and len(published) > 0
    mark = "[green]✓[/]" if ok else "[red]✗[/]"
    console.print(
        f"{mark} {len(published)} sensor alerts published and {len(dock_ids)} from docks and"
        " cameras;"
        f" {len(rows)} in the database,"
        f" {receipts} receipts received, {pending} still awaiting a receipt;"
        f" {len(orders)} work orders"
    )
    return 0 if ok else 1


def _start_center(
    config: CitywatchConfig, root: Path, env: dict[str, str], logs: Path,
    processes: dict[str, CliProcess],
) -> tuple[str, str]:  # fmt: skip
    """Start the command center (its configured port, or a free one when that is taken) and
    return its URL and the token of the config's first operator (else admin)."""
    port = config.center.port
    with socket.socket() as probe:
        if probe.connect_ex((config.center.listen, port)) == 0:
            with socket.socket() as free:
                free.bind((config.center.listen, 0))
                port = free.getsockname()[1]
    processes["center"] = CliProcess(
        ["center", "serve", "--port", str(port)], logs / "center.log", env
    )
    url = f"http://{config.center.listen}:{port}/"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "healthz", timeout=1):
                break
        except OSError:
            if processes["center"].process.poll() is not None:
                output = processes["center"].output()
                raise SystemExit(f"the command center exited:\n{output}") from None
            time.sleep(0.3)
    actors = sorted(
        (u for u in config.center.users if u.role in ("operator", "admin") and u.token),
        key=lambda u: u.role != "operator",  # a duty officer's token, else an admin's
    )
    login = "(no operator token in center.users: `citywatch center token add NAME`)"
    if actors:
        login = resolve_secret(actors[0].token or "", secrets_dir_of(root))
    return url, login


def _center_check(
    url: str, token: str, database_url: str, started_at: datetime, console: Console
) -> int:
    """Ask the command center's API for this run's work orders, as the console does: every
    work order the run touched must be in its list."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT id FROM work_orders WHERE updated_at >= %s", (started_at,)
        ).fetchall()
    touched = {r[0] for r in rows}
    request = urllib.request.Request(
        url + "api/v1/work-orders?limit=500", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            listed = {item["id"] for item in json.load(response)["items"]}
    except (OSError, ValueError, KeyError) as exc:
        console.print(f"[red]✗[/] the command center's API did not answer: {exc}")
        return 1
    missing = touched - listed
    ok = bool(touched) and not missing
    mark = "[green]✓[/]" if ok else "[red]✗[/]"
    console.print(
        f"{mark} the command center's API lists {len(touched & listed)} of the"
        f" {len(touched)} work orders this run opened or changed"
        + (f"; missing: {', '.join(sorted(missing))}" if missing else "")
    )
    return 0 if ok else 1
