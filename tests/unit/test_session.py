"""The edge session's parts: backoff, clock skew, in-order outbox, and a session on a real
local Mosquitto (started per test, skipped where the binary is missing)."""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from citywatch.contracts import (
    Alert,
    AlertKind,
    Channel,
    DeviceKind,
    DeviceRef,
    Location,
    Phase,
    Receipt,
    ReceiptStatus,
    encode,
)
from citywatch.edge.backoff import Backoff
from citywatch.edge.clock import ClockSkew
from citywatch.edge.outbox import NewMessage, Outbox
from citywatch.edge.quarantine import QuarantineFile
from citywatch.edge.session import EdgeSession
from citywatch.mqtt_client import BrokerSettings

MOSQUITTO = shutil.which("mosquitto") or (
    "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
)
needs_mosquitto = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed")


# -- backoff -----------------------------------------------------------------------------------
def test_backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() -> None:
    """Each delay lies in [step/2, step]; steps double from min_s and stop at max_s."""
    backoff = Backoff(0.5, 4.0, random.Random(1))
    steps = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    for step in steps:
        delay = backoff.next_delay()
        assert step / 2 <= delay <= step
    backoff.reset()
    assert backoff.step() == 0.5


def test_backoff_jitter_differs_between_gateways() -> None:
    """Two gateways cut off together do not retry in lockstep."""
    a, b = Backoff(1, 60, random.Random(1)), Backoff(1, 60, random.Random(2))
    assert [a.next_delay() for _ in range(5)] != [b.next_delay() for _ in range(5)]


@pytest.mark.parametrize(("low", "high"), [(0, 1), (2, 1), (float("nan"), 1)])
def test_backoff_rejects_impossible_limits(low: float, high: float) -> None:
    with pytest.raises(ValueError):
        Backoff(low, high)


# -- clock skew --------------------------------------------------------------------------------
def test_clock_skew_is_the_midpoint_offset_of_the_fastest_round_trip() -> None:
    """Gateway 5 s ahead: the shortest round trip gives the estimate and its error bound."""
    skew = ClockSkew()
    skew.observe(sent_at=1000.0, center_time=995.9, arrived_at=1001.0)  # slow: 1 s round trip
    skew.observe(sent_at=2000.0, center_time=1995.05, arrived_at=2000.1)  # fast: 0.1 s
    assert skew.skew_ms == pytest.approx(5000.0)
    assert skew.error_ms == pytest.approx(50.0)


def test_clock_skew_ignores_a_round_trip_across_a_clock_step_back() -> None:
    skew = ClockSkew()
    assert skew.observe(sent_at=10.0, center_time=5.0, arrived_at=9.0) is None
    assert skew.skew_ms is None


# -- outbox order and batches ------------------------------------------------------------------
def message(mid: str, device: str = "s1", kind: str = "alert") -> NewMessage:
    return NewMessage(
        mid, f"cw/{device}/{kind}", mid.encode(), 0 if kind == "telemetry" else 1, kind, device
    )


def test_in_order_due_sends_one_alert_per_device_until_its_receipt(tmp_path: Path) -> None:
    """Stop and wait per device: the next alert of s1 is due only once a1 is acknowledged."""
    with Outbox(tmp_path / "o.db", resend_after_s=30) as box:
        box.put_many(
            [message("a1"), message("b1", "s2"), message("a2"), message("t1", kind="telemetry")],
            0.0,
        )
        due = box.due(0.0, alerts_in_order=True)
        assert [i.message_id for i in due] == ["a1", "b1", "t1"]
        box.record_published(due, 1.0)
        assert box.counts()["telemetry"] == 0  # QoS 0 leaves once published
        assert box.due(2.0, alerts_in_order=True) == []
        assert [i.message_id for i in box.due(40.0, alerts_in_order=True)] == ["a1", "b1"]
        box.acknowledge("a1")
        assert [i.message_id for i in box.due(2.0, alerts_in_order=True)] == ["a2"]


def test_put_many_sheds_telemetry_and_reports_refused_alerts(tmp_path: Path) -> None:
    """A full outbox sheds telemetry for alerts, and names the alerts it could not keep."""
    with Outbox(tmp_path / "o.db", max_items=3) as box:
        box.put_many([message("t1", kind="telemetry"), message("t2", kind="telemetry")], 0.0)
        result = box.put_many(
            [message("a1"), message("a2"), message("a3"), message("a4"), message("a1")], 1.0
        )
        assert (result.stored, result.shed, result.refused) == (3, 2, ("a4",))
        assert result.duplicates == 1
        assert box.counts() == {"alert": 3, "telemetry": 0, "status": 0, "evidence": 0}
        assert box.shed_count == 2


