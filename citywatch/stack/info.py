"""What `citywatch stack status` reports: each service's address, pid, version and log, and
the addresses in the forms clients take them (the displayed URLs carry no password)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from citywatch.stack import processes, state
from citywatch.stack.ports import LOOPBACK
from citywatch.stack.tansu import SUPPORTS_IDEMPOTENCE

SERVICE_NAMES = ("mqtt", "kafka", "postgres")
LOG_NAMES = {"mqtt": "mosquitto.log", "kafka": "tansu.log", "postgres": "postgres.log"}


@dataclass(frozen=True)
class ServiceInfo:
    """One service as `citywatch stack status` shows it (the URL carries no password)."""

    name: str  # "mqtt", "kafka" or "postgres"
    url: str
    pid: int  # 0 when not running
    port: int
    version: str
    log_path: Path
    running: bool


@dataclass(frozen=True)
class StackInfo:
    """Where the running stack's services are, in the forms clients take them."""

    data_dir: Path
    mqtt_url: str  # "mqtt://127.0.0.1:PORT"
    kafka_bootstrap: str  # "127.0.0.1:PORT"
    kafka_idempotent: bool  # False: Tansu's memory storage refuses InitProducerId
    database_url: str  # "postgresql://citywatch:PASSWORD@127.0.0.1:PORT/citywatch"
    services: tuple[ServiceInfo, ...]

    def service(self, name: str) -> ServiceInfo:
        """The service called `name` ("mqtt", "kafka" or "postgres")."""
        for info in self.services:
            if info.name == name:
                return info
        raise KeyError(name)


def stack_info(data_dir: Path, st: state.StackState) -> StackInfo:
    """The stack recorded in ``st`` as clients and `citywatch stack status` see it."""
    infos = []
    ports = {}
    for name in SERVICE_NAMES:
        svc = st.services.get(name)
        port = svc.port if svc else 0
        ports[name] = port
        running = bool(svc and svc.process and processes.is_alive(svc.process))
        infos.append(
            ServiceInfo(
                name=name,
                url=_display_url(name, port),
                pid=svc.process.pid if running and svc and svc.process else 0,
                port=port,
                version=svc.version if svc else "",
                log_path=data_dir / LOG_NAMES[name],
                running=running,
            )
        )
    return StackInfo(
        data_dir=data_dir,
        mqtt_url=f"mqtt://{LOOPBACK}:{ports['mqtt']}",
        kafka_bootstrap=f"{LOOPBACK}:{ports['kafka']}",
        kafka_idempotent=SUPPORTS_IDEMPOTENCE,
        database_url=(
            f"postgresql://citywatch:{st.postgres_password}@{LOOPBACK}:{ports['postgres']}"
            "/citywatch"
        ),
        services=tuple(infos),
    )


def _display_url(name: str, port: int) -> str:
    if name == "postgres":
        return f"postgresql://citywatch@{LOOPBACK}:{port}/citywatch"
    scheme = "mqtt" if name == "mqtt" else "kafka"
    return f"{scheme}://{LOOPBACK}:{port}"
