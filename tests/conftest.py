"""Shared fixtures: the demo config and one embedded stack for the whole test session.

Integration tests talk to the real services (Mosquitto, Tansu, PostgreSQL) started by the
same launcher as `citywatch stack up`, in a temporary data directory, stopped at the end.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from citywatch.config import CitywatchConfig, load_config
from citywatch.stack import child

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / "configs" / "demo-district.yaml"


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that needs the embedded stack is an integration test, marked so or not: the
    fast loop (`make test-fast`) must never start Mosquitto, Tansu and PostgreSQL."""
    for item in items:
        if "stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def demo_config() -> CitywatchConfig:
    return load_config(DEMO_CONFIG)


@dataclass(frozen=True)
class RunningStack:
    data_dir: Path
    info: object  # citywatch.stack.launcher.StackInfo
    endpoints: object  # citywatch.stack.endpoints.Endpoints


@pytest.fixture(scope="session")
def stack(
    demo_config: CitywatchConfig, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningStack]:
    """The embedded stack with the demo site's accounts, up for the whole session."""
    from citywatch.stack.endpoints import embedded_stack, resolve_endpoints

    # Not under pytest's 0700 tmp root: the services drop root for their own users, who
    # must be able to reach the data directory.
    data_dir = Path(tempfile.mkdtemp(prefix="citywatch-test-"))
    data_dir.chmod(0o711)
    launcher = embedded_stack(demo_config, data_dir)
    info = launcher.up(timeout_s=90)
    try:
        yield RunningStack(data_dir, info, resolve_endpoints(demo_config, data_dir))
    finally:
        launcher.down()
        shutil.rmtree(data_dir, ignore_errors=True)


class CliProcess(child.CliProcess):
    """A `citywatch` subcommand against the session's stack, with the demo config."""

    def __init__(self, args: list[str], data_dir: Path, log_path: Path) -> None:
        env = {"CITYWATCH_DATA_DIR": str(data_dir), "CITYWATCH_CONFIG": str(DEMO_CONFIG)}
        super().__init__(args, log_path, env, cwd=REPO)


@pytest.fixture(scope="session")
def pipeline(
    stack: RunningStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, CliProcess]]:
    """The stream tier (Faust app and bridge) running against the session's stack."""
    from citywatch.stream.migrate import migrate

    migrate(stack.endpoints.database_url)  # the schema is there before any test queries it
    logs = tmp_path_factory.mktemp("pipeline-logs")
    processes = {
        "app": CliProcess(["stream", "app"], stack.data_dir, logs / "stream-app.log"),
        "bridge": CliProcess(["stream", "bridge"], stack.data_dir, logs / "bridge.log"),
    }
    # Ready means subscribed (a QoS 1 message published before the bridge's shared
    # subscription exists has no subscriber and is dropped) and the worker restored its state.
    ready_lines = {"bridge": "bridge connected", "app": "restored "}
    deadline = time.monotonic() + 90
    while not all(line in processes[n].output() for n, line in ready_lines.items()):
        for name, proc in processes.items():
            if proc.process.poll() is not None:
                pytest.fail(f"{name} exited at start:\n{proc.output()}")
        if time.monotonic() > deadline:
            pytest.fail("the stream tier did not become ready in 90 s")
        time.sleep(0.2)
    try:
        yield processes
    finally:
        for proc in processes.values():
            proc.stop()


class GatewayPublisher:
    """Publishes raw messages with a gateway's own credentials (QoS 1), as its agent would."""

    def __init__(self, stack: RunningStack, config: CitywatchConfig, gateway_id: str) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        from citywatch.config.secrets import resolve_secret

        gateway = next(g for g in config.devices.gateways if g.id == gateway_id)
        endpoints = stack.endpoints
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            protocol=mqtt.MQTTv5,
            client_id=f"test-publisher-{gateway_id}-{os.getpid()}-{time.monotonic_ns()}",
        )
        self.client.username_pw_set(
            gateway.username, resolve_secret(gateway.credentials.password, endpoints.secrets_dir)
        )
        self.client.connect(endpoints.mqtt_host, endpoints.mqtt_port)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(10)
        assert info.is_published(), f"broker did not take {topic}"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def publisher_for(stack: RunningStack, demo_config: CitywatchConfig) -> Iterator[object]:
    """``publisher_for(gateway_id)`` → a connected GatewayPublisher, closed after the test."""
    made: list[GatewayPublisher] = []

    def make(gateway_id: str) -> GatewayPublisher:
        made.append(GatewayPublisher(stack, demo_config, gateway_id))
        return made[-1]

    yield make
    for publisher in made:
        publisher.close()


@pytest.fixture
def workorder_follower(stack: RunningStack, demo_config: CitywatchConfig) -> Iterator[list]:
    """What an integrator (a 12345 platform) subscribed to work-order events on MQTT
    receives, as a list that fills while the test runs (subscribed before it is yielded)."""
    import threading

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from citywatch.config.secrets import resolve_secret
    from citywatch.contracts import WorkOrderEvent, decode
    from citywatch.contracts.topics import workorder_events_topic

    received: list[WorkOrderEvent] = []
    subscribed = threading.Event()
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        protocol=mqtt.MQTTv5,
        client_id=f"test-follower-{os.getpid()}-{time.monotonic_ns()}",
    )
    account = demo_config.services.mqtt.center
    client.username_pw_set(
        account.username, resolve_secret(account.password, stack.endpoints.secrets_dir)
    )
    client.on_message = lambda c, u, m: received.append(decode(m.payload, WorkOrderEvent))
    client.on_subscribe = lambda *args: subscribed.set()
    client.connect(stack.endpoints.mqtt_host, stack.endpoints.mqtt_port)
    client.loop_start()
    client.subscribe(workorder_events_topic(demo_config.site.id), qos=1)
    try:
        assert subscribed.wait(10), "the follower's subscription was not acknowledged"
        yield received
    finally:
        client.disconnect()
        client.loop_stop()


@contextlib.contextmanager
def fresh_database(stack: RunningStack, prefix: str) -> Iterator[str]:
    """The URL of a new, migrated database of its own on the session's PostgreSQL, dropped
    afterwards: for tests that need tables nobody else writes to."""
    import uuid

    import psycopg
    from psycopg.conninfo import make_conninfo

    from citywatch.stream.migrate import migrate

    base = stack.endpoints.database_url  # type: ignore[attr-defined]
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_conninfo(base, dbname=name)
    migrate(url)
    try:
        yield url
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
