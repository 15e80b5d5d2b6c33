"""The embedded stack starts real services, enforces MQTT accounts, and stops cleanly."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from citywatch.stack import EmbeddedStack, MqttAccount, StackError, StackInfo

pytestmark = pytest.mark.integration

NOT_AUTHORIZED = 135
BAD_USERNAME_OR_PASSWORD = 134

DEVICE = MqttAccount(
    "gw-test-01",
    "device-secret",
    publish=("citywatch/test/gw-test-01/#",),
    subscribe=("citywatch/test/receipts/gw-test-01/#",),
)
BRIDGE = MqttAccount(
    "bridge",
    "bridge-secret",
    publish=("citywatch/test/receipts/#",),
    subscribe=("citywatch/test/#",),
)
ACCOUNTS = (DEVICE, BRIDGE)


def _open_tmp_dir() -> Path:
    """A data dir the `postgres` and `mosquitto` users can enter (pytest's tmp root is 0700)."""
    return Path(tempfile.mkdtemp(prefix="citywatch-stack-test-"))


@pytest.fixture(scope="module")
def own_stack() -> Iterator[tuple[EmbeddedStack, StackInfo]]:
    """This module's own running stack (not the session's: these tests change its accounts
    and run `up` again); they leave it as they found it."""
    data_dir = _open_tmp_dir()
    embedded = EmbeddedStack(data_dir, ACCOUNTS)
    try:
        info = embedded.up(timeout_s=60)
        yield embedded, info
    finally:
        embedded.down()
        shutil.rmtree(data_dir, ignore_errors=True)


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


class Mqtt5Client:
    """A paho MQTT 5 client that reports CONNACK, PUBACK and SUBACK reason codes."""

    def __init__(self, port: int, account: MqttAccount | None) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"stack-test-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        if account is not None:
            self.client.username_pw_set(account.username, account.password)
        self._connack: queue.Queue[ReasonCode] = queue.Queue()
        self._acks: dict[int, Any] = {}
        self._acked = threading.Condition()
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.client.on_connect = lambda c, u, f, rc, p: self._connack.put(rc)
        self.client.on_publish = lambda c, u, mid, rc, p: self._ack(mid, rc)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self._ack(mid, rcs)
        self.client.on_message = lambda c, u, msg: self.messages.put(msg)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _ack(self, mid: int, reason: Any) -> None:
        with self._acked:
            self._acks[mid] = reason
            self._acked.notify_all()

    def _wait_ack(self, mid: int) -> Any:
        with self._acked:
            assert self._acked.wait_for(lambda: mid in self._acks, timeout=5), "no ack"
            return self._acks.pop(mid)

    def connack(self) -> ReasonCode:
        return self._connack.get(timeout=5)

    def publish(self, topic: str, payload: bytes = b"x") -> ReasonCode:
        """Publish at QoS 1 and return the PUBACK's reason code."""
        info = self.client.publish(topic, payload, qos=1)
        reason: ReasonCode = self._wait_ack(info.mid)
        return reason

    def subscribe(self, topic: str) -> ReasonCode:
        """Subscribe at QoS 1 and return the SUBACK's reason code."""
        _rc, mid = self.client.subscribe(topic, qos=1)
        assert mid is not None
        reasons: list[ReasonCode] = self._wait_ack(mid)
        return reasons[0]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def mqtt_port(own_stack: tuple[EmbeddedStack, StackInfo]) -> int:
    return _port(own_stack[1].mqtt_url)


@pytest.fixture
def device(mqtt_port: int) -> Iterator[Mqtt5Client]:
    client = Mqtt5Client(mqtt_port, DEVICE)
    assert not client.connack().is_failure
    yield client
    client.close()


def _kafka_metadata(bootstrap: str) -> set[str]:
    """Bootstrap a real Kafka client and return the topics the broker reports."""
    import asyncio

    aiokafka = pytest.importorskip("aiokafka")

    async def fetch() -> set[str]:
        client = aiokafka.AIOKafkaClient(bootstrap_servers=bootstrap)
        await client.bootstrap()
        try:
            metadata = await client.fetch_all_metadata()
            assert metadata.brokers(), "no broker in metadata"
            return set(metadata.topics())
        finally:
            await client.close()

    return asyncio.run(fetch())


def test_up_returns_when_every_service_accepts_a_real_connection(
    own_stack: tuple[EmbeddedStack, StackInfo], device: Mqtt5Client
) -> None:
    """MQTT 5 login, Kafka metadata and a PostgreSQL query all work as soon as up() returns."""
    _embedded, info = own_stack
    assert info.mqtt_url.startswith("mqtt://127.0.0.1:")
    assert isinstance(_kafka_metadata(info.kafka_bootstrap), set)
    with psycopg.connect(info.database_url) as conn:
        row = conn.execute("SELECT current_database(), current_user, 1").fetchone()
    assert row == ("citywatch", "citywatch", 1)


def test_postgres_refuses_a_wrong_password(own_stack: tuple[EmbeddedStack, StackInfo]) -> None:
    """The role has a real password (scram-sha-256), not trust authentication."""
    parts = urlsplit(own_stack[1].database_url)
    wrong = parts._replace(netloc=f"citywatch:wrong@{parts.hostname}:{parts.port}").geturl()
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong, connect_timeout=5).close()


