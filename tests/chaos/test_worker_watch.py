"""The worker's own reports and reflexes, without services: the watch that restarts it
when the Kafka broker lost its log, and the health file that says whether it reaches its
database (the chaos cases exercise both on the real stack)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import psycopg
from faust.types import TP

from citywatch.config import load_config
from citywatch.stream.faust_transport import log_went_back
from citywatch.stream.readiness import DatabaseHealth
from citywatch.stream.timers import BrokerWatch
from tests.conftest import DEMO_CONFIG

ALERTS_0 = TP("citywatch.alerts", 0)


def watch_with(answer: str | Exception | None) -> tuple[BrokerWatch, list[str]]:
    restarts: list[str] = []

    async def lost_log() -> str | None:
        if isinstance(answer, Exception):
            raise answer
        return answer

    return BrokerWatch(lost_log, restarts.append), restarts


def test_a_broker_that_lost_its_topics_restarts_the_worker_with_the_reason() -> None:
    """The probe's reason reaches the restart."""
    watch, restarts = watch_with("topics citywatch.alerts had vanished")
    asyncio.run(watch.run())
    assert restarts == ["topics citywatch.alerts had vanished"]


def test_a_broker_that_holds_the_log_or_cannot_answer_restarts_nothing() -> None:
    """No reason, or a broker still down: keep running, ask again at the next tick."""
    for answer in (None, ConnectionError("broker down")):
        watch, restarts = watch_with(answer)
        asyncio.run(watch.run())
        assert restarts == []
    assert watch.failures == 1


def test_a_record_below_the_committed_offset_means_the_log_started_again() -> None:
    """Below what was committed: a new log; at or after it, or nothing committed: a
    record fetched again after a seek, as Faust does on a rebalance."""
    assert log_went_back(ALERTS_0, 5, 369) == (
        "citywatch.alerts[0] delivered offset 5, before the committed 369: the Kafka log"
        " started again"
    )
    assert log_went_back(ALERTS_0, 369, 369) is None
    assert log_went_back(ALERTS_0, 400, 369) is None
    assert log_went_back(ALERTS_0, 0, None) is None


def test_the_health_file_says_down_with_the_error_then_up(tmp_path: Path) -> None:
    """Written on each change of state only, with the outage's error."""
    path = tmp_path / "health" / "stream-app-1.json"
    health = DatabaseHealth(path)
    health.reached()
    assert json.loads(path.read_text())["database"] == "up"
    health.unreachable(psycopg.OperationalError("connection refused"))
    down = json.loads(path.read_text())
    assert (down["database"], down["error"]) == ("down", "OperationalError: connection refused")
    path.unlink()
    health.unreachable(psycopg.OperationalError("still refused"))
    assert not path.exists(), "rewritten at every failed retry"
    health.reached()
    assert json.loads(path.read_text())["database"] == "up"


def test_the_rig_knobs_default_to_a_citys_values() -> None:
    """Mosquitto queues a million messages per client and the retry cap is 30 s unless
    the site says otherwise."""
    services = load_config(DEMO_CONFIG).services
    assert services.mqtt.max_queued_messages == 1_000_000
    assert services.database.retry_max.total_seconds() == 30
