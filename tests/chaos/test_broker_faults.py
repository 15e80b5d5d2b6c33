"""Broker faults heal by themselves (issue 16): the Kafka-protocol broker and Mosquitto
killed and started again by the stack's supervisor, the gateway cut off from Mosquitto,
the bridge killed before Kafka acked, the bridge stopped past Mosquitto's queue limit.
Every case: each alert stored once, one work order per spot, every receipt back."""

from __future__ import annotations

import os
import time

import pytest

from benchmarks import chaos_cases as cases
from benchmarks.chaos_rig import ChaosRig
from tests.chaos.conftest import assert_nothing_lost

pytestmark = [pytest.mark.integration, pytest.mark.slow]

COMMIT_WATCH_S = 5.0
"""How long the worker's log is watched for commit failures after the drain (Faust commits
every few seconds)."""


def test_kafka_broker_kill_9_under_load_heals_without_a_hand_restart(chaos_rig: ChaosRig) -> None:
    """Tansu restarts empty: topics recreated, the worker restarts from the new log, 400/400."""
    result = cases.kafka_broker_kill9(chaos_rig)
    assert_nothing_lost(result, chaos_rig)
    assert "restarting the stream worker" in chaos_rig.logs("app", 500_000)
    # Not still failing: once every receipt is back, no commit fails any more (the log may
    # hold failures from before the restart, and the rejoin's first moments).
    settled = len(chaos_rig.streams["app"].output())
    time.sleep(COMMIT_WATCH_S)
    assert "OffsetCommit failed" not in chaos_rig.streams["app"].output()[settled:]


def test_mosquitto_kill_9_resumes_sessions_and_the_retained_status_is_online(
    chaos_rig: ChaosRig,
) -> None:
    """Mosquitto SIGKILLed mid-burst and restarted by the supervisor: the backlog drains."""
    result = cases.mosquitto_kill9(chaos_rig)
    assert_nothing_lost(result, chaos_rig)
    assert "retained gateway status after the restart: online" in result.notes


def test_a_partition_between_gateway_and_broker_loses_nothing(chaos_rig: ChaosRig) -> None:
    """Bytes vanish both ways for 60 s; what the gateway made meanwhile arrives after."""
    seconds = float(os.environ.get("CITYWATCH_CHAOS_PARTITION_S", "60"))
    result = cases.partition(chaos_rig, seconds)
    assert_nothing_lost(result, chaos_rig)


def test_bridge_kill_9_before_the_kafka_ack_loses_nothing(chaos_rig: ChaosRig) -> None:
    """Unacked QoS 1 messages are delivered again to the restarted bridge."""
    result = cases.bridge_kill9_before_kafka_ack(chaos_rig)
    assert_nothing_lost(result, chaos_rig)


def test_bridge_stopped_past_the_brokers_queue_limit_loses_nothing(chaos_rig: ChaosRig) -> None:
    """Mosquitto drops what exceeds its queue for the stopped bridge; the outbox resends it."""
    result = cases.bridge_stopped_past_queue_limit(chaos_rig)
    assert_nothing_lost(result, chaos_rig)
