"""Kill -9 the Faust worker and the bridge mid-stream, restart them; add a worker and stop
one mid-stream: nothing lost, nothing duplicated (issue 5).

The gateway publishes through its real edge session: its outbox resends whatever has no
receipt (Mosquitto 2.0 may drop QoS 1 messages in flight to a shared subscriber that dies,
eclipse-mosquitto#2662, so the broker's redelivery alone is not enough). The worker resumes
from committed offsets and rebuilds its state from the database, which decides what is new.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from citywatch.contracts import Alert, DeviceRef, Location
from citywatch.edge.gateway_session import edge_session
from tests.conftest import CliProcess
from tests.gateways import lone_fast_gateway

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CAMERA = DeviceRef(site="demo", kind="camera", id="cam-renmin-101")
SPOTS = 30
PER_SPOT = 10


def burst(run: str, *, lon: float = 119.45, spot_by_spot: bool = False) -> list[Alert]:
    """30 parked cars 100 m apart, each reported 10 times (one episode per report): in
    rounds over all spots, or ``spot_by_spot`` (a spot's 10 reports one after another, so
    spots are first seen all through the burst)."""
    base = datetime.now(UTC) - timedelta(minutes=30)
    alerts = []
    order = [(n, spot) for n in range(PER_SPOT) for spot in range(SPOTS)]
    if spot_by_spot:
        order.sort(key=lambda report: report[1])
    for n, spot in order:
        episode = f"crash-{run}-{spot}-{n}"
        alerts.append(
            Alert(
                id=f"{episode}.0",
                episode_id=episode,
                seq=0,
                device=CAMERA,
                kind="illegal_parking",
                rule="curb-parking",
                phase="start",
                event_time=base + timedelta(seconds=n),
                location=Location(lat=31.40 + spot * 0.0009, lon=lon),
                confidence=0.8,
            )
        )
    return alerts


class GatewayBurst:
    """The camera gateway sending a burst through its real edge session, from a thread, and
    resending whatever has no receipt until :meth:`finish` (as the agent's loop does).

    ``hold_at``: fractions of the burst where the sender stops until :meth:`release` (so a
    test can change the stream tier at a known point, however fast or slow it starts)."""

    def __init__(  # type: ignore[no-untyped-def]
        self, stack, demo_config, tmp_path, alerts: list[Alert], hold_at: tuple[float, ...] = ()
    ) -> None:
        config = lone_fast_gateway(demo_config, "gw-cam-renmin", tmp_path)
        self.alerts = alerts
        self.session = edge_session(config, "gw-cam-renmin", stack.data_dir)
        self.sent = 0
        self._holds = {round(len(alerts) * fraction) for fraction in hold_at}
        self._held, self._released = threading.Event(), threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._send)

    def _send(self) -> None:
        for index, alert in enumerate(self.alerts):
            if index in self._holds:
                self._released.clear()
                self._held.set()
                self._released.wait(120)
            self.session.publish_alert(alert)
            self.sent += 1
            time.sleep(0.01)
        while not self._done.is_set():
            self.session.pump()
            self._done.wait(0.5)

    def start(self) -> None:
        self.session.start()
        assert self.session.wait_connected(15)
        self._thread.start()

    def wait_sent(self, fraction: float, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.sent < len(self.alerts) * fraction:
            assert time.monotonic() < deadline, f"only {self.sent} alerts sent"
            time.sleep(0.05)

    def wait_held(self, timeout_s: float = 60.0) -> None:
        assert self._held.wait(timeout_s), f"only {self.sent} alerts sent"
        self._held.clear()

    def release(self) -> None:
        self._released.set()

    def finish(self, timeout_s: float = 120.0) -> None:
        """Wait until every alert has its receipt (stored), then stop the gateway."""
        try:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and len(self.session.outbox) > 0:
                time.sleep(0.5)
            assert len(self.session.outbox) == 0, (
                f"{len(self.session.outbox)} alerts never got a receipt"
            )
        finally:
            self._done.set()
            self._released.set()
            self._thread.join(30)
            self.session.stop()
            self.session.outbox.close()


def assert_each_stored_once_in_one_order_a_spot(
    stack, alerts: list[Alert], app: CliProcess
) -> None:  # type: ignore[no-untyped-def]
    ids = [a.id for a in alerts]
    deadline = time.monotonic() + 120
    with psycopg.connect(stack.endpoints.database_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            stored = conn.execute(
                "SELECT count(*) FROM alerts WHERE id = ANY(%s)", (ids,)
            ).fetchone()[0]  # type: ignore[index]
            linked = conn.execute(
                "SELECT count(*) FROM work_order_alerts WHERE alert_id = ANY(%s)", (ids,)
            ).fetchone()[0]  # type: ignore[index]
            if stored == len(ids) and linked == len(ids):
                break
            time.sleep(0.5)
        assert (stored, linked) == (len(ids), len(ids)), app.output()[-3000:]
        rows = conn.execute(
            """SELECT w.id, w.alert_count, count(a.alert_id) FROM work_orders w
               JOIN work_order_alerts a ON a.work_order_id = w.id
               WHERE a.alert_id = ANY(%s) GROUP BY w.id, w.alert_count""",
            (ids,),
        ).fetchall()
        duplicates = conn.execute(
            "SELECT id, count(*) FROM alerts WHERE id = ANY(%s) GROUP BY id HAVING count(*) > 1",
            (ids,),
        ).fetchall()
    assert duplicates == []
    assert len(rows) == SPOTS, f"{len(rows)} work orders for {SPOTS} spots"
    assert all(count == PER_SPOT and alert_count == PER_SPOT for _, alert_count, count in rows), (
        rows
    )


def test_kill_9_worker_and_bridge_mid_stream_loses_and_duplicates_nothing(
    stack, pipeline, demo_config, tmp_path
) -> None:
    """300 alerts, both stream processes SIGKILLed mid-burst and restarted: 300 rows, 30 work orders of 10."""
    alerts = burst(uuid.uuid4().hex[:8])
    gateway = GatewayBurst(stack, demo_config, tmp_path, alerts)
    gateway.start()
    try:
        gateway.wait_sent(1 / 3)
        for name in ("app", "bridge"):
            pipeline[name].process.kill()  # SIGKILL: no cleanup, no offset commit, no MQTT ack
            pipeline[name].process.wait()
        time.sleep(1.0)
        pipeline["bridge"] = CliProcess(
            ["stream", "bridge"], stack.data_dir, tmp_path / "bridge-2.log"
        )
        pipeline["app"] = CliProcess(["stream", "app"], stack.data_dir, tmp_path / "app-2.log")
    finally:
        gateway.finish()
    assert_each_stored_once_in_one_order_a_spot(stack, alerts, pipeline["app"])


def test_a_worker_joining_and_one_leaving_mid_stream_loses_and_duplicates_nothing(
    stack, pipeline, demo_config, tmp_path
) -> None:
    """A second worker joins a third of the way through a burst (the partitions are split
    between the two), the first stops at two thirds (all move to the second): every alert
    stored once, and each spot still one work order, though its alerts were folded by two
    workers in turn (the spot being reported when the first stops was first seen after the
    second had read its state at start)."""
    alerts = burst(uuid.uuid4().hex[:8], lon=119.46, spot_by_spot=True)  # 1 km east
    gateway = GatewayBurst(stack, demo_config, tmp_path, alerts, hold_at=(1 / 3, 2 / 3))
    gateway.start()
    try:
        gateway.wait_held()
        second = CliProcess(["stream", "app"], stack.data_dir, tmp_path / "app-b.log")
        deadline = time.monotonic() + 60
        while "restored " not in second.output():
            assert second.process.poll() is None, second.output()[-3000:]
            assert time.monotonic() < deadline, "the second worker never joined"
            time.sleep(0.2)
        gateway.release()
        gateway.wait_held()
        pipeline["app"].stop()  # SIGTERM: leaves the group, its partitions move
        pipeline["app"] = second
        gateway.release()
    finally:
        gateway.finish()
    assert_each_stored_once_in_one_order_a_spot(stack, alerts, pipeline["app"])
