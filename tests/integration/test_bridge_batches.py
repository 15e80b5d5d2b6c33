"""The bridge's record batches and its shared subscription on the real stack (issue 22).

A round of MQTT messages goes to Kafka as record batches, each message acked to Mosquitto
only after Kafka acknowledged its batch: with Kafka frozen mid-burst and the bridge killed,
nothing was acked early, so Mosquitto delivers what Kafka never took again to the
restarted bridge, and every message reaches Kafka. Two bridges on one shared subscription
split a burst and forward each message once.

Each test has its own topics and share group; the session's pipeline bridge (the default
group) gets its own copy of what is published here, into the default topics.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from citywatch.config import CitywatchConfig
from citywatch.config.secrets import resolve_secret
from citywatch.contracts import Alert, Channel, DeviceRef, KafkaTopics, Location, encode
from citywatch.mqtt_client import BrokerSettings, connect, make_client
from citywatch.stack.child import CliProcess
from citywatch.stream.bridge import SESSION_EXPIRY_S, Bridge
from citywatch.stream.partitioning import device_positions
from citywatch.stream.settings import stream_settings
from tests.conftest import REPO, GatewayPublisher
from tests.integration.test_scale_out import site_config, wait_ready
from tests.polling import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CAMERA = DeviceRef(site="demo", kind="camera", id="cam-renmin-101")
TOPIC = CAMERA.address(Channel.ALERTS).topic
Publishers = Callable[[str], GatewayPublisher]


def alerts(run: str, count: int) -> list[bytes]:
    """``count`` alerts of one camera, spread over ~4 km (several key cells: partitions)."""
    now = datetime.now(UTC) - timedelta(minutes=1)
    return [
        encode(Alert(
            id=f"{run}.{n}.0", episode_id=f"{run}.{n}", seq=0, device=CAMERA,
            kind="illegal_parking", rule="bench", phase="start", event_time=now,
            location=Location(lat=31.43 + (n % 20) * 0.002, lon=119.48 + (n % 7) * 0.005),
            confidence=0.8,
        ))
        for n in range(count)
    ]  # fmt: skip


def burst(publisher: GatewayPublisher, payloads: list[bytes]) -> None:
    """Publish at QoS 1 back to back; return once the broker acknowledged every one."""
    infos = [publisher.client.publish(TOPIC, p, qos=1) for p in payloads]
    for info in infos:
        info.wait_for_publish(30)
        assert info.is_published()


async def ids_in_kafka(bootstrap: str, topic: str, wanted: int, timeout_s: float) -> list[str]:
    """The alert ids of every record of ``topic`` (all partitions), once ``wanted`` are there
    or ``timeout_s`` passed (duplicates kept: a count says if any was sent twice)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
        enable_auto_commit=False, group_id=None,
    )  # fmt: skip
    await consumer.start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(set(seen)) < wanted and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                seen += [json.loads(record.value)["id"] for record in records]
    finally:
        await consumer.stop()
    return seen


