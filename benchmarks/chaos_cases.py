"""The chaos cases: one fault each, on a running :class:`ChaosRig`, judged by its oracle.

Each case makes its own alerts (in an ``area`` of its own, one spot per alert unless it
says otherwise), starts a gateway, injects the fault while the alerts flow, ends it, and
returns the oracle's :class:`CaseResult` with the recovery time (from the end of the fault
to the gateway's outbox drained) and what else it saw in ``notes``. The chaos tests assert
on them; ``python -m benchmarks.chaos`` prints them as a table.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from benchmarks.chaos_rig import (
    REPO,
    CaseResult,
    ChaosRig,
    publish_all,
    spot_alerts,
    wait_until,
)
from citywatch.config.secrets import resolve_secret
from citywatch.contracts import (
    Alert,
    Channel,
    DeviceKind,
    DeviceRef,
    Receipt,
    Status,
    decode,
    encode,
)
from citywatch.edge.session import EdgeSession
from citywatch.stream.app import health_path

DRAIN_TIMEOUT_S = 90.0


def _flowing(rig: ChaosRig, case: str, count: int, area: int, pace_s: float = 0.005,
             alerts_in_flight: int = 100,
             before: Callable[[], None] | None = None,
             ) -> tuple[list[Alert], EdgeSession, threading.Thread]:  # fmt: skip
    """A gateway connected and sending ``count`` alerts from a thread (``before`` runs
    once it is connected, before the first alert)."""
    alerts = spot_alerts(case, count, area=area)
    session = rig.gateway(alerts_in_flight=alerts_in_flight)
    session.start()
    assert session.wait_connected(15), "the gateway did not connect"
    if before is not None:
        before()
    sender = threading.Thread(target=publish_all, args=(session, alerts, pace_s))
    sender.start()
    return alerts, session, sender


def _finish(rig: ChaosRig, case: str, alerts: list[Alert], session: EdgeSession, fault_end: float,
            sender: threading.Thread | None = None,
            connected_check: Callable[[CaseResult], None] | None = None) -> CaseResult:  # fmt: skip
    """Wait for the outbox to drain, judge, run ``connected_check`` while the gateway is
    still connected, then stop the gateway."""
    if sender is not None:
        sender.join()
    recovery = rig.wait_drained(session, fault_end, DRAIN_TIMEOUT_S, case)
    try:
        result = rig.judge(case, alerts, session, recovery)
        if connected_check is not None:
            connected_check(result)
        return result
    finally:
        session.stop()
        session.outbox.close()


def kafka_broker_kill9(rig: ChaosRig) -> CaseResult:
    """Tansu SIGKILLed under load (it restarts empty); the supervisor starts it again."""
    alerts, session, sender = _flowing(rig, "kafka", 400, area=1, pace_s=0.01)
    time.sleep(1.5)
    rig.kill_service("kafka")
    fault_end = rig.wait_service_back("kafka")
    result = _finish(rig, "Kafka broker kill -9", alerts, session, fault_end, sender)
    restarts = rig.logs("app", 200_000).count("restarting the stream worker")
    result.notes.append(f"worker restarts on a lost log: {restarts}")
    return result


def mosquitto_kill9(rig: ChaosRig) -> CaseResult:
    """Mosquitto SIGKILLed mid-burst; the supervisor starts it again on its port; the
    gateway's retained status says online again and its backlog drains in order."""
    alerts, session, sender = _flowing(rig, "mqtt", 200, area=2, pace_s=0.01)
    time.sleep(0.7)
    rig.kill_service("mqtt")
    fault_end = rig.wait_service_back("mqtt")

    def status_is_online(result: CaseResult) -> None:
        result.notes.append(f"stored out of send order: {out_of_order(rig, alerts)}")
        state = retained_gateway_status(rig)
        result.notes.append(f"retained gateway status after the restart: {state}")
        if state != "online":
            result.notes.append("FAILED: the retained status is not online")

    return _finish(rig, "Mosquitto kill -9", alerts, session, fault_end, sender, status_is_online)