# -- a session on a real broker ----------------------------------------------------------------
class Broker:
    def __init__(self, directory: Path, anonymous: bool) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        conf = directory / "mosquitto.conf"
        # Without anonymous access and without a password file, every login is refused.
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous {'true' if anonymous else 'false'}\n"
        )
        assert MOSQUITTO is not None
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture
def open_broker(tmp_path: Path) -> Iterator[Broker]:
    broker = Broker(tmp_path, anonymous=True)
    yield broker
    broker.stop()


def session_for(port: int, outbox: Outbox, **broker: object) -> EdgeSession:
    settings = BrokerSettings(host="127.0.0.1", port=port, username="gw-1", password="pw", **broker)  # type: ignore[arg-type]
    return EdgeSession(
        site="demo",
        gateway_id="gw-1",
        devices=[DeviceRef(site="demo", kind=DeviceKind.SENSOR, id=s) for s in ("s1", "s2")],
        broker=settings,
        outbox=outbox,
        software="test",
        rng=random.Random(7),
        pump_interval_s=0.05,
    )


def alert(device: str, seq: int) -> Alert:
    return Alert(
        id=f"{device}.e.{seq}",
        episode_id=f"{device}.e",
        seq=seq,
        device=DeviceRef(site="demo", kind=DeviceKind.SENSOR, id=device),
        kind=AlertKind.WATERLOGGING,
        rule="depth_level",
        phase=Phase.START if seq == 0 else Phase.UPDATE,
        event_time=datetime.now(UTC),
        location=Location(zone=device),
        confidence=1.0,
    )


