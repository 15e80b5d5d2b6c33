"""The stream benchmark's clients of the stack (see ``benchmarks/stream.py``): MQTT
publishers, Kafka producers and readers, the bare consume → COPY baseline, and the database
clock that says when an alert's work order was committed.
"""

from __future__ import annotations

import asyncio
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from paho.mqtt.enums import CallbackAPIVersion

from benchmarks.harness import DEMO_CONFIG, REPO
from citywatch.config import CitywatchConfig
from citywatch.config.secrets import resolve_secret
from citywatch.contracts import Alert, Channel, DeviceRef, Location
from citywatch.stack.child import CliProcess
from citywatch.stack.endpoints import Endpoints

CAMERA = DeviceRef(site="demo", kind="camera", id="cam-renmin-101")
ALERT_HEADERS = [("mqtt_topic", CAMERA.address(Channel.ALERTS).topic.encode())]
SENSOR = DeviceRef(site="demo", kind="sensor", id="wl-underpass-01")


def mqtt_client(endpoints: Endpoints, username: str, password: str, name: str) -> mqtt.Client:
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                         client_id=f"bench-{name}-{uuid.uuid4().hex[:6]}")  # fmt: skip
    client.username_pw_set(username, password)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(endpoints.mqtt_host, endpoints.mqtt_port)
    client.loop_start()
    return client


def gateway_client(config: CitywatchConfig, endpoints: Endpoints, gateway_id: str) -> mqtt.Client:
    gateway = next(g for g in config.devices.gateways if g.id == gateway_id)
    password = resolve_secret(gateway.credentials.password, endpoints.secrets_dir)
    return mqtt_client(endpoints, gateway.username, password, gateway_id)


def alerts(run: str, count: int, sent_ns: bool = False, per_episode: int = 1) -> list[Alert]:
    """Parked cars at random places within ~2 km (mostly one work order each).

    ``per_episode`` 1: every alert starts its own episode (the worst case: each one opens a
    work order). More: each episode is a start, updates and an end, as a camera sends them
    (``per_episode`` alerts, one work order)."""
    rng = random.Random(run)
    now = datetime.now(UTC) - timedelta(minutes=5)
    out = []
    for n in range(count):
        episode, seq = divmod(n, per_episode)
        if seq == 0:
            where = Location(
                lat=31.43 + rng.uniform(-0.02, 0.02), lon=119.48 + rng.uniform(-0.02, 0.02)
            )
        last = per_episode > 1 and seq == per_episode - 1
        out.append(
            Alert(
                id=f"b-{run}-{episode}.{seq}",
                episode_id=f"b-{run}-{episode}",
                seq=seq,
                device=CAMERA,
                kind="illegal_parking",
                rule="bench",
                phase="start" if seq == 0 else "end" if last else "update",
                event_time=now + timedelta(seconds=seq),
                location=where,
                confidence=0.8,
                attributes={"sent_ns": 0} if sent_ns else {},
            )
        )
    return out


def publish_all(client: mqtt.Client, topic: str, payloads: list[bytes], qos: int = 1) -> float:
    """Publish as fast as the client allows; return the seconds until the broker acked all."""
    start = time.perf_counter()
    infos = [client.publish(topic, p, qos=qos) for p in payloads]
    for info in infos:
        info.wait_for_publish(60)
    return time.perf_counter() - start


class KafkaCounter:
    """Counts, in a background thread, records of one topic whose value contains a marker.

    It reads every partition of the topic from the beginning rather than trusting end
    offsets: Tansu 0.6's ListOffsets can report the base offset of the last batch as the end
    (seen here). The topic may not exist yet (the bridge creates it): it waits for it.
    """

    def __init__(self, endpoints: Endpoints, topic: str, marker: bytes) -> None:
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._run(endpoints, topic, marker)), daemon=True
        )
        self._thread.start()

    async def _run(self, endpoints: Endpoints, topic: str, marker: bytes) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=endpoints.kafka_bootstrap, enable_auto_commit=False
        )
        await consumer.start()
        try:
            partitions = consumer.partitions_for_topic(topic)
            while not partitions and not self._stop.is_set():
                await asyncio.sleep(0.2)
                await consumer._client.force_metadata_update()
                partitions = consumer.partitions_for_topic(topic)
            assigned = [TopicPartition(topic, p) for p in sorted(partitions or ())]
            consumer.assign(assigned)
            await consumer.seek_to_beginning(*assigned)
            while not self._stop.is_set():
                batch = await consumer.getmany(timeout_ms=200, max_records=5000)
                self.count += sum(
                    marker in record.value for records in batch.values() for record in records
                )
        finally:
            await consumer.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