def partition(rig: ChaosRig, seconds: float = 60.0) -> CaseResult:
    """The link between gateway and Mosquitto cut (bytes vanish) for ``seconds``."""
    alerts, session, sender = _flowing(rig, "partition", 150, area=3, pace_s=0.0)
    sender.join()
    assert rig.mqtt_proxy is not None
    rig.mqtt_proxy.cut()
    more = spot_alerts("partition-late", 100, area=4)
    publish_all(session, more, pace_s=seconds / 200)  # half the cut long, into the outbox
    time.sleep(max(0.0, seconds / 2))
    rig.mqtt_proxy.restore()

    def in_order(result: CaseResult) -> None:
        result.notes.append(f"stored out of send order: {out_of_order(rig, alerts + more)}")

    return _finish(rig, f"partition {seconds:g} s", alerts + more, session, time.monotonic(),
                   connected_check=in_order)  # fmt: skip


def bridge_kill9_before_kafka_ack(rig: ChaosRig) -> CaseResult:
    """The bridge SIGKILLed holding messages Kafka has not acked (Tansu frozen with
    SIGSTOP meanwhile): MQTT redelivers them, unacked, to the new bridge."""
    kafka_pid = rig.service_pid("kafka")
    os.kill(kafka_pid, signal.SIGSTOP)
    try:
        alerts, session, sender = _flowing(rig, "bridge-kill", 100, area=5, pace_s=0.0)
        sender.join()
        time.sleep(1.0)  # the bridge has them, waiting for acks that cannot come
        rig.kill_stream("bridge")
    finally:
        os.kill(kafka_pid, signal.SIGCONT)
    rig.start_stream("bridge")
    rig.wait_streams_ready(["bridge"])
    return _finish(rig, "bridge kill -9 before the Kafka ack", alerts, session, time.monotonic())


def bridge_stopped_past_queue_limit(rig: ChaosRig, count: int = 700) -> CaseResult:
    """The bridge stopped (its persistent session stays) while ``count`` alerts arrive,
    more than Mosquitto queues for it: the broker drops the excess, the gateway's outbox
    sends it again until its receipt comes."""
    rig.streams["bridge"].stop()
    mosquitto_log = rig.data_dir / "stack" / "mosquitto.log"
    before = mosquitto_log.read_text(errors="replace").count("dropped")
    alerts, session, sender = _flowing(
        rig, "queue", count, area=6, pace_s=0.0, alerts_in_flight=count
    )
    sender.join()
    time.sleep(3.0)
    rig.start_stream("bridge")
    rig.wait_streams_ready(["bridge"])
    result = _finish(rig, f"bridge stopped, {count} > queue limit", alerts, session,
                     time.monotonic())  # fmt: skip
    dropped = mosquitto_log.read_text(errors="replace").count("dropped") - before
    result.notes.append(f"Mosquitto logged {dropped} drop warnings; resent by the outbox")
    return result


def worker_kill9_after_db_commit(rig: ChaosRig) -> CaseResult:
    """The worker SIGKILLed as soon as alerts are in the database, before its offsets
    are committed (Faust commits every few seconds): redelivery changes nothing."""
    alerts, session, sender = _flowing(rig, "worker-kill", 200, area=7, pace_s=0.01)
    ids = [alert.id for alert in alerts]
    wait_until(lambda: stored_count(rig, ids) >= 40, 60, "the first alerts stored")
    rig.kill_stream("app")
    stored_at_kill = stored_count(rig, ids)
    rig.start_stream("app")
    rig.wait_streams_ready(["app"])
    result = _finish(rig, "worker kill -9 after DB commit", alerts, session,
                     time.monotonic(), sender)  # fmt: skip
    result.notes.append(f"{stored_at_kill} stored when killed")
    return result


def poison_mid_batch(rig: ChaosRig) -> CaseResult:
    """10 alerts, one with a NUL in its rule, 10 more, in one burst: the poison alone is
    refused (and quarantined by the gateway), its neighbours stored."""
    alerts = spot_alerts("poison", 21, area=8)
    poison = alerts[10].model_copy(update={"rule": "curb\x00parking"})  # skips validation
    session = rig.gateway()
    session.start()
    assert session.wait_connected(15)
    session.publish_many([*alerts[:10], poison, *alerts[11:]])
    good = alerts[:10] + alerts[11:]
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while len(session.outbox) and time.monotonic() < deadline:
        time.sleep(0.1)
    result = _finish(rig, "poison record mid-batch", good, session, time.monotonic())
    result.quarantined -= 1  # the poison's, expected
    result.notes.append("the poison was quarantined by the gateway with its reason")
    return result