def test_embedded_kafka_is_reported_as_not_idempotent(
    own_stack: tuple[EmbeddedStack, StackInfo],
) -> None:
    """Tansu's memory storage refuses InitProducerId; producers must not ask for it."""
    assert own_stack[1].kafka_idempotent is False


def test_mqtt_refuses_anonymous_clients(mqtt_port: int) -> None:
    """A client without credentials gets a failed CONNACK."""
    client = Mqtt5Client(mqtt_port, None)
    try:
        assert client.connack().value in (NOT_AUTHORIZED, BAD_USERNAME_OR_PASSWORD)
    finally:
        client.close()


def test_mqtt_refuses_a_wrong_password(mqtt_port: int) -> None:
    """A known username with the wrong password is refused."""
    client = Mqtt5Client(mqtt_port, MqttAccount(DEVICE.username, "not-the-password"))
    try:
        assert client.connack().value in (NOT_AUTHORIZED, BAD_USERNAME_OR_PASSWORD)
    finally:
        client.close()


def test_device_cannot_publish_outside_its_subtree(device: Mqtt5Client) -> None:
    """Mosquitto answers a denied QoS 1 publish with PUBACK 'Not authorized' (135)."""
    assert device.publish("citywatch/test/gw-other/alert").value == NOT_AUTHORIZED
    assert device.publish("citywatch/test/receipts/gw-test-01/r1").value == NOT_AUTHORIZED


@pytest.fixture
def bridge(mqtt_port: int) -> Iterator[Mqtt5Client]:
    client = Mqtt5Client(mqtt_port, BRIDGE)
    assert not client.connack().is_failure
    yield client
    client.close()


def test_device_can_publish_inside_its_subtree_and_subscribers_receive_it(
    device: Mqtt5Client, bridge: Mqtt5Client
) -> None:
    """An allowed publish gets PUBACK success (0) and reaches a subscriber allowed to read it."""
    assert not bridge.subscribe("citywatch/test/gw-test-01/#").is_failure
    topic = "citywatch/test/gw-test-01/alert/a1"
    assert device.publish(topic, b"hello").value == 0
    message = bridge.messages.get(timeout=5)
    assert (message.topic, message.payload) == (topic, b"hello")


