"""One waterlogging alert end to end on the real embedded stack.

sensor agent → MQTT (QoS 1) → bridge → Kafka → Faust app → PostgreSQL → receipt → MQTT →
the gateway's outbox lets the alert go.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta

import paho.mqtt.client as mqtt
import psycopg
import pytest
from aiokafka import AIOKafkaConsumer
from paho.mqtt.enums import CallbackAPIVersion

from citywatch.config import CitywatchConfig
from citywatch.config.secrets import resolve_secret
from citywatch.config.sensor import SimulatedRain
from citywatch.contracts import Channel, DeviceRef, Phase, encode
from citywatch.edge.gateway_session import edge_session
from citywatch.edge.sensor.agent import build_channels, run_sensor_agent
from citywatch.hardware.water.sim import SimulatedWaterSensor
from tests.polling import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
GATEWAY = "gw-sensors-east"



def fast_rain(config: CitywatchConfig) -> CitywatchConfig:
    """The demo site with its first sensor flooding within seconds (15 cm level in ~2 s)."""
    sensors = list(config.devices.sensors)
    rain = SimulatedRain(
        start_after=timedelta(0),
        rise=timedelta(seconds=2),
        plateau=timedelta(seconds=60),
        drain=timedelta(seconds=5),
        peak_depth_cm=20,
        noise_cm=0.2,
    )
    sensors[0] = sensors[0].model_copy(update={"simulation": rain})
    return config.model_copy(
        update={"devices": config.devices.model_copy(update={"sensors": tuple(sensors)})}
    )


def stored_alert(database_url: str, alert_id: str) -> list[tuple[object, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT id, device_id, kind, phase, attributes->>'level' FROM alerts WHERE id = %s",
            (alert_id,),
        ).fetchall()


def test_sensor_alert_reaches_the_database_and_its_receipt_returns(
    stack, pipeline, demo_config
) -> None:  # type: ignore[no-untyped-def]
    """A sensor crossing 15 cm publishes one start alert; it is stored once and receipted."""
    config = fast_rain(demo_config)
    session = edge_session(config, GATEWAY, stack.data_dir)
    channels = build_channels(config, GATEWAY, simulator=SimulatedWaterSensor.for_sensor)[:1]
    stop = threading.Event()
    session.start()
    try:
        assert session.wait_connected(15), "gateway could not connect to Mosquitto"
        stats = run_sensor_agent(channels, session, stop, duration_s=12.0)
        starts = [a for a in stats.alerts if a.phase is Phase.START]
        assert len(starts) == 1, stats.alerts
        alert = starts[0]
        assert alert.level == "lane"

        wait_for(
            lambda: session.outbox.counts().get("alert", 0) == 0,
            60,
            f"the receipt of {alert.id} (app log: {pipeline['app'].output()[-2000:]})",
        )
        rows = stored_alert(stack.endpoints.database_url, alert.id)
        assert rows == [(alert.id, "wl-underpass-01", "waterlogging", "start", "lane")]
        assert session.receipts >= 1

        # A resend (same id) is stored once and receipted again: the sink is idempotent.
        before = session.receipts
        session.outbox.put(
            alert.id,
            alert.device.address(Channel.ALERTS).topic,
            encode(alert),
            1,
            "alert",
            alert.device.id,
            time.time(),
        )
        session.pump()
        wait_for(lambda: session.receipts > before, 60, "the receipt of the resent alert")
        assert len(stored_alert(stack.endpoints.database_url, alert.id)) == 1
    finally:
        stop.set()
        session.stop()
        session.outbox.close()


def test_malformed_alert_goes_to_the_dead_letter_topic_with_the_reason(
    stack, pipeline, demo_config
) -> None:  # type: ignore[no-untyped-def]
    """Bytes that are not a valid alert land in citywatch.dead-letters with error headers."""
    gateway = next(g for g in demo_config.devices.gateways if g.id == GATEWAY)
    topic = DeviceRef(site="demo", kind="sensor", id="wl-hebin-02").address(Channel.ALERTS).topic
    payload = b'{"v": "1.0", "type": "alert", "id": "broken-1", "confidence": "very"}'
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        protocol=mqtt.MQTTv5,
        client_id="test-malformed",
    )
    client.username_pw_set(
        gateway.username, resolve_secret(gateway.credentials.password, stack.endpoints.secrets_dir)
    )
    client.connect(stack.endpoints.mqtt_host, stack.endpoints.mqtt_port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()

    async def read_dead_letter() -> dict[str, bytes]:
        consumer = AIOKafkaConsumer(
            "citywatch.dead-letters",
            bootstrap_servers=stack.endpoints.kafka_bootstrap,
            auto_offset_reset="earliest",
            group_id=None,
        )
        await consumer.start()
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    for record in records:
                        if record.value == payload:
                            return {k: v for k, v in record.headers}
            raise AssertionError("no dead letter arrived")
        finally:
            await consumer.stop()

    headers = asyncio.run(read_dead_letter())
    assert headers["__connect.errors.exception.class.name"] == b"MalformedMessage"
    assert b"confidence" in headers["__connect.errors.exception.message"]
    assert headers["__connect.errors.topic"] == b"citywatch.alerts"
    assert headers["mqtt_topic"] == topic.encode()


def test_alert_for_another_device_is_refused_by_the_broker(stack, demo_config) -> None:  # type: ignore[no-untyped-def]
    """The ACL lets a gateway publish only under its own devices: MQTT 5 says not authorised."""
    gateway = next(g for g in demo_config.devices.gateways if g.id == GATEWAY)
    foreign = (
        DeviceRef(site="demo", kind="camera", id="cam-renmin-101").address(Channel.ALERTS).topic
    )
    acks: list[int] = []
    done = threading.Event()

    def on_publish(client, userdata, mid, reason, properties) -> None:  # type: ignore[no-untyped-def]
        acks.append(reason.value)
        done.set()

    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5, client_id="test-acl"
    )
    client.on_publish = on_publish
    client.username_pw_set(
        gateway.username, resolve_secret(gateway.credentials.password, stack.endpoints.secrets_dir)
    )
    client.connect(stack.endpoints.mqtt_host, stack.endpoints.mqtt_port)
    client.loop_start()
    try:
        client.publish(foreign, b"{}", qos=1)
        assert done.wait(10)
    finally:
        client.disconnect()
        client.loop_stop()
    assert acks == [135]  # MQTT 5 reason code: Not authorized


def test_alert_published_while_the_stream_app_is_down_is_stored_after_restart(
    stack, pipeline, demo_config, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """At least once: the outbox keeps the alert, Kafka keeps the offset, a new worker takes over."""
    from tests.conftest import CliProcess

    pipeline["app"].stop()
    config = fast_rain(demo_config)
    session = edge_session(config, GATEWAY, stack.data_dir)
    stop = threading.Event()
    session.start()
    try:
        assert session.wait_connected(15)
        stats = run_sensor_agent(
            build_channels(config, GATEWAY, simulator=SimulatedWaterSensor.for_sensor)[:1],
            session, stop, duration_s=12.0
        )
        alert = next(a for a in stats.alerts if a.phase is Phase.START)
        assert stored_alert(stack.endpoints.database_url, alert.id) == []
        pipeline["app"] = CliProcess(
            ["stream", "app"], stack.data_dir, tmp_path / "stream-app-restarted.log"
        )
        wait_for(
            lambda: session.outbox.counts().get("alert", 0) == 0,
            90,
            "the receipt after the restart",
        )
        assert len(stored_alert(stack.endpoints.database_url, alert.id)) == 1
    finally:
        stop.set()
        session.stop()
        session.outbox.close()
