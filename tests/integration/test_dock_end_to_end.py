"""A drone-dock patrol end to end on the real embedded stack.

simulated dock (DJI Cloud API) → dock agent (detector, geo-projection) → MQTT → bridge →
Kafka → Faust app → PostgreSQL → receipt: the smoke the dock photographed is stored with
its ground position.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from citywatch.contracts import AlertKind
from citywatch.edge.dock.agent import DockAgent, LocalMediaStore, make_detector
from citywatch.edge.gateway_session import edge_session
from citywatch.edge.geo import distance_m
from citywatch.hardware.dock.sim import SimulatedDock

pytestmark = [pytest.mark.integration, pytest.mark.slow]
GATEWAY = "gw-dock-01"


def test_dock_patrol_stores_a_geolocated_smoke_alert(
    stack, pipeline, demo_config, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """A short simulated patrol yields a smoke alert stored within 10 m of the planted plume."""
    dock = next(d for d in demo_config.devices.docks if d.gateway == GATEWAY)
    plume = next(p for p in dock.simulation.planted if p.kind == "smoke").position
    epoch = datetime.now(UTC).replace(microsecond=0)
    sim = SimulatedDock(dock, tmp_path / "media", epoch=epoch)
    session = edge_session(demo_config, GATEWAY, stack.data_dir)
    agent = DockAgent(
        site=demo_config.site.id,
        dock=dock,
        detector=make_detector(dock),
        media=LocalMediaStore(tmp_path / "media"),
        publisher=session,
        reply=sim.receive,
    )
    stop = threading.Event()
    session.start()
    try:
        assert session.wait_connected(15), "dock gateway could not connect to Mosquitto"
        # 45 simulated seconds (take-off at 5 s, the plume is under the route at ~30 s),
        # as fast as the detector runs.
        for t in range(46):
            now = epoch + timedelta(seconds=t)
            for topic, payload in sim.advance(t):
                agent.handle(topic, payload, now)
            agent.tick(now)
        smoke = [a for a in agent.stats.alerts if a.kind is AlertKind.SMOKE]
        assert smoke, f"no smoke alert from {len(sim.photos)} photos"
        assert not sim.awaiting_reply

        deadline = time.monotonic() + 60
        while session.outbox.counts().get("alert", 0) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert session.outbox.counts().get("alert", 0) == 0, pipeline["app"].output()[-2000:]
        with psycopg.connect(stack.endpoints.database_url) as conn:
            rows = conn.execute(
                "SELECT id, device_kind, device_id, lat, lon FROM alerts"
                " WHERE kind = 'smoke' AND device_id = %s AND id = ANY(%s)",
                (dock.id, [a.id for a in smoke]),
            ).fetchall()
        assert len(rows) == len(smoke)
        for _id, device_kind, _device, lat, lon in rows:
            assert device_kind == "dock"
            assert distance_m(lat, lon, plume.lat, plume.lon) < 10.0
    finally:
        stop.set()
        session.stop()
        session.outbox.close()