@pytest.mark.service
@needs_mosquitto
def test_refused_login_is_logged_once_and_retried_with_growing_backoff(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Bad credentials: one error line, then attempts spaced by a doubling, capped delay."""
    broker = Broker(tmp_path, anonymous=False)
    outbox = Outbox(tmp_path / "o.db")
    session = session_for(broker.port, outbox, reconnect_min_s=0.1, reconnect_max_s=0.4)
    caplog.set_level(logging.DEBUG, logger="citywatch.edge.session")
    session.start()
    try:
        deadline = time.monotonic() + 10
        while session.stats.refusals < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        session.stop()
        broker.stop()
        outbox.close()
    assert session.stats.refusals >= 5 and not session.connected
    delays = list(session.backoff_delays)
    assert all(0.05 <= d <= 0.4 for d in delays)
    assert delays[-1] >= 0.2  # grown to the cap's upper half, not a tight loop
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and "refused" in r.message]
    assert len(errors) == 1


@pytest.mark.service
@needs_mosquitto
def test_alerts_of_one_device_wait_for_the_previous_receipt_and_skew_is_reported(
    tmp_path: Path, open_broker: Broker
) -> None:
    """A center 3 s behind the gateway answers receipts: each device's alerts arrive one at
    a time, in order, and the retained status reports a ~3000 ms clock skew."""
    seen: list[str] = []
    held: list[dict[str, object]] = []
    statuses: list[dict[str, object]] = []
    center = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    answering = threading.Event()

    def send_receipt(client: mqtt.Client, payload: dict[str, object]) -> None:
        device = DeviceRef(site="demo", kind=DeviceKind.SENSOR, id=payload["device"]["id"])  # type: ignore[index]
        receipt = Receipt(
            id=f"r.{payload['id']}",
            message_id=str(payload["id"]),
            device=device,
            status=ReceiptStatus.STORED,
            received_at=datetime.now(UTC) - timedelta(seconds=3),
        )
        client.publish(device.address(Channel.RECEIPTS).topic, encode(receipt), qos=1)

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        payload = json.loads(msg.payload)
        if msg.topic.endswith("/status"):
            statuses.append(payload)
            return
        seen.append(payload["id"])
        if answering.is_set():
            send_receipt(client, payload)
        else:
            held.append(payload)

    center.on_message = on_message
    center.connect("127.0.0.1", open_broker.port)
    center.subscribe("citywatch/v1/demo/sensor/+/alerts", qos=1)
    center.subscribe("citywatch/v1/demo/gateway/+/status", qos=1)
    center.loop_start()
    outbox = Outbox(tmp_path / "o.db")
    session = session_for(open_broker.port, outbox)
    session.publish_many([alert("s1", 0), alert("s1", 1), alert("s2", 0), alert("s1", 2)])
    session.start()
    try:
        assert session.wait_connected(10)
        time.sleep(0.5)
        # Receipts held back: only the head alert of each device went out.
        assert sorted(seen) == ["s1.e.0", "s2.e.0"]
        answering.set()
        for payload in held:
            send_receipt(center, payload)
        deadline = time.monotonic() + 10
        while outbox.counts()["alert"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert outbox.counts()["alert"] == 0
        time.sleep(0.3)
    finally:
        session.stop()
        center.loop_stop()
        center.disconnect()
        outbox.close()
    assert [m for m in seen if m.startswith("s1")] == ["s1.e.0", "s1.e.1", "s1.e.2"]
    assert session.skew.skew_ms == pytest.approx(3000, abs=300)
    reported = [s["clock_skew_ms"] for s in statuses if s.get("clock_skew_ms") is not None]
    assert reported and reported[-1] == pytest.approx(3000, abs=300)
    assert statuses[-1]["state"] == "offline"


def test_tls_settings_reach_the_client(tmp_path: Path) -> None:
    """A CA file in the gateway's config turns on verified TLS; a bad bundle fails at start."""
    import ssl

    empty = tmp_path / "empty-ca.pem"
    empty.write_text("")
    with pytest.raises(ssl.SSLError):
        session_for(8883, Outbox(tmp_path / "o.db"), tls_ca_file=str(empty))
    bundle = ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt"
    session = session_for(8883, Outbox(tmp_path / "o2.db"), tls_ca_file=bundle)
    context = session._client._ssl_context
    assert context is not None
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname


def test_camera_status_and_evidence_notices_travel_at_qos_0_on_their_own_topics() -> None:
    """Only alerts wait for a receipt; a status is repeated by the agent and an evidence
    notice only points at a file the gateway keeps, so both may be shed."""
    from datetime import UTC, datetime

    from citywatch.contracts import DeviceKind, DeviceRef, Status
    from citywatch.contracts.messages import DeviceState, Evidence, EvidenceKind, EvidenceRef
    from citywatch.edge.outbox_entries import outbox_entry

    camera = DeviceRef(site="demo", kind=DeviceKind.CAMERA, id="cam-1")
    now = datetime(2026, 11, 23, tzinfo=UTC)
    status = outbox_entry(
        Status(device=camera, state=DeviceState.OFFLINE, event_time=now, detail="no video")
    )
    evidence = outbox_entry(
        Evidence(
            id="a.0.clip",
            device=camera,
            alert_id="a.0",
            ref=EvidenceRef(kind=EvidenceKind.CLIP, uri="file:///e/a.mp4"),
            event_time=now,
        )
    )
    assert (status.kind, status.qos, status.topic) == (
        "status", 0, "citywatch/v1/demo/camera/cam-1/status",
    )  # fmt: skip
    assert (evidence.kind, evidence.qos, evidence.topic) == (
        "evidence", 0, "citywatch/v1/demo/camera/cam-1/evidence",
    )  # fmt: skip


# -- rejected alerts and an unwritable outbox, on a real broker --------------------------------
class Center:
    """Stands in for the stream: records alerts and statuses, answers receipts by a rule."""

    def __init__(self, port: int) -> None:
        self.seen: list[str] = []
        self.statuses: list[dict[str, object]] = []
        self.reject: dict[str, str] = {}
        """Alert id → reason to reject it with; everything else is stored."""
        self.answering = True
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5
        )
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("citywatch/v1/demo/sensor/+/alerts", qos=1)
        self.client.subscribe("citywatch/v1/demo/gateway/+/status", qos=1)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        payload = json.loads(msg.payload)
        if msg.topic.endswith("/status"):
            self.statuses.append(payload)
            return
        self.seen.append(payload["id"])
        if not self.answering:
            return
        device = DeviceRef(site="demo", kind=DeviceKind.SENSOR, id=payload["device"]["id"])
        reason = self.reject.get(payload["id"])
        receipt = Receipt(
            id=f"r.{payload['id']}.{len(self.seen)}",
            message_id=str(payload["id"]),
            device=device,
            status=ReceiptStatus.REJECTED if reason else ReceiptStatus.STORED,
            received_at=datetime.now(UTC),
            reason=reason,
        )
        client.publish(device.address(Channel.RECEIPTS).topic, encode(receipt), qos=1)

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def last_detail(center: Center) -> str:
    return str(center.statuses[-1].get("detail") or "") if center.statuses else ""