def test_device_receives_only_what_its_acl_lets_it_read(
    device: Mqtt5Client, bridge: Mqtt5Client
) -> None:
    """Even under a broad subscription, a device gets its own receipts and nothing else.

    Mosquitto 2.0 grants every SUBACK and enforces `topic read` on each delivered message.
    """
    assert not device.subscribe("citywatch/test/#").is_failure
    assert bridge.publish("citywatch/test/receipts/gw-other/r1", b"not yours").value == 0
    assert device.publish("citywatch/test/gw-test-01/alert/a2", b"own alert").value == 0
    assert bridge.publish("citywatch/test/receipts/gw-test-01/r2", b"yours").value == 0
    message = device.messages.get(timeout=5)
    assert (message.topic, message.payload) == ("citywatch/test/receipts/gw-test-01/r2", b"yours")
    time.sleep(0.3)
    assert device.messages.empty()


def test_second_up_is_idempotent(own_stack: tuple[EmbeddedStack, StackInfo]) -> None:
    """up() on a running stack keeps the same processes and URLs."""
    embedded, first = own_stack
    again = EmbeddedStack(embedded.data_dir, ACCOUNTS).up(timeout_s=30)
    assert again == first


def test_status_from_another_process_lists_three_services(
    own_stack: tuple[EmbeddedStack, StackInfo],
) -> None:
    """A later process (the CLI's `stack status`) finds every service's URL and pid."""
    embedded, info = own_stack
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from citywatch.stack import EmbeddedStack\n"
        "info = EmbeddedStack(Path(sys.argv[1])).status()\n"
        "print(json.dumps([[s.name, s.url, s.pid, s.running, s.version] for s in info.services]))\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", script, str(embedded.data_dir)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    services = json.loads(output)
    assert [s[0] for s in services] == ["mqtt", "kafka", "postgres"]
    assert [s[2] for s in services] == [s.pid for s in info.services]
    for _name, url, pid, running, version in services:
        assert url and pid > 0 and running and version
    password = urlsplit(info.database_url).password
    assert password and password not in output  # status shows URLs without the password


def test_update_accounts_takes_effect_on_the_running_broker(
    own_stack: tuple[EmbeddedStack, StackInfo], mqtt_port: int
) -> None:
    """A new account can log in, and a removed one cannot, as soon as update returns."""
    embedded, info = own_stack
    newcomer = MqttAccount("gw-test-02", "new-secret", publish=("citywatch/test/gw-test-02/#",))
    try:
        embedded.update_accounts([DEVICE, newcomer])
        client = Mqtt5Client(mqtt_port, newcomer)
        assert not client.connack().is_failure
        client.close()
        refused = Mqtt5Client(mqtt_port, BRIDGE)
        assert refused.connack().is_failure
        refused.close()
    finally:
        embedded.update_accounts(ACCOUNTS)
    after = embedded.status()
    assert after is not None
    assert after.service("mqtt").pid == info.service("mqtt").pid  # reloaded in place


def _pids_gone(pids: list[int]) -> bool:
    def gone(pid: int) -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] == "Z"
        except FileNotFoundError:
            return True

    return all(gone(pid) for pid in pids)


@pytest.fixture(scope="module")
def stopped_data_dir() -> Iterator[Path]:
    """The data dir of a stack that ran once and was stopped: restarting it skips initdb.

    The tests below each start it, and stop it again however they end.
    """
    data_dir = _open_tmp_dir()
    try:
        EmbeddedStack(data_dir, [DEVICE]).up(timeout_s=60)
        EmbeddedStack(data_dir).down()
        yield data_dir
    finally:
        EmbeddedStack(data_dir).down()
        shutil.rmtree(data_dir, ignore_errors=True)