def postgres_immediate_stop(rig: ChaosRig) -> CaseResult:
    """PostgreSQL stopped with SIGQUIT (``pg_ctl stop -m immediate``) mid-burst; the
    supervisor starts it again."""
    alerts, session, sender = _flowing(rig, "pg-stop", 300, area=9, pace_s=0.01)
    time.sleep(1.0)
    rig.kill_service("postgres", signal.SIGQUIT)
    fault_end = rig.wait_service_back("postgres")
    return _finish(rig, "PostgreSQL immediate stop", alerts, session, fault_end, sender)


def postgres_down_long(rig: ChaosRig, seconds: float = 35.0) -> CaseResult:
    """PostgreSQL down for ``seconds`` (longer than the worker's pool timeout, 30 s, and
    its retry cap): nothing dead-lettered, the health file says the database is down,
    and the worker resumes by itself when it is back."""
    log_before = len(rig.streams["app"].output())
    rig.pause_supervisor()
    try:
        alerts, session, sender = _flowing(
            rig, "pg-down", 100, area=10, pace_s=0.02,
            before=lambda: rig.kill_service("postgres", signal.SIGQUIT),
        )  # fmt: skip
        down_at = time.monotonic()
        health = health_path(rig.data_dir, rig.streams["app"].process.pid)
        wait_until(lambda: _health(health) == "down", seconds, "the health file to say down")
        said_down = _health(health)
        time.sleep(max(0.0, seconds - (time.monotonic() - down_at)))
    finally:
        rig.resume_supervisor()
    fault_end = rig.wait_service_back("postgres")
    result = _finish(rig, f"PostgreSQL down {seconds:g} s", alerts, session, fault_end, sender)
    wait_until(lambda: _health(health) == "up", 30, "the health file to say up")
    dead_letters = rig.streams["app"].output()[log_before:].count("dead-lettered")
    result.notes.append(f"health said {said_down!r} during the outage, 'up' after")
    result.notes.append(f"dead-lettered during the outage: {dead_letters}")
    if dead_letters:
        result.notes.append("FAILED: records were dead-lettered for an outage")
    return result


def replay_one_alert(rig: ChaosRig, times: int = 1000) -> CaseResult:
    """One alert published ``times`` times (a device replaying it): one row, one work
    order, a stored receipt for every copy."""
    alert = spot_alerts("replay", 1, area=11)[0]
    receipts: list[Receipt] = []
    client = _gateway_client(rig, lambda m: receipts.append(decode(bytes(m.payload), Receipt)))
    client.subscribe(alert.device.address(Channel.RECEIPTS).topic, qos=1)
    payload = encode(alert)
    started = time.monotonic()
    for _ in range(times):
        client.publish(alert.device.address(Channel.ALERTS).topic, payload, qos=1)
    deadline = started + DRAIN_TIMEOUT_S
    while sum(r.message_id == alert.id for r in receipts) < times and time.monotonic() < deadline:
        time.sleep(0.1)  # short of them at the deadline: the oracle's row says how many
    took = time.monotonic() - started
    client.disconnect()
    client.loop_stop()
    mine = [r for r in receipts if r.message_id == alert.id]
    result = rig.judge(f"one alert replayed {times}x", [alert], None, took)
    result.receipts = len(mine)
    statuses = sorted({r.status.value for r in mine})
    result.notes.append(f"{len(mine)} receipts for {times} copies, statuses {statuses}")
    if len(mine) < times:
        result.notes.append("FAILED: receipts missing")
    return result


