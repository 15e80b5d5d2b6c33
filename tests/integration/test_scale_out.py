"""Scale-out that stays correct (issue 21): two stream workers, two bridges on one shared
MQTT subscription, 12 partitions; every incident straddles a border between two key cells,
so its alerts land on two partitions and, while both workers run, often on two workers. A
second worker joins a third of the way through and the first is SIGKILLed at two thirds:
still one work order per incident, every alert stored and receipted.

The pipeline has its own topics, share group and database (nothing another test's pipeline
does reaches them); a drone dock sends the alerts, since dock alerts are keyed by their own
position. New incidents open in every phase, their first two alerts (one on each side)
back to back: with two workers each would open its own order without the claim on the place.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.partitioner import murmur2

from citywatch.contracts import Alert, DeviceRef, KafkaTopics, Location, Receipt, decode
from citywatch.contracts.messages import ReceiptStatus
from citywatch.edge.gateway_session import edge_session
from citywatch.stack.child import CliProcess
from citywatch.stream.partitioning import key_cell
from tests.conftest import DEMO_CONFIG, REPO, fresh_database
from tests.gateways import lone_fast_gateway
from tests.polling import wait_for
from tests.unit.test_partitioning import CENTRE, straddling_points

pytestmark = [pytest.mark.integration, pytest.mark.slow]
DOCK = DeviceRef(site="demo", kind="dock", id="dock-chengxi-01")
RESOLUTION = 6  # the demo site's key resolution (its largest dedup radius is 300 m)
PARTITIONS = 12
BORDERS = 6  # the six borders of the key cell around the district's centre
PHASES = 3  # first worker alone; both; the second alone after the first was killed
FIRST, LATER = 4, 2  # alerts of an incident in its own phase, and in the next one


def incident_alerts(run: str) -> tuple[list[Alert], list[int], dict[str, list[str]]]:
    """The burst, the indexes where its phases start, and each incident's alert ids.

    Incident (phase, border) is a car parked across that border, seen alternately from each
    side 8 m apart (one episode per sighting, so each is placed by position); its spot on
    the border differs per phase (700 m apart). Each phase opens its own incidents (first
    sightings one side, then the other, back to back) and sees the previous phase's again.
    """
    base = datetime.now(UTC) - timedelta(minutes=20)
    spots = {
        (phase, border): pair
        for phase in range(PHASES)
        for border, pair in enumerate(
            straddling_points(CENTRE, RESOLUTION, 8, BORDERS, along=0.3 + 0.2 * phase)
        )
    }
    by_incident: dict[str, list[str]] = {f"{p}-{b}": [] for p, b in spots}
    clock = iter(range(10_000))

    def sighting(phase: int, border: int, n: int) -> Alert:
        where = spots[(phase, border)][n % 2]
        episode = f"so-{run}-{phase}-{border}-{n}"
        by_incident[f"{phase}-{border}"].append(f"{episode}.0")
        return Alert(
            id=f"{episode}.0", episode_id=episode, seq=0, device=DOCK,
            kind="illegal_parking", rule="patrol-parking", phase="start",
            event_time=base + timedelta(seconds=next(clock)),
            location=Location(lat=where.lat, lon=where.lon), confidence=0.8,
        )  # fmt: skip

    alerts: list[Alert] = []
    starts = []
    for phase in range(PHASES + 1):  # the last: the previous phase's later sightings only
        starts.append(len(alerts))
        for n in range(FIRST if phase < PHASES else 0):
            alerts += [sighting(phase, border, n) for border in range(BORDERS)]
        for n in range(FIRST, FIRST + LATER) if phase > 0 else ():
            alerts += [sighting(phase - 1, border, n) for border in range(BORDERS)]
    return alerts, starts[1:PHASES], by_incident


class DockGateway:
    """The drone dock's gateway through its real edge session (outbox, resends), sending
    one phase at a time from the test's own thread."""

    def __init__(self, config, stack, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
        config = lone_fast_gateway(config, "gw-dock-01", tmp_path)
        self.session = edge_session(config, "gw-dock-01", stack.data_dir)

    def start(self) -> None:
        self.session.start()
        assert self.session.wait_connected(15), "the dock gateway could not connect"

    def send(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            self.session.publish_alert(alert)
            time.sleep(0.005)

    def finish(self, timeout_s: float) -> None:
        """Resend until every alert has its receipt, then stop."""
        try:
            deadline = time.monotonic() + timeout_s
            while len(self.session.outbox) > 0 and time.monotonic() < deadline:
                self.session.pump()
                time.sleep(0.5)
            assert len(self.session.outbox) == 0, (
                f"{len(self.session.outbox)} alerts never got a receipt"
            )
        finally:
            self.session.stop()
            self.session.outbox.close()


def site_config(tmp_path: Path, prefix: str, database_url: str) -> Path:
    """The demo site with its own topics (12 partitions), share group and database (a
    copy: an including file may not set again what the demo sets)."""
    demo = DEMO_CONFIG.read_text()
    for line, replacement in (
        ("  - demo-district/", f"  - {DEMO_CONFIG.parent}/demo-district/"),
        ("boundary_geojson: demo-district/", f"boundary_geojson: {DEMO_CONFIG.parent}/demo-district/"),
        ("  kafka: {bootstrap: embedded}",
         f"  kafka: {{bootstrap: embedded, topic_prefix: {prefix}, partitions: {PARTITIONS}}}"),
        ("  mqtt: {url: embedded}", f"  mqtt: {{url: embedded, share_group: {prefix}}}"),
        ("  database: {url: embedded}", f"  database: {{url: {json.dumps(database_url)}}}"),
    ):  # fmt: skip
        assert line in demo, f"the demo config no longer has {line!r}"
        demo = demo.replace(line, replacement)
    site = tmp_path / "site.yaml"
    site.write_text(demo)
    return site


def wait_ready(process: CliProcess, line: str) -> None:
    """Until ``process`` logged ``line``; its log if it exited or took over 90 s."""
    deadline = time.monotonic() + 90
    while line not in process.output():
        assert process.process.poll() is None, process.output()[-3000:]
        assert time.monotonic() < deadline, process.output()[-3000:]
        time.sleep(0.2)


def stored_receipts(bootstrap: str, topic: str, wanted: set[str], timeout_s: float) -> set[str]:
    """The message ids of ``wanted`` with a ``stored`` receipt on ``topic``."""

    async def read() -> set[str]:
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
            enable_auto_commit=False,
        )  # fmt: skip
        await consumer.start()
        seen: set[str] = set()
        try:
            deadline = time.monotonic() + timeout_s
            while not wanted <= seen and time.monotonic() < deadline:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for record in records:
                        receipt = decode(record.value, Receipt)
                        if receipt.status is ReceiptStatus.STORED:
                            seen.add(receipt.message_id)
        finally:
            await consumer.stop()
        return seen & wanted

    return asyncio.run(read())


def test_two_workers_two_bridges_twelve_partitions_keep_one_order_per_incident(
    stack, demo_config, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """Incidents across key-cell borders, a worker joining and one SIGKILLed mid-stream:
    one work order per incident with all its alerts, every alert stored and receipted."""
    run = uuid.uuid4().hex[:8]
    prefix = f"so{run}"
    alerts, phase_starts, by_incident = incident_alerts(run)
    partitions = {
        (murmur2(f"h3:{key_cell(a.location.lat, a.location.lon, RESOLUTION)}".encode())
         & 0x7FFFFFFF) % PARTITIONS
        for a in alerts
        if a.location.lat is not None and a.location.lon is not None
    }  # fmt: skip
    assert len(partitions) >= 4, f"the borders fall on partitions {partitions} only"
    with fresh_database(stack, "scaleout") as url:
        env = {
            "CITYWATCH_DATA_DIR": str(stack.data_dir),
            "CITYWATCH_CONFIG": str(site_config(tmp_path, prefix, url)),
        }

        def start(args: list[str], name: str) -> CliProcess:
            return CliProcess(["stream", *args], tmp_path / f"{name}.log", env, cwd=REPO)

        processes = {
            "bridge-1": start(["bridge", "--bridge-id", f"{prefix}-1"], "bridge-1"),
            "bridge-2": start(["bridge", "--bridge-id", f"{prefix}-2"], "bridge-2"),
            "app-1": start(["app"], "app-1"),
        }
        try:
            for name, line in (("bridge-1", "bridge connected"), ("bridge-2", "bridge connected"),
                               ("app-1", "restored ")):  # fmt: skip
                wait_ready(processes[name], line)
            phases = [
                alerts[a:b] for a, b in zip([0, *phase_starts], [*phase_starts, None], strict=True)
            ]
            gateway = DockGateway(demo_config, stack, tmp_path)
            gateway.start()
            try:
                gateway.send(phases[0])  # the first worker alone
                processes["app-2"] = start(["app"], "app-2")  # a second worker joins
                wait_ready(processes["app-2"], "restored ")
                wait_for(
                    lambda: processes["app-1"].output().count("Setting newly assigned") >= 2,
                    60, "the partitions split between the two workers",
                )  # fmt: skip
                gateway.send(phases[1])  # both workers
                time.sleep(1.0)
                processes["app-1"].process.kill()  # SIGKILL: no commit, no goodbye
                processes["app-1"].process.wait()
                gateway.send(phases[2])  # the second alone, once the group noticed
            finally:
                gateway.finish(timeout_s=180)
            topic = KafkaTopics(prefix).receipts
            ids = {a.id for a in alerts}
            receipted = stored_receipts(stack.endpoints.kafka_bootstrap, topic, ids, 60)
            assert receipted == ids, f"{len(ids - receipted)} alerts without a stored receipt"
            with psycopg.connect(url, autocommit=True) as conn:
                stored = conn.execute(
                    "SELECT count(*) FROM alerts WHERE id = ANY(%s)", (list(ids),)
                ).fetchone()
                links = conn.execute(
                    """SELECT a.alert_id, a.work_order_id FROM work_order_alerts a
                       JOIN work_orders w ON w.id = a.work_order_id
                       WHERE a.alert_id = ANY(%s) AND w.state <> 'merged'""",
                    (list(ids),),
                ).fetchall()
                orders = conn.execute(
                    "SELECT count(*) FROM work_orders WHERE state <> 'merged'"
                ).fetchone()
                summaries = conn.execute(
                    """SELECT id, alert_count, jsonb_array_length(episodes) FROM work_orders
                       WHERE state <> 'merged'"""
                ).fetchall()
        finally:
            for process in processes.values():
                process.stop()
    logs = "\n".join(f"--- {n}\n{p.output()[-1500:]}" for n, p in processes.items())
    assert stored == (len(ids),), logs
    order_of = dict(links)
    assert len(order_of) == len(ids), f"{len(ids) - len(order_of)} alerts in no order\n{logs}"
    orders_per_incident = {
        incident: {order_of[i] for i in members} for incident, members in by_incident.items()
    }
    split = {k: v for k, v in orders_per_incident.items() if len(v) != 1}
    assert not split, f"incidents split over several work orders: {split}\n{logs}"
    assert orders == (PHASES * BORDERS,), logs
    # Each order's incident state counts every sighting: no worker wrote over another's.
    per_order = FIRST + LATER
    assert all(count == episodes == per_order for _, count, episodes in summaries), summaries
