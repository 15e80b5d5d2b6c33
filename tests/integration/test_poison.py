"""One bad record never takes a good one with it, on the real stack (issue 16, finding 1).

Before: 10 valid alerts, one with a NUL in ``rule`` (or NaN in ``attributes``, or a lone
surrogate in ``zone``), then 10 valid ones, sent in one burst by one gateway, failed the
database COPY of the whole batch: all 20 good alerts (and another gateway's 15 in the same
batch) got "rejected" receipts and were never stored. Now the bad one is dead-lettered alone
with its reason and every good neighbour is stored and receipted; a record that fails only
in the database is found by storing the batch in halves.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from citywatch.contracts import (
    Alert,
    Channel,
    DeviceRef,
    Location,
    Receipt,
    ReceiptStatus,
    decode,
    encode,
)
from tests.polling import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SENSOR = DeviceRef(site="demo", kind="sensor", id="wl-underpass-01")
CAMERA = DeviceRef(site="demo", kind="camera", id="cam-renmin-101")


def alert(device: DeviceRef, alert_id: str, rule: str = "depth_level") -> Alert:
    return Alert(id=alert_id, episode_id=alert_id.rsplit(".", 1)[0], seq=0, device=device,
                 kind="waterlogging" if device.kind == "sensor" else "illegal_parking",
                 rule=rule, phase="start", event_time=datetime.now(UTC) - timedelta(seconds=30),
                 location=Location(lat=31.43, lon=119.48, zone="curb"), confidence=0.9,
                 attributes={"depth_cm": 12.0} if device.kind == "sensor" else {})  # fmt: skip


def poisoned(message: Alert, how: str) -> bytes:
    """``message`` as a hostile or broken device sends it (Python's json writes the escapes)."""
    raw = json.loads(encode(message))
    if how == "NUL in rule":
        raw["rule"] = "depth\x00level"
    elif how == "NaN in attributes":
        raw["attributes"]["ratio"] = float("nan")
    elif how == "lone surrogate in zone":
        raw["location"]["zone"] = "cu\ud800rb"
    return json.dumps(raw, allow_nan=True).encode()


class Gateway:
    """A gateway's MQTT client publishing raw bytes and collecting its devices' receipts."""

    def __init__(self, publisher, devices: list[DeviceRef]) -> None:  # type: ignore[no-untyped-def]
        self.client = publisher.client
        self.receipts: dict[str, Receipt] = {}
        self.client.on_message = lambda client, userdata, m: self._keep(decode(m.payload, Receipt))
        for device in devices:
            self.client.subscribe(device.address(Channel.RECEIPTS).topic, qos=1)
        time.sleep(0.5)

    def _keep(self, receipt: Receipt) -> None:
        self.receipts[receipt.message_id] = receipt

    def send(self, device: DeviceRef, payloads: list[bytes]) -> None:
        """One burst: every payload handed to the broker before waiting for any ack."""
        infos = [
            self.client.publish(device.address(Channel.ALERTS).topic, p, qos=1) for p in payloads
        ]
        for info in infos:
            info.wait_for_publish(10)


def stored(stack, ids: list[str]) -> set[str]:  # type: ignore[no-untyped-def]
    with psycopg.connect(stack.endpoints.database_url) as conn:
        rows = conn.execute("SELECT id FROM alerts WHERE id = ANY(%s)", (ids,)).fetchall()
    return {r[0] for r in rows}


@pytest.mark.parametrize("how", ["NUL in rule", "NaN in attributes", "lone surrogate in zone"])
def test_one_bad_alert_in_a_burst_is_refused_alone_and_its_neighbours_are_stored(
    stack,
    pipeline,
    publisher_for,
    how: str,  # type: ignore[no-untyped-def]
) -> None:
    """10 good, 1 bad, 10 good from one gateway and 15 from another, in one burst: 35 stored
    with "stored" receipts; the bad one gets a "rejected" receipt naming what is wrong."""
    tag = uuid.uuid4().hex[:8]
    sensors = Gateway(publisher_for("gw-sensors-east"), [SENSOR])
    cameras = Gateway(publisher_for("gw-cam-renmin"), [CAMERA])
    good = [alert(SENSOR, f"{SENSOR.id}.{tag}-{n}.0") for n in range(20)]
    bad = alert(SENSOR, f"{SENSOR.id}.{tag}-bad.0")
    others = [alert(CAMERA, f"{CAMERA.id}.{tag}-{n}.0") for n in range(15)]
    sensors.send(
        SENSOR,
        [encode(a) for a in good[:10]] + [poisoned(bad, how)] + [encode(a) for a in good[10:]],
    )
    cameras.send(CAMERA, [encode(a) for a in others])

    wanted = [a.id for a in good + others]
    wait_for(lambda: stored(stack, wanted) == set(wanted), 60, "every good alert stored")
    wait_for(lambda: bad.id in sensors.receipts, 30, "the bad alert's receipt")
    wait_for(
        lambda: all(a.id in sensors.receipts for a in good) and all(a.id in cameras.receipts for a in others),
        30, "every good alert's receipt",
    )  # fmt: skip
    statuses = {sensors.receipts[a.id].status for a in good} | {
        cameras.receipts[a.id].status for a in others
    }
    assert statuses == {ReceiptStatus.STORED}
    rejection = sensors.receipts[bad.id]
    assert rejection.status is ReceiptStatus.REJECTED and "MalformedMessage" in (
        rejection.reason or ""
    )
    assert bad.id not in stored(stack, [bad.id])


@pytest.fixture
def database_refuses_rule(stack) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A rule name the database itself refuses (a trigger): a record validation cannot
    foresee, standing for any constraint a batch can trip over in PostgreSQL."""
    rule = f"refused-{uuid.uuid4().hex[:6]}"
    with psycopg.connect(stack.endpoints.database_url, autocommit=True) as conn:
        conn.execute(f"""
            CREATE FUNCTION refuse_{rule.replace('-', '_')}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'rule % is refused by the database', NEW.rule; END $$;
            CREATE TRIGGER refuse_{rule.replace('-', '_')} BEFORE INSERT ON alerts FOR EACH ROW
            WHEN (NEW.rule = '{rule}') EXECUTE FUNCTION refuse_{rule.replace('-', '_')}();
        """)  # fmt: skip
    yield rule
    with psycopg.connect(stack.endpoints.database_url, autocommit=True) as conn:
        conn.execute(f"DROP TRIGGER refuse_{rule.replace('-', '_')} ON alerts")
        conn.execute(f"DROP FUNCTION refuse_{rule.replace('-', '_')}()")


def test_a_record_only_the_database_refuses_is_found_and_dead_lettered_alone(
    stack,
    pipeline,
    publisher_for,
    database_refuses_rule: str,  # type: ignore[no-untyped-def]
) -> None:
    """The worker stores the failing batch in halves: the one alert the database refuses is
    dead-lettered with the database's reason, its 20 neighbours are stored and receipted."""
    tag = uuid.uuid4().hex[:8]
    sensors = Gateway(publisher_for("gw-sensors-east"), [SENSOR])
    good = [alert(SENSOR, f"{SENSOR.id}.{tag}-{n}.0") for n in range(20)]
    bad = alert(SENSOR, f"{SENSOR.id}.{tag}-bad.0", rule=database_refuses_rule)
    sensors.send(
        SENSOR, [encode(a) for a in good[:10]] + [encode(bad)] + [encode(a) for a in good[10:]]
    )

    wanted = [a.id for a in good]
    wait_for(lambda: stored(stack, wanted) == set(wanted), 60, "every good alert stored")
    wait_for(
        lambda: bad.id in sensors.receipts and all(a.id in sensors.receipts for a in good),
        30,
        "receipts",
    )
    assert {sensors.receipts[a.id].status for a in good} == {ReceiptStatus.STORED}
    rejection = sensors.receipts[bad.id]
    assert rejection.status is ReceiptStatus.REJECTED
    assert "refused by the database" in (rejection.reason or "")
