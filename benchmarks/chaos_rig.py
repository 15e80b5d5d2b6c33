"""The chaos rig: a private embedded stack with the stream tier and a gateway, faults to
inject, and one oracle that judges every case the same way.

Used by the chaos tests (``tests/chaos``) and the benchmark (``python -m benchmarks.chaos``).
The stack is citywatch's own (Mosquitto, Tansu, PostgreSQL, started by
``embedded_stack(config, data_dir).up()``) in a temporary directory; the bridge and the
Faust worker run as child processes (``citywatch stream bridge|app``), as in production, so
they can be killed with SIGKILL; the gateway is a real :class:`EdgeSession` publishing
through its durable outbox, reaching Mosquitto through a :class:`TcpProxy` that can be cut.

The oracle (:meth:`ChaosRig.judge`): every alert emitted is in the database exactly once,
each alert belongs to exactly one work order and there is one order per spot (every test
alert stands in its own spot), every receipt came back (the outbox is empty), and the
recovery time is measured from the end of the fault to the outbox drained.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from benchmarks.chaos_proxy import TcpProxy
from citywatch.config import CitywatchConfig, load_config
from citywatch.contracts import Alert, DeviceRef, Location
from citywatch.edge.gateway_session import edge_session
from citywatch.edge.outbox import Outbox
from citywatch.edge.session import EdgeSession
from citywatch.stack.child import CliProcess
from citywatch.stack.endpoints import Endpoints, embedded_stack, resolve_endpoints
from citywatch.stack.launcher import EmbeddedStack
from citywatch.stream.migrate import migrate

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[1]
CONFIG_PATH = REPO / "configs" / "demo-district.yaml"
GATEWAY = "gw-cam-renmin"
CAMERA = DeviceRef(site="demo", kind="camera", id="cam-renmin-101")
READY_LINES = {"bridge": "bridge connected", "app": "restored "}
RESEND_AFTER_S = 2.0
"""How long the test gateway waits for a receipt before it sends an alert again."""


@dataclass
class CaseResult:
    """One row of the chaos table."""

    fault: str
    sent: int
    stored: int = 0
    duplicated: int = 0
    receipts: int = 0
    left_in_outbox: int = 0
    quarantined: int = 0
    work_orders: int = 0
    orders_expected: int = 0
    alerts_in_two_orders: int = 0
    recovery_s: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return (
            self.stored == self.sent and self.duplicated == 0 and self.left_in_outbox == 0
            and self.quarantined == 0
            and not any(note.startswith("FAILED") for note in self.notes)
            and self.work_orders == self.orders_expected and self.alerts_in_two_orders == 0
        )  # fmt: skip

    def record(self) -> dict[str, object]:
        return asdict(self) | {"passed": self.passed}


def spot_alerts(case: str, count: int, *, area: int, reports_per_spot: int = 1) -> list[Alert]:
    """``count`` parked-car alerts of the test camera, ``reports_per_spot`` to a spot, each
    spot 55 m from the next (beyond the 15 m dedup radius: one work order per spot), in an
    ``area`` of their own so cases never fold into each other's orders."""
    base = datetime.now(UTC) - timedelta(minutes=5)
    alerts = []
    for index in range(count):
        spot = index // reports_per_spot
        row, column = divmod(spot, 40)
        episode = f"chaos-{case}-{spot}-{index % reports_per_spot}"
        alerts.append(
            Alert(
                id=f"{episode}.0", episode_id=episode, seq=0, device=CAMERA,
                kind="illegal_parking", rule="curb-parking", phase="start",
                event_time=base + timedelta(milliseconds=index),
                location=Location(lat=31.30 + area * 0.03 + row * 0.0005,
                                  lon=119.40 + column * 0.0006),
                confidence=0.8,
            )
        )  # fmt: skip
    return alerts


OVERLAY = """# The chaos rig's site: the demo district with small limits, so faults show in seconds.
include:
  - {base}
services:
  mqtt: {{max_queued_messages: {max_queued}}}
  database: {{retry_max: {retry_max_s}s}}
"""
MAX_QUEUED = 300
"""Mosquitto's queue limit in the rig: a stopped bridge's session overflows it quickly."""
DB_RETRY_MAX_S = 2
"""The worker's longest wait between database retries in the rig (config, not a mock)."""