@needs_mosquitto
@pytest.mark.service
def test_rejected_alert_is_quarantined_not_resent_and_requeue_sends_it_again(
    tmp_path: Path, open_broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    """A "rejected" receipt quarantines the alert (logged with device, id and reason; shown
    in the retained status; never resent); once re-queued it is sent again and stored."""
    center = Center(open_broker.port)
    center.reject["s1.e.1"] = "NUL byte in rule"
    outbox = Outbox(tmp_path / "o.db", resend_after_s=0.3)
    session = session_for(open_broker.port, outbox)
    caplog.set_level(logging.ERROR, logger="citywatch.edge.session")
    session.publish_many([alert("s1", 0), alert("s1", 1), alert("s1", 2)])
    session.start()
    try:
        assert session.wait_connected(10)
        assert wait_for(lambda: len(outbox) == 0 and outbox.health().quarantined == 1)
        time.sleep(1.0)  # three resend periods: a quarantined alert is not resent
        assert center.seen == ["s1.e.0", "s1.e.1", "s1.e.2"]
        assert session.stats.quarantined == 1
        assert wait_for(lambda: "quarantine: 1 rejected alerts" in last_detail(center))
        assert "NUL byte in rule" in last_detail(center)
        (logged,) = [r for r in caplog.records if "rejected alert" in r.message]
        assert (logged.device, logged.message_id, logged.reason) == (  # type: ignore[attr-defined]
            "s1", "s1.e.1", "NUL byte in rule",
        )  # fmt: skip

        center.reject.clear()  # the stream was fixed
        with closing(QuarantineFile(outbox.path)) as quarantine:
            assert quarantine.requeue(["s1.e.1"], time.time()) == ["s1.e.1"]
        assert wait_for(lambda: center.seen.count("s1.e.1") == 2 and len(outbox) == 0)
        assert wait_for(lambda: outbox.health().quarantined == 0)
        assert wait_for(lambda: "quarantine" not in last_detail(center))
    finally:
        session.stop()
        center.stop()
        outbox.close()


@needs_mosquitto
@pytest.mark.service
def test_gateway_on_a_full_disk_keeps_publishing_and_writes_its_backlog_when_space_returns(
    tmp_path: Path, open_broker: Broker
) -> None:
    """Full disk: alerts still go out and are acknowledged from memory, the status says so;
    once space returns the unacknowledged ones are on disk and the status clears."""
    from tests.unit.test_outbox_faults import FullDisk

    disk = FullDisk(tmp_path, tmpfs=True)
    if not disk.tmpfs:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    center = Center(open_broker.port)
    outbox = Outbox(disk.dir / "o.db", memory_items=50)
    session = session_for(open_broker.port, outbox)
    session.start()
    try:
        assert session.wait_connected(10)
        disk.fill(outbox)
        session.publish_many([alert("s1", n) for n in range(5)] + [alert("s2", 0)])
        assert outbox.fault is not None
        assert wait_for(lambda: len(outbox) == 0 and len(center.seen) == 6)
        assert center.seen.index("s1.e.0") < center.seen.index("s1.e.4")
        assert wait_for(lambda: "outbox cannot write" in last_detail(center))
        center.answering = False
        session.publish_many([alert("s2", 1), alert("s2", 2)])
        assert wait_for(lambda: "s2.e.1" in center.seen)
        disk.free()
        assert wait_for(lambda: outbox.fault is None)
        assert wait_for(lambda: "outbox cannot write" not in last_detail(center))
    finally:
        session.stop()
        center.stop()
        outbox.close()
    with Outbox(disk.dir / "o.db") as again:
        assert [i.message_id for i in again.due(now=time.time() + 1e6)] == ["s2.e.1", "s2.e.2"]
    disk.close()


@needs_mosquitto
@pytest.mark.service
def test_gateway_restarting_on_a_read_only_outbox_sends_what_it_holds(
    tmp_path: Path, open_broker: Broker
) -> None:
    """Read-only outbox: the agent starts, sends the alerts already on disk and takes their
    receipts in memory; once writable, the receipts are written and the status clears."""
    from citywatch.edge.outbox_entries import outbox_entry
    from tests.unit.test_outbox_faults import ReadOnlyDisk

    disk = ReadOnlyDisk(tmp_path)
    if not disk.bind and os.geteuid() == 0:
        pytest.skip("root ignores file modes, and bind mounts are not allowed here")
    path = disk.view / "o.db"
    with Outbox(path) as before:
        before.put_many([outbox_entry(alert("s1", n)) for n in range(2)], 0.0)
    disk.read_only()
    center = Center(open_broker.port)
    outbox = Outbox(path)
    session = session_for(open_broker.port, outbox)
    session.start()
    try:
        assert session.wait_connected(10) and outbox.fault is not None
        assert wait_for(lambda: len(outbox) == 0 and center.seen == ["s1.e.0", "s1.e.1"])
        assert wait_for(lambda: "outbox cannot write" in last_detail(center))
        disk.writable()
        assert wait_for(lambda: outbox.fault is None)
    finally:
        session.stop()
        center.stop()
        outbox.close()
        disk.close()
    with Outbox(path) as after:
        assert len(after) == 0
