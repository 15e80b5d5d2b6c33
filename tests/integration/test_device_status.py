"""Device status from facts on the real stack: a gateway whose connection dies (its last will,
delivered by Mosquitto) shows offline in the center's device list, and so does its camera,
whose own retained status still says online.

The gateway's will is written when it connects, so its own time is older than the "online"
sent after it; the stream times statuses on the bridge's clock so that the will counts. The
connection is cut with a TCP proxy (no DISCONNECT is sent, as when a gateway loses power).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from citywatch import __version__
from citywatch.center.devices import DeviceView, list_devices
from citywatch.config import CitywatchConfig
from citywatch.contracts import DeviceKind, DeviceRef, Status
from citywatch.contracts.messages import DeviceState
from citywatch.edge.gateway_session import edge_session
from citywatch.edge.outbox import Outbox
from citywatch.edge.session import EdgeSession
from tests.integration.test_edge_resilience import TcpProxy

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GATEWAY, CAMERA = "gw-cam-hebin", "cam-hebin-201"


def state_of(database_url: str, device_id: str) -> str | None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT state FROM devices WHERE id = %s", (device_id,)).fetchone()
    return row[0] if row else None


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout_s}s waiting for {what}"
        time.sleep(0.1)


async def center_view(database_url: str, config: CitywatchConfig) -> dict[str, DeviceView]:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        return {d.id: d for d in await list_devices(conn, config)}


def test_a_gateway_whose_connection_dies_takes_its_camera_offline(
    stack: Any, pipeline: Any, demo_config: CitywatchConfig, tmp_path: Path
) -> None:
    """Online via the gateway, then the link dies: the will arrives, the center shows the
    gateway and its camera offline ("gateway … offline"), the camera's last seen kept."""
    proxy = TcpProxy((stack.endpoints.mqtt_host, stack.endpoints.mqtt_port))
    proxy.start()
    template = edge_session(demo_config, GATEWAY, stack.data_dir)
    template.outbox.close()
    session = EdgeSession(
        site="demo", gateway_id=GATEWAY, devices=template.devices,
        broker=dataclasses.replace(template.broker, port=proxy.port, reconnect_min_s=30,
                                   reconnect_max_s=30),
        outbox=Outbox(tmp_path / "outbox.sqlite"), software=f"citywatch {__version__}",
        pump_interval_s=0.2,
    )  # fmt: skip
    database_url = stack.endpoints.database_url
    camera = DeviceRef(site="demo", kind=DeviceKind.CAMERA, id=CAMERA)
    session.start()
    try:
        assert session.wait_connected(15), "the gateway could not reach Mosquitto via the proxy"
        session.publish_many(
            [Status(device=camera, state=DeviceState.ONLINE, event_time=datetime.now(UTC))]
        )
        wait_for(lambda: state_of(database_url, GATEWAY) == "online"
                 and state_of(database_url, CAMERA) == "online", 30, "both online")  # fmt: skip
        before = asyncio.run(center_view(database_url, demo_config))
        assert (before[GATEWAY].state, before[CAMERA].state) == ("online", "online")

        proxy.stop()  # the link dies: no DISCONNECT, so the broker sends the will
        wait_for(lambda: state_of(database_url, GATEWAY) == "offline", 30, "the last will")
        after = asyncio.run(center_view(database_url, demo_config))
    finally:
        session.stop()
        proxy.stop()
    gateway, cam = after[GATEWAY], after[CAMERA]
    assert gateway.kind == "gateway" and gateway.state == "offline"
    assert gateway.last_seen is not None and gateway.last_seen_ago is not None
    assert (cam.state, cam.reported_state) == ("offline", "online")
    assert cam.state_reason is not None and cam.state_reason.startswith(f"gateway {GATEWAY}")
    assert cam.last_seen == before[CAMERA].last_seen and cam.last_seen_ago.endswith(" ago")