def test_kafka_frozen_mid_burst_and_the_bridge_killed_acks_nothing_and_loses_nothing(
    stack: Any, demo_config: CitywatchConfig, publisher_for: Publishers, tmp_path: Path
) -> None:
    """Kafka frozen (SIGSTOP), 300 alerts in two bursts, the bridge SIGKILLed holding them:
    Mosquitto still holds all 300 for the bridge's session (none was acked before Kafka
    acknowledged it), and once Kafka resumes the restarted bridge forwards every one."""
    prefix = f"bb{uuid.uuid4().hex[:8]}"
    env = {
        "CITYWATCH_DATA_DIR": str(stack.data_dir),
        "CITYWATCH_CONFIG": str(site_config(tmp_path, prefix, stack.endpoints.database_url)),
    }

    def bridge(name: str) -> CliProcess:
        args = ["stream", "bridge", "--bridge-id", prefix]
        process = CliProcess(args, tmp_path / f"bridge-{name}.log", env, cwd=REPO)
        wait_ready(process, "bridge connected")
        return process

    bootstrap, topic = stack.endpoints.kafka_bootstrap, KafkaTopics(prefix).alerts
    publisher = publisher_for("gw-cam-renmin")
    first = bridge("first")
    kafka = stack.info.service("kafka").pid
    try:
        time.sleep(1.0)  # subscribed (messages before its subscription are not kept)
        burst(publisher, alerts(f"{prefix}-a", 50))
        assert len(set(asyncio.run(ids_in_kafka(bootstrap, topic, 50, 60)))) == 50
        os.kill(kafka, signal.SIGSTOP)
        frozen = alerts(f"{prefix}-b", 300)
        burst(publisher, frozen[:150])
        time.sleep(1.0)  # a round is waiting for Kafka; the next ones wait behind it
        burst(publisher, frozen[150:])
        time.sleep(2.0)
        first.process.kill()
        first.process.wait(10)
        held = held_for_session(stack, demo_config, f"citywatch-bridge-{prefix}", 300)
    finally:
        os.kill(kafka, signal.SIGCONT)
        first.stop()
    expected = {json.loads(p)["id"] for p in frozen}
    assert expected - held == set(), f"{len(expected - held)} of 300 were acked early"
    second = bridge("second")
    try:
        seen = asyncio.run(ids_in_kafka(bootstrap, topic, 350, 120))
    finally:
        second.stop()
    assert expected - set(seen) == set(), f"{len(expected - set(seen))} of 300 alerts lost"


def held_for_session(stack: Any, config: CitywatchConfig, client_id: str, wanted: int) -> set[str]:
    """The alert ids Mosquitto delivers again to the bridge session ``client_id`` (resumed
    by a client that acks none of them and leaves the session as it found it)."""
    account = config.services.mqtt.bridge
    broker = BrokerSettings(
        host=stack.endpoints.mqtt_host, port=stack.endpoints.mqtt_port,
        username=account.username,
        password=resolve_secret(account.password, stack.endpoints.secrets_dir),
        session_expiry_s=SESSION_EXPIRY_S,
    )  # fmt: skip
    held: set[str] = set()
    client = make_client(client_id, broker, manual_ack=True)
    client.on_message = lambda c, u, message: held.add(json.loads(message.payload)["id"])
    connect(client, broker)
    try:
        deadline = time.monotonic() + 20
        while len(held) < wanted and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)  # anything beyond ``wanted`` too
    finally:
        client.disconnect()
        client.loop_stop()
    return held


async def test_two_bridges_on_one_shared_subscription_split_a_burst_and_forward_all_of_it(
    stack: Any, demo_config: CitywatchConfig, publisher_for: Publishers
) -> None:
    """Two bridges in one share group, 400 alerts: both forward some, together all of
    them. QoS 1 is at least once: a message whose PUBACK was late (a loaded CI machine) may
    be delivered again, to either bridge; the worker stores an alert id once."""
    prefix = f"bs{uuid.uuid4().hex[:8]}"
    settings = replace(stream_settings(demo_config, stack.data_dir), topic_prefix=prefix,
                       share_group=prefix)  # fmt: skip
    bridges = [
        Bridge(replace(settings, bridge_id=f"{prefix}-{n}"), device_positions(demo_config))
        for n in (1, 2)
    ]
    stop = asyncio.Event()
    runs = [asyncio.create_task(b.run(stop)) for b in bridges]
    try:
        await asyncio.to_thread(
            wait_for, lambda: all(b.connected for b in bridges), 60, "both bridges connected"
        )
        await asyncio.sleep(1.0)  # subscribed
        payloads = alerts(prefix, 400)
        await asyncio.to_thread(burst, publisher_for("gw-cam-renmin"), payloads)
        seen = await ids_in_kafka(stack.endpoints.kafka_bootstrap, f"{prefix}.alerts", 400, 60)
    finally:
        stop.set()
        await asyncio.gather(*runs, return_exceptions=True)
    assert set(seen) == {json.loads(p)["id"] for p in payloads}
    shares = [b.stats.received for b in bridges]
    assert all(share > 0 for share in shares) and sum(shares) >= 400, shares