class ChaosRig:
    """A private stack kept up by its supervisor, the stream tier as children and
    gateways behind a proxy. Its site config is the demo district with
    :data:`MAX_QUEUED` and :data:`DB_RETRY_MAX_S` (written beside its data)."""

    def __init__(self, base_config: Path = CONFIG_PATH, resend_after_s: float = RESEND_AFTER_S):
        self.resend_after_s = resend_after_s
        # Not under a 0700 temporary root: the services run as their own users.
        self.data_dir = Path(tempfile.mkdtemp(prefix="citywatch-chaos-"))
        self.data_dir.chmod(0o711)
        self.config_path = self.data_dir / "chaos-site.yaml"
        self.config_path.write_text(
            OVERLAY.format(base=base_config, max_queued=MAX_QUEUED, retry_max_s=DB_RETRY_MAX_S)
        )
        self.config: CitywatchConfig = load_config(self.config_path)
        self.launcher: EmbeddedStack = embedded_stack(self.config, self.data_dir)
        self.streams: dict[str, CliProcess] = {}
        self.supervisor: CliProcess | None = None
        self.mqtt_proxy: TcpProxy | None = None
        self._restarts = 0

    # -- the stack --------------------------------------------------------------------------
    def up(self) -> ChaosRig:
        self.launcher.up(timeout_s=120)
        migrate(self.endpoints.database_url)
        self.mqtt_proxy = TcpProxy(self.endpoints.mqtt_port)
        self.supervisor = CliProcess(
            ["stack", "supervise", *self._site_args(), "--interval", "0.5"],
            self.data_dir / "logs" / "supervisor.log", {}, cwd=REPO,
        )  # fmt: skip
        for name in ("bridge", "app"):
            self.start_stream(name)
        self.wait_streams_ready()
        return self

    def down(self) -> None:
        for process in [*self.streams.values(), *filter(None, [self.supervisor])]:
            if process.process.poll() is None:
                process.process.send_signal(signal.SIGCONT)  # a paused one must hear SIGTERM
            process.stop()
        if self.mqtt_proxy is not None:
            self.mqtt_proxy.close()
        self.launcher.down()
        if os.environ.get("CITYWATCH_CHAOS_KEEP"):  # logs and outboxes, to read after a failure
            log.warning("kept the chaos rig's directory %s", self.data_dir)
        else:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> ChaosRig:
        try:
            return self.up()
        except BaseException:
            self.down()
            raise

    def __exit__(self, *exc: object) -> None:
        self.down()

    @property
    def endpoints(self) -> Endpoints:
        return resolve_endpoints(self.config, self.data_dir)

    def service_pid(self, name: str) -> int:
        info = self.launcher.status()
        assert info is not None, "the rig's stack is not up"
        pid = info.service(name).pid
        assert pid is not None, f"{name} is not running"
        return pid

    def kill_service(self, name: str, sig: signal.Signals = signal.SIGKILL) -> None:
        """Signal a service of the stack (``mqtt``, ``kafka``, ``postgres``) and wait until
        it is gone. SIGKILL is a crash; SIGQUIT to PostgreSQL is ``pg_ctl stop -m immediate``."""
        pid = self.service_pid(name)
        os.kill(pid, sig)
        deadline = time.monotonic() + 30
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().split(") ", 1)[1].startswith(("Z", "X")):
                    break
            time.sleep(0.05)
        log.info("%s (pid %s) stopped with %s", name, pid, sig.name)

    def wait_service_back(self, name: str, timeout_s: float = 60.0) -> float:
        """Wait until the supervisor started ``name`` again; the monotonic time it was."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            info = self.launcher.status()
            running = info is not None and info.service(name).running
            if running and (name != "postgres" or _accepts(self.endpoints.database_url)):
                return time.monotonic()
            time.sleep(0.1)
        assert self.supervisor is not None
        raise TimeoutError(
            f"the supervisor did not restart {name} in {timeout_s} s:\n"
            f"{self.supervisor.output()[-2000:]}"
        )

    def pause_supervisor(self) -> None:
        """SIGSTOP the supervisor: a service stopped now stays down until it resumes."""
        assert self.supervisor is not None
        self.supervisor.process.send_signal(signal.SIGSTOP)

    def resume_supervisor(self) -> None:
        assert self.supervisor is not None
        self.supervisor.process.send_signal(signal.SIGCONT)

    # -- the stream tier --------------------------------------------------------------------
    def start_stream(self, name: str, extra_env: dict[str, str] | None = None) -> CliProcess:
        self._restarts += 1
        args = ["stream", name, *self._site_args()]
        log_path = self.data_dir / "logs" / f"{name}-{self._restarts}.log"
        self.streams[name] = CliProcess(args, log_path, extra_env or {}, cwd=REPO)
        return self.streams[name]

    def _site_args(self) -> list[str]:
        return ["--config", str(self.config_path), "--data-dir", str(self.data_dir)]

    def wait_streams_ready(
        self, names: Sequence[str] = ("bridge", "app"), timeout_s: float = 90
    ) -> None:
        deadline = time.monotonic() + timeout_s
        for name in names:
            process = self.streams[name]
            while READY_LINES[name] not in process.output():
                if process.process.poll() is not None:
                    raise RuntimeError(f"{name} exited at start:\n{process.output()[-3000:]}")
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{name} not ready in {timeout_s} s:\n{process.output()[-3000:]}"
                    )
                time.sleep(0.1)

    def kill_stream(self, name: str) -> None:
        """SIGKILL: no cleanup, no offset commit, no MQTT ack."""
        process = self.streams[name].process
        process.kill()
        process.wait()

    def logs(self, name: str, tail: int = 4000) -> str:
        return self.streams[name].output()[-tail:]

    # -- gateways ---------------------------------------------------------------------------
    def gateway(
        self, outbox_path: Path | None = None, *, alerts_in_flight: int = 100
    ) -> EdgeSession:
        """The camera gateway's real session, its outbox in the rig (``outbox_path`` to
        take over one a killed gateway left), reaching Mosquitto through the proxy."""
        assert self.mqtt_proxy is not None
        path = outbox_path or self.data_dir / f"outbox-{time.monotonic_ns()}.sqlite"
        return gateway_session(
            self.config, self.data_dir, self.mqtt_proxy.port, path, self.resend_after_s,
            alerts_in_flight=alerts_in_flight,
        )  # fmt: skip

    # -- the oracle -------------------------------------------------------------------------
    def wait_drained(
        self, session: EdgeSession, fault_end: float, timeout_s: float, fault: str = ""
    ) -> float | None:
        """Seconds from ``fault_end`` (a monotonic time) to the outbox empty, or None."""
        deadline = fault_end + timeout_s
        while time.monotonic() < deadline:
            if len(session.outbox) == 0:
                return time.monotonic() - fault_end
            time.sleep(0.1)
        log.warning("%s: %d alerts still in the outbox", fault, len(session.outbox))
        return None

    def judge(
        self, fault: str, alerts: Sequence[Alert], session: EdgeSession | None,
        recovery_s: float | None, *, spots: int | None = None, settle_s: float = 20.0,
    ) -> CaseResult:  # fmt: skip
        """The oracle: stored once each, one order per spot, every receipt back
        (``session``: the gateway that sent them; None for a bare publisher)."""
        ids = sorted({alert.id for alert in alerts})
        result = CaseResult(fault, sent=len(ids), recovery_s=recovery_s)
        result.orders_expected = spots if spots is not None else len(ids)
        if session is not None:
            result.receipts = session.receipts
            result.left_in_outbox = len(session.outbox)
            result.quarantined = len(session.outbox.quarantined())
        deadline = time.monotonic() + settle_s
        with psycopg.connect(self.endpoints.database_url, autocommit=True) as conn:
            while True:
                rows = conn.execute(
                    "SELECT id, count(*) FROM alerts WHERE id = ANY(%s) GROUP BY id", (ids,)
                ).fetchall()
                linked = conn.execute(
                    """SELECT alert_id, count(DISTINCT work_order_id), min(work_order_id)
                       FROM work_order_alerts WHERE alert_id = ANY(%s) GROUP BY alert_id""",
                    (ids,),
                ).fetchall()
                if (len(rows) == len(ids) and len(linked) == len(ids)) or (
                    time.monotonic() > deadline
                ):
                    break
                time.sleep(0.3)
        result.stored = len(rows)
        result.duplicated = sum(count - 1 for _, count in rows)
        result.alerts_in_two_orders = sum(1 for _, orders, _ in linked if orders > 1)
        result.work_orders = len({order for _, _, order in linked})
        return result


def gateway_session(
    config: CitywatchConfig, data_dir: Path, port: int, outbox_path: Path, resend_after_s: float,
    *, alerts_in_flight: int = 100,
) -> EdgeSession:  # fmt: skip
    """The test camera gateway's session as :func:`edge_session` builds it, connecting to
    ``port`` (the proxy) with short keepalive and backoff, resending after ``resend_after_s``."""
    base = edge_session(config, GATEWAY, data_dir)
    base.outbox.close()
    return EdgeSession(
        site=config.site.id, gateway_id=GATEWAY, devices=base.devices,
        broker=replace(base.broker, port=port, reconnect_max_s=2, keepalive_s=10),
        outbox=Outbox(outbox_path, resend_after_s=resend_after_s),
        software="citywatch chaos rig", alerts_in_flight=alerts_in_flight, pump_interval_s=0.2,
    )  # fmt: skip


def _accepts(database_url: str) -> bool:
    try:
        with psycopg.connect(database_url, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.OperationalError:
        return False


def publish_all(session: EdgeSession, alerts: Sequence[Alert], pace_s: float = 0.0) -> None:
    """Hand ``alerts`` to the gateway's outbox (its pump sends them), ``pace_s`` apart."""
    for alert in alerts:
        session.publish_alert(alert)
        if pace_s:
            time.sleep(pace_s)


def wait_until(check: Callable[[], object], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.1)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m benchmarks.chaos_rig gateway CONFIG DATA_DIR PORT OUTBOX CASE COUNT AREA``:
    the test gateway as a process of its own (for the kill -9 case): it hands ``COUNT``
    alerts of ``spot_alerts(CASE, COUNT, area=AREA)`` to its outbox, says ``handed over``,
    and keeps sending until it is killed."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("role", choices=["gateway"])
    parser.add_argument("config", type=Path)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("port", type=int)
    parser.add_argument("outbox", type=Path)
    parser.add_argument("case")
    parser.add_argument("count", type=int)
    parser.add_argument("area", type=int)
    args = parser.parse_args(argv)
    session = gateway_session(
        load_config(args.config), args.data_dir, args.port, args.outbox, RESEND_AFTER_S
    )
    session.start()
    publish_all(session, spot_alerts(args.case, args.count, area=args.area), pace_s=0.002)
    print("handed over", flush=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()
