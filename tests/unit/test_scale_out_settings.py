"""Kafka durability from config (issue 21): replication, min ISR, acks and idempotence reach
the topics, the worker and the bridge as ``services.kafka`` says, and a replication factor
the cluster cannot hold is refused with what to change."""

from __future__ import annotations

from pathlib import Path

import pytest

from citywatch.config import CitywatchConfig
from citywatch.stream.faust_transport import worker_options
from citywatch.stream.kafka_admin import ReplicationTooHigh, new_topic, verify_replication
from citywatch.stream.partitioning import key_resolution
from citywatch.stream.settings import StreamSettings


def settings(**kwargs: object) -> StreamSettings:
    base: dict[str, object] = dict(
        kafka_bootstrap="k1:9092,k2:9092,k3:9092", kafka_idempotent=True, database_url="",
        mqtt_host="", mqtt_port=1883, mqtt_username="", mqtt_password="", data_dir=Path("."),
    )  # fmt: skip
    return StreamSettings(**(base | kwargs))  # type: ignore[arg-type]


def test_topics_are_made_with_the_configured_replicas_and_min_isr() -> None:
    """Replication 3 and min.insync.replicas 2 on a 3-broker cluster, 12 partitions."""
    topic = new_topic(
        settings(partitions=12, replication_factor=3, min_insync_replicas=2), "city.alerts"
    )
    assert (topic.num_partitions, topic.replication_factor) == (12, 3)
    assert topic.topic_configs == {"min.insync.replicas": "2"}


def test_more_replicas_than_brokers_is_refused_saying_what_to_change() -> None:
    """Three copies on one broker: the message names the setting and the broker count."""
    verify_replication(settings(replication_factor=3), 3)
    with pytest.raises(ReplicationTooHigh, match=r"replication_factor is 3 .* has 1 broker"):
        verify_replication(settings(replication_factor=3), 1)


def test_the_worker_takes_partitions_replication_and_acks_from_settings() -> None:
    """Faust's topic defaults and producer acks follow the settings (acks 1 → 1, all → -1)."""
    leader_only = settings(acks=1, replication_factor=3, partitions=24)
    options = worker_options(
        partitions=leader_only.partitions, session_timeout_s=10, data_dir=Path("."),
        replication_factor=leader_only.replication_factor,
        producer_acks=leader_only.producer_acks,
    )  # fmt: skip
    assert (options["topic_partitions"], options["topic_replication_factor"]) == (24, 3)
    assert options["producer_acks"] == 1
    assert settings().producer_acks == -1


def test_demo_settings_key_alerts_at_the_resolution_of_their_radius(
    demo_config: CitywatchConfig,
) -> None:
    """The demo's kafka section and its 300 m smoke radius, resolved for the stream tier."""
    kafka = demo_config.services.kafka
    assert (kafka.replication_factor, kafka.min_insync_replicas, kafka.acks) == (1, 1, "all")
    assert kafka.partitions == 12
    assert key_resolution(demo_config.workflow.dedup.values()) == 6