POLL_S = 0.1
"""How often the benchmark looks at the database: the observer must not take the CPU of
the stack it measures (it shares the machine), so it polls on one connection, not faster."""
_CONNECTIONS: dict[str, psycopg.Connection] = {}


def close_connections() -> None:
    """Close the benchmark's own database connections (at the end of the run)."""
    for conn in _CONNECTIONS.values():
        conn.close()


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout_s:
        if check():
            return time.perf_counter() - start
        time.sleep(POLL_S)
    raise TimeoutError(f"timed out after {timeout_s}s waiting for {what}")


def scalar(endpoints: Endpoints, sql: str, *args: object) -> float:
    """The first column of the first row (0 for none), on the benchmark's own connection."""
    conn = _CONNECTIONS.get(endpoints.database_url)
    if conn is None or conn.closed:
        conn = psycopg.connect(endpoints.database_url, autocommit=True)
        _CONNECTIONS[endpoints.database_url] = conn
    row = conn.execute(sql, args).fetchone()
    return float(row[0]) if row and row[0] is not None else 0


def commit_times(endpoints: Endpoints, ids: list[str], timeout_s: float = 600) -> dict[str, float]:
    """When each alert of ``ids`` was linked to its work order: the commit time (epoch
    seconds) of the transaction that linked it (the embedded stack tracks commit timestamps).
    Not the row's ``now()``: that is its transaction's start, a whole batch's work earlier."""
    sql = "SELECT count(*) FROM work_order_alerts WHERE alert_id = ANY(%s)"
    wait_until(
        lambda: scalar(endpoints, sql, ids) >= len(ids), timeout_s, f"{len(ids)} linked alerts"
    )
    conn = _CONNECTIONS[endpoints.database_url]
    rows = conn.execute(
        "SELECT alert_id, extract(epoch FROM pg_xact_commit_timestamp(xmin))"
        " FROM work_order_alerts WHERE alert_id = ANY(%s)",
        (ids,),
    ).fetchall()
    return {alert_id: float(at) for alert_id, at in rows}


def committed_by(endpoints: Endpoints, ids: list[str], started_wall: float) -> float:
    """Seconds from ``started_wall`` (``time.time()``) until the last of ``ids`` had been
    committed (:func:`commit_times`)."""
    return max(commit_times(endpoints, ids).values()) - started_wall


def start_cli(args: list[str], data_dir: Path) -> CliProcess:
    env = {"CITYWATCH_DATA_DIR": str(data_dir), "CITYWATCH_CONFIG": str(DEMO_CONFIG)}
    return CliProcess(
        [*args, "--log-level", "WARNING"], data_dir / f"bench-{args[-1]}.log", env, cwd=REPO
    )