def edge_agent_kill9(rig: ChaosRig, count: int = 200) -> CaseResult:
    """The gateway process SIGKILLed just after it handed ``count`` alerts to its outbox
    (most still without a receipt); a new one on the same outbox file drains it."""
    assert rig.mqtt_proxy is not None
    outbox = rig.data_dir / "outbox-killed-gateway.sqlite"
    child = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.chaos_rig", "gateway", str(rig.config_path),
         str(rig.data_dir), str(rig.mqtt_proxy.port), str(outbox), "edge-kill", str(count),
         "12"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert child.stdout is not None
    line = child.stdout.readline()
    assert "handed over" in line, f"the gateway process said {line!r}"
    child.kill()
    child.wait()
    session = rig.gateway(outbox)
    left = len(session.outbox)
    session.start()
    restarted = time.monotonic()
    alerts = spot_alerts("edge-kill", count, area=12)
    result = _finish(rig, f"edge agent kill -9, {count} in outbox", alerts, session, restarted)
    result.notes.append(f"{left} alerts without a receipt in the outbox at the kill")
    return result


def stored_count(rig: ChaosRig, ids: list[str]) -> int:
    import psycopg

    with psycopg.connect(rig.endpoints.database_url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM alerts WHERE id = ANY(%s)", (ids,)).fetchone()
    return int(row[0]) if row else 0


def out_of_order(rig: ChaosRig, alerts: list[Alert]) -> int:
    """How many alerts were stored in an earlier transaction than one sent before them
    (``received_at`` is the storing transaction's time)."""
    import psycopg

    ids = [alert.id for alert in alerts]
    with psycopg.connect(rig.endpoints.database_url, autocommit=True) as conn:
        stored: dict[str, datetime] = dict(
            conn.execute("SELECT id, received_at FROM alerts WHERE id = ANY(%s)", (ids,)).fetchall()
        )
    times = [stored[i] for i in ids if i in stored]
    latest, behind = None, 0
    for at in times:
        if latest is not None and at < latest:
            behind += 1
        latest = at if latest is None else max(latest, at)
    return behind


def retained_gateway_status(rig: ChaosRig) -> str | None:
    """The retained status of the test gateway, as the center's account reads it."""
    got: list[Status] = []
    account = rig.config.services.mqtt.center
    client = _client(rig, account.username, resolve_secret(account.password,
                     rig.endpoints.secrets_dir), lambda m: got.append(decode(bytes(m.payload), Status)))  # fmt: skip
    gateway = DeviceRef(site=rig.config.site.id, kind=DeviceKind.GATEWAY, id="gw-cam-renmin")
    client.subscribe(gateway.address(Channel.STATUS).topic, qos=1)
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        time.sleep(0.05)
    client.disconnect()
    client.loop_stop()
    return got[-1].state.value if got else None


def _health(path: os.PathLike[str]) -> str | None:
    try:
        with open(path) as health:
            return str(json.load(health)["database"])
    except (OSError, ValueError, KeyError):
        return None


def _gateway_client(rig: ChaosRig, on_message: Callable[[mqtt.MQTTMessage], None]) -> mqtt.Client:
    gateway = next(g for g in rig.config.devices.gateways if g.id == "gw-cam-renmin")
    password = resolve_secret(gateway.credentials.password, rig.endpoints.secrets_dir)
    return _client(rig, gateway.username, password, on_message)


def _client(rig: ChaosRig, username: str, password: str,
            on_message: Callable[[mqtt.MQTTMessage], None]) -> mqtt.Client:  # fmt: skip
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
        client_id=f"chaos-{username}-{time.monotonic_ns()}",
    )  # fmt: skip
    client.username_pw_set(username, password)
    client.on_message = lambda c, u, m: on_message(m)
    client.connect(rig.endpoints.mqtt_host, rig.endpoints.mqtt_port)
    client.loop_start()
    return client


CASES: dict[str, Callable[[ChaosRig], CaseResult]] = {
    "edge-kill": edge_agent_kill9,
    "mqtt-kill": mosquitto_kill9,
    "partition": partition,
    "bridge-kill": bridge_kill9_before_kafka_ack,
    "bridge-queue": bridge_stopped_past_queue_limit,
    "kafka-kill": kafka_broker_kill9,
    "worker-kill": worker_kill9_after_db_commit,
    "poison": poison_mid_batch,
    "pg-stop": postgres_immediate_stop,
    "pg-down": postgres_down_long,
    "replay": replay_one_alert,
}
"""Every case on the real stack, by the name ``--only`` takes."""
