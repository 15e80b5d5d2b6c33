"""``citywatch edge dock`` and ``citywatch sim dock``: the drone-dock gateway and its simulator."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

import typer
from rich.console import Console

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

if TYPE_CHECKING:
    from citywatch.config import CitywatchConfig
    from citywatch.config.dock import DockConfig

console = Console()
def _docks(cfg: CitywatchConfig, gateway: str | None) -> list[DockConfig]:
    docks = [d for d in cfg.devices.docks if gateway is None or d.gateway == gateway]
    if not docks:
        raise typer.BadParameter(f"no docks behind gateway {gateway!r} in the config")
    return docks


def media_dir_of(dock: DockConfig, root: Path) -> Path:
    return Path(dock.media_dir) if dock.media_dir else root / f"media-{dock.id}"


def edge_dock(
    gateway: GatewayOpt,
    config: ConfigOpt = DEFAULT_CONFIG,
    data_dir: DataDirOpt = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    log_level: LogOpt = "INFO",
    metrics_port: MetricsPortOpt = None,
    metrics_host: MetricsHostOpt = "0.0.0.0",
) -> None:
    """Run a drone-dock gateway: DJI dock messages → photos → detector → geo-located alerts."""
    from citywatch.cli.logs import setup_logging
    from citywatch.config.dock import MqttDockLink
    from citywatch.config.secrets import resolve_secret
    from citywatch.edge.dock.agent import (
        DockAgent,
        DockLink,
        LocalMediaStore,
        make_detector,
        run_dock_agent,
    )
    from citywatch.edge.dock.link import MqttLink
    from citywatch.edge.gateway_session import edge_session
    from citywatch.edge.metrics import EDGE_HEALTH, EDGE_REGISTRY, watch_session
    from citywatch.hardware.dock.sim import simulated_link
    from citywatch.stack.endpoints import data_dir_of, resolve_endpoints

    setup_logging(log_level)
    cfg = load_config_or_exit(config)
    docks = _docks(cfg, gateway)
    if len(docks) > 1:
        raise typer.BadParameter("one dock per dock gateway (a gateway box sits beside its dock)")
    dock = docks[0]
    root = data_dir_of(cfg, data_dir)
    media = media_dir_of(dock, root)
    session = edge_session(cfg, gateway, data_dir)
    link: DockLink
    if isinstance(dock.link, MqttDockLink):
        secrets_dir = resolve_endpoints(cfg, root).secrets_dir
        password = resolve_secret(dock.link.password, secrets_dir) if dock.link.password else None
        mqtt_link = MqttLink(dock, dock.link, password)
        mqtt_link.start()
        link = mqtt_link
    else:
        link = simulated_link(dock, media, dock.link.time_scale)
    stop = stop_on_signals()
    watch_session(session, "dock")
    start_metrics_or_exit(metrics_port, metrics_host, EDGE_REGISTRY, EDGE_HEALTH)
    session.start()
    agent = DockAgent(
        site=cfg.site.id,
        dock=dock,
        detector=make_detector(dock),
        media=LocalMediaStore(media),
        publisher=session,
        reply=link.publish,
    )
    try:
        stats = run_dock_agent(agent, link, stop, duration)
        session.pump()
    finally:
        link.close()
        session.stop()
    errors = ", ".join(f"{k} {v}" for k, v in stats.errors.items()) or "none"
    console.print(
        f"{stats.messages} dock messages, {stats.photos} photos, {stats.detections} detections,"
        f" {len(stats.alerts)} alerts, {stats.telemetry} telemetry; errors: {errors};"
        f" {len(session.outbox)} still awaiting a receipt"
    )


def sim_dock(
    config: ConfigOpt = DEFAULT_CONFIG,
    gateway: Annotated[
        str | None, typer.Option("--gateway", "-g", help="The dock behind this gateway.")
    ] = None,
    mqtt_url: Annotated[
        str | None,
        typer.Option(help="Publish the DJI topics to mqtt://host:port (default: print them)."),
    ] = None,
    username: Annotated[str | None, typer.Option(help="Broker username.")] = None,
    password: Annotated[str | None, typer.Option(envvar="CITYWATCH_SIM_PASSWORD")] = None,
    media_dir: Annotated[
        Path | None,
        typer.Option(help="Where photos go (default: the dock's media_dir or ./media)."),
    ] = None,
    time_scale: Annotated[float, typer.Option(help="Simulated seconds per wall second.")] = 1.0,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
) -> None:
    """Fly the simulated dock: DJI Cloud API OSD, topology, progress and photo events."""
    from citywatch.hardware.dock.dji import DjiTopic
    from citywatch.hardware.dock.sim import SimulatedDock

    cfg = load_config_or_exit(config)
    dock = _docks(cfg, gateway)[0]
    media = media_dir or (Path(dock.media_dir) if dock.media_dir else Path("media") / dock.id)
    sim = SimulatedDock(dock, media, epoch=datetime.now(UTC))
    client = None
    if mqtt_url is not None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        parts = urlsplit(mqtt_url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise typer.BadParameter(
                f"--mqtt-url must look like mqtt://host:port, got {mqtt_url!r}"
            )
        client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        if username:
            client.username_pw_set(username, password)
        if parts.scheme == "mqtts":
            client.tls_set()
        client.on_message = lambda _c, _u, m: sim.receive(m.topic, bytes(m.payload))
        client.connect(parts.hostname, parts.port or 1883)
        for channel in ("events_reply", "status_reply"):
            root = "sys" if channel == "status_reply" else "thing"
            client.subscribe(f"{root}/product/{dock.serial}/{channel}", qos=1)
        client.loop_start()
    console.print(f"dock {dock.id} ({dock.serial}): photos in {media}")
    stop = stop_on_signals()
    started = time.monotonic()
    sent = 0
    try:
        while not stop.is_set():
            elapsed = time.monotonic() - started
            if duration is not None and elapsed >= duration:
                break
            for topic, payload in sim.advance(elapsed * time_scale):
                sent += 1
                if client is not None:
                    client.publish(topic, payload, qos=1 if "events" in topic else 0)
                else:
                    method = json.loads(payload).get("method") or DjiTopic.parse(topic).channel
                    console.print(f"{topic} {method}", highlight=False)
            stop.wait(0.1)
    finally:
        if client is not None:
            client.disconnect()
            client.loop_stop()
    console.print(
        f"published {sent} messages, {len(sim.photos)} photos;"
        f" {len(sim.awaiting_reply)} events still awaiting a reply"
    )