async def produce_records(
    endpoints: Endpoints, topic: str, values: list[bytes], headers: list[tuple[str, bytes]]
) -> tuple[int, int]:
    """Produce ``values`` under one key (one partition); its (partition, first offset)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=endpoints.kafka_bootstrap, linger_ms=20, acks="all"
    )
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value, key=b"bench", headers=headers) for value in values
        ]
        first = await futures[0]
        await asyncio.gather(*futures)
        return first.partition, first.offset
    finally:
        await producer.stop()


async def bare_copy_rate(
    endpoints: Endpoints, topic: str, partition: int, offset: int, count: int
) -> float:
    """The baseline: records/s of a bare aiokafka consume → psycopg COPY loop."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=endpoints.kafka_bootstrap, enable_auto_commit=False
    )
    await consumer.start()
    where = TopicPartition(topic, partition)
    consumer.assign([where])
    consumer.seek(where, offset)
    seen = 0
    begin = time.perf_counter()
    async with await psycopg.AsyncConnection.connect(endpoints.database_url) as conn:
        await conn.execute("CREATE TEMP TABLE bench_copy (id text, payload jsonb)")
        while seen < count:
            records = await consumer.getmany(where, timeout_ms=500, max_records=1000)
            rows = records.get(where, [])[: count - seen]
            async with conn.cursor().copy("COPY bench_copy (id, payload) FROM STDIN") as copy:
                for record in rows:
                    await copy.write_row((str(record.offset), record.value.decode()))
            await conn.commit()
            seen += len(rows)
    await consumer.stop()
    return count / (time.perf_counter() - begin)


def raw_publish(
    endpoints: Endpoints, username: str, password: str, topic: str, payloads: list[bytes]
) -> float:
    """Publish ``payloads`` at QoS 1 as a lean MQTT 5 client (pre-encoded packets on a plain
    socket, up to the broker's receive maximum in flight); seconds until all were acked.

    A fleet of gateways publishes from its own machines; a paho client in this process tops
    out near the bridge's own rate (both are paho, on the same 2 cores), so the load
    generator would be what is measured.
    """
    with socket.create_connection((endpoints.mqtt_host, endpoints.mqtt_port)) as sock:
        client_id = f"bench-raw-{uuid.uuid4().hex[:8]}".encode()
        variable = b"\x00\x04MQTT\x05\xc2\x00\x3c\x00"  # v5, user+password+clean start, 60 s
        body = variable + b"".join(
            _utf8(s) for s in (client_id, username.encode(), password.encode())
        )
        sock.sendall(b"\x10" + _varint(len(body)) + body)
        reader = _Packets(sock)
        kind, connack = reader.next()
        if kind != 0x20 or connack[1] != 0:
            raise ConnectionError(f"the broker refused the raw publisher: {connack!r}")
        window = max(10, min(_receive_maximum(connack[2:]), 1000))
        name, start, sent, acked = _utf8(topic.encode()), time.perf_counter(), 0, 0
        while acked < len(payloads):
            if sent < len(payloads) and sent - acked <= window // 2:
                chunk = payloads[sent : sent + window - (sent - acked)]
                sock.sendall(b"".join(
                    _publish(name, (sent + n) % 65535 + 1, payload) for n, payload in enumerate(chunk)
                ))  # fmt: skip
                sent += len(chunk)
            kind, _ = reader.next()
            acked += kind == 0x40
        sock.sendall(b"\xe0\x00")
        return time.perf_counter() - start


def _publish(topic: bytes, mid: int, payload: bytes) -> bytes:
    body = topic + mid.to_bytes(2, "big") + b"\x00" + payload  # no properties
    return b"\x32" + _varint(len(body)) + body


def _utf8(value: bytes) -> bytes:
    return len(value).to_bytes(2, "big") + value


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        value, digit = divmod(value, 128)
        out.append(digit | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _receive_maximum(properties: bytes) -> int:
    """The CONNACK's Receive Maximum (property 0x21), 65,535 when absent."""
    at = properties.find(b"\x21")
    return int.from_bytes(properties[at + 1 : at + 3], "big") if at > 0 else 65535


class _Packets:
    """MQTT packets read off a socket: (packet type, body) one at a time."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buffer, self.at = sock, bytearray(), 0

    def _take(self, size: int) -> bytes:
        while len(self.buffer) - self.at < size:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the broker closed the raw publisher's connection")
            del self.buffer[: self.at]
            self.at = 0
            self.buffer += data
        self.at += size
        return bytes(self.buffer[self.at - size : self.at])

    def next(self) -> tuple[int, bytes]:
        kind = self._take(1)[0] & 0xF0
        length, shift = 0, 0
        while True:
            digit = self._take(1)[0]
            length += (digit & 0x7F) << shift
            shift += 7
            if not digit & 0x80:
                return kind, self._take(length)