def test_down_leaves_no_process_and_up_after_down_works(stopped_data_dir: Path) -> None:
    """down stops everything (twice is fine); up again restarts a dead part or the whole."""
    embedded = EmbeddedStack(stopped_data_dir, [DEVICE])
    try:
        first = embedded.up(timeout_s=60)
        pids = [s.pid for s in first.services]

        # A dead part is restarted; the others keep running.
        kafka_pid = first.service("kafka").pid
        os.kill(kafka_pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while not _pids_gone([kafka_pid]) and time.monotonic() < deadline:
            time.sleep(0.02)
        healed = embedded.up(timeout_s=30)
        assert healed.service("kafka").pid != kafka_pid
        assert healed.service("mqtt").pid == first.service("mqtt").pid
        assert healed.service("postgres").pid == first.service("postgres").pid
        pids.append(healed.service("kafka").pid)

        started = time.monotonic()
        embedded.down()
        assert time.monotonic() - started < 10
        assert _pids_gone(pids)
        status = embedded.status()
        assert status is not None
        assert not any(s.running for s in status.services)

        embedded.down()  # a second down is a no-op

        again = embedded.up(timeout_s=60)
        with psycopg.connect(again.database_url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        client = Mqtt5Client(_port(again.mqtt_url), DEVICE)
        assert not client.connack().is_failure
        client.close()
        assert not set(s.pid for s in again.services) & set(pids)
    finally:
        embedded.down()


def test_a_port_taken_between_pick_and_bind_is_retried_on_another(
    stopped_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every service that loses the race for its port is restarted on a fresh one."""
    from citywatch.stack import launcher

    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))  # bound, not listening: binds fail, connects are refused
    taken = blocker.getsockname()[1]
    monkeypatch.setattr(launcher, "choose_port", lambda preferred, exclude=(): taken)
    messages: list[str] = []
    try:
        info = EmbeddedStack(stopped_data_dir, [DEVICE]).up(timeout_s=60, progress=messages.append)
        assert taken not in [s.port for s in info.services]
        assert len({s.port for s in info.services}) == 3
        retried = [m.split(":")[0] for m in messages if "was taken meanwhile" in m]
        assert sorted(retried) == ["kafka", "mqtt", "postgres"]
        with psycopg.connect(info.database_url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        blocker.close()
        EmbeddedStack(stopped_data_dir).down()


def test_status_of_an_empty_directory_is_none() -> None:
    """Nothing was ever started there; down is a no-op too."""
    data_dir = _open_tmp_dir()
    try:
        embedded = EmbeddedStack(data_dir)
        assert embedded.status() is None
        embedded.down()
    finally:
        shutil.rmtree(data_dir)


def test_a_service_that_fails_to_start_is_named_with_its_log_and_nothing_is_left(
    stopped_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broken broker config fails `up` with the broker's own error; the rest is stopped."""
    from citywatch.stack.mosquitto import MosquittoService

    broken = MosquittoService.render_config
    monkeypatch.setattr(
        MosquittoService,
        "render_config",
        lambda self, port: broken(self, port) + "bogus_option 1\n",
    )
    data_dir = stopped_data_dir
    try:
        embedded = EmbeddedStack(data_dir, [DEVICE])
        with pytest.raises(StackError, match=r"(?s)mqtt exited while starting.*bogus_option"):
            embedded.up(timeout_s=30)
        status = embedded.status()
        assert status is not None
        assert not any(s.running for s in status.services)
        kafka_marker = f"tcp://127.0.0.1:{status.service('kafka').port}"
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                try:
                    cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
                except OSError:
                    continue
                assert str(data_dir) not in cmdline and kafka_marker not in cmdline
    finally:
        EmbeddedStack(data_dir).down()


@pytest.mark.skipif(os.geteuid() != 0, reason="services only switch users when run as root")
def test_data_dir_the_service_users_cannot_reach_is_refused_clearly() -> None:
    """As root, a data dir under a 0700 directory is refused before anything starts."""
    parent = Path(tempfile.mkdtemp(prefix="citywatch-closed-"))  # mkdtemp makes it 0700
    try:
        with pytest.raises(StackError, match=r"cannot reach .*chmod o\+x"):
            EmbeddedStack(parent / "stack").up(timeout_s=10)
    finally:
        shutil.rmtree(parent)
