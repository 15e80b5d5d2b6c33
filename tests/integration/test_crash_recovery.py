"""Kill -9 the Faust worker and the bridge mid-stream, restart them: nothing lost, nothing
duplicated (issue 5).

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

from citywatch.cli.runtime import edge_session
from citywatch.contracts import Alert, DeviceRef, Location
from tests.conftest import CliProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CAMERA = DeviceRef(site="demo", kind="camera", id="cam-renmin-101")
SPOTS = 30
PER_SPOT = 10


def burst(run: str) -> list[Alert]:
    """30 parked cars 100 m apart, each reported 10 times (one episode per report)."""
    base = datetime.now(UTC) - timedelta(minutes=30)
    alerts = []
    for n in range(PER_SPOT):
        for spot in range(SPOTS):
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
                    location=Location(lat=31.40 + spot * 0.0009, lon=119.45),
                    confidence=0.8,
                )
            )
    return alerts


def test_kill_9_worker_and_bridge_mid_stream_loses_and_duplicates_nothing(
    stack, pipeline, demo_config, tmp_path
) -> None:
    """300 alerts, both stream processes SIGKILLed mid-burst and restarted: 300 rows, 30 work orders of 10."""
    run = uuid.uuid4().hex[:8]
    alerts = burst(run)
    gateways = {g.id: g for g in demo_config.devices.gateways}
    fast = gateways["gw-cam-renmin"].model_copy(
        update={
            "resend_after": timedelta(seconds=3),
            "outbox_path": str(tmp_path / "outbox.sqlite"),
            "alerts_in_flight": 100,
        }
    )
    config = demo_config.model_copy(
        update={"devices": demo_config.devices.model_copy(update={"gateways": (fast,)})}
    )
    session = edge_session(config, "gw-cam-renmin", stack.data_dir)
    session.start()
    assert session.wait_connected(15)
    half = threading.Event()
    done = threading.Event()

    def publish_all() -> None:
        for index, alert in enumerate(alerts):
            session.publish_alert(alert)
            if index == len(alerts) // 3:
                half.set()
            time.sleep(0.01)
        while not done.is_set():  # the agent's loop: resend what has no receipt
            session.pump()
            done.wait(0.5)

    sender = threading.Thread(target=publish_all)
    sender.start()
    try:
        assert half.wait(60)
        for name in ("app", "bridge"):
            pipeline[name].process.kill()  # SIGKILL: no cleanup, no offset commit, no MQTT ack
            pipeline[name].process.wait()
        time.sleep(1.0)
        pipeline["bridge"] = CliProcess(
            ["stream", "bridge"], stack.data_dir, tmp_path / "bridge-2.log"
        )
        pipeline["app"] = CliProcess(["stream", "app"], stack.data_dir, tmp_path / "app-2.log")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(session.outbox) > 0:
            time.sleep(0.5)
        assert len(session.outbox) == 0, f"{len(session.outbox)} alerts never got a receipt"
    finally:
        done.set()
        sender.join(30)
        session.stop()
        session.outbox.close()

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
        assert (stored, linked) == (len(ids), len(ids)), pipeline["app"].output()[-3000:]
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
    assert len(rows) == SPOTS
    assert all(count == PER_SPOT and alert_count == PER_SPOT for _, alert_count, count in rows)
