"""The pipeline's Kafka topics, created where they are missing, and the check that tells a
worker its broker lost its log.

Topics are made as ``services.kafka`` says (partitions, replication factor, topic config
``min.insync.replicas``); a replication factor above the cluster's broker count is refused
here with what to change, before the broker answers with a bare error code.

The bridge and the stream worker both call :func:`ensure_topics` before they start: the
worker subscribes to its topics when it joins its group, and a topic that does not exist
yet would only be picked up at the next metadata refresh (minutes). Creating a topic that
another client created meanwhile (a second bridge, a producer's auto-creation) is success,
not an error: each topic's answer is read, and only a real refusal raises.

A Kafka-protocol broker can lose its log: the embedded one keeps it in memory and restarts
empty; a real cluster can lose a topic. :class:`BrokerProbe` notices it from outside the
consumer (a pipeline topic missing), recreates the topics, and says why, so the worker can
start again from what the broker holds now (see :class:`citywatch.stream.timers.BrokerWatch`;
a log that restarted under topics someone already recreated shows in the consumer itself,
see :func:`citywatch.stream.faust_transport.log_went_back`). End offsets are no evidence:
Tansu's ListOffsets answers counts below the offsets it hands out.
"""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import for_code

from citywatch.contracts import KafkaTopics
from citywatch.stream.settings import StreamSettings

log = logging.getLogger(__name__)
_NO_ERROR = 0
_TOPIC_ALREADY_EXISTS = 36


class TopicCreationRefused(RuntimeError):
    """The broker refused to create a pipeline topic for a reason other than its existing."""


class ReplicationTooHigh(TopicCreationRefused):
    """More copies of each partition were asked for than the cluster has brokers."""


def verify_replication(settings: StreamSettings, brokers: int) -> None:
    """``services.kafka.replication_factor`` fits a cluster of ``brokers`` (a broker
    refuses the topic otherwise, with a code that does not say why)."""
    if settings.replication_factor > brokers:
        raise ReplicationTooHigh(
            f"services.kafka.replication_factor is {settings.replication_factor} but the Kafka"
            f" cluster at {settings.kafka_bootstrap} has {brokers} broker(s): lower it to at"
            f" most {brokers} (and min_insync_replicas to at most that), or add brokers"
        )


def new_topic(settings: StreamSettings, name: str) -> NewTopic:
    """A pipeline topic as ``services.kafka`` describes it: partitions, replicas, min ISR."""
    return NewTopic(
        name,
        num_partitions=settings.partitions,
        replication_factor=settings.replication_factor,
        topic_configs={"min.insync.replicas": str(settings.min_insync_replicas)},
    )


async def create_missing(
    admin: AIOKafkaAdminClient, settings: StreamSettings, names: list[str]
) -> list[str]:
    """Create the topics of ``names`` that the broker does not list; the ones created.

    Another client may create one between the listing and the request (its answer is then
    "already exists"): that topic is there, which is all that was asked.
    """
    existing = set(await admin.list_topics())
    missing = [name for name in names if name not in existing]
    if not missing:
        return []
    cluster = await admin.describe_cluster()
    verify_replication(settings, len(cluster.get("brokers") or ()))
    response = await admin.create_topics([new_topic(settings, name) for name in missing])
    created, refused = [], []
    for topic_error in response.topic_errors:
        name, code = topic_error[0], topic_error[1]
        if code == _NO_ERROR:
            created.append(name)
        elif code != _TOPIC_ALREADY_EXISTS:
            refused.append(f"{name}: {for_code(code).__name__}")
    if refused:
        raise TopicCreationRefused(
            f"the Kafka broker refused to create {', '.join(refused)}; create them by hand"
            f" with {settings.partitions} partitions, replication {settings.replication_factor}"
            f" and min.insync.replicas {settings.min_insync_replicas}, or fix the broker's"
            " permissions"
        )
    if created:
        log.info("created Kafka topics %s", created)
    return created


async def ensure_topics(settings: StreamSettings, topics: KafkaTopics) -> None:
    """Create the pipeline's topics if they are missing (idempotent)."""
    admin = AIOKafkaAdminClient(**settings.kafka_client_options)
    await admin.start()
    try:
        await create_missing(admin, settings, list(topics.all()))
    finally:
        await admin.close()


class BrokerProbe:
    """Asks the broker whether the pipeline's topics are still there (see the module doc).

    Its client is opened at the first check and opened again after one fails (the broker
    was down), so a check never waits on a client the broker no longer knows.
    """

    def __init__(self, settings: StreamSettings, topics: list[str]) -> None:
        self.settings, self.topics = settings, topics
        self._admin: AIOKafkaAdminClient | None = None

    async def lost_log(self) -> str | None:
        """Why the broker no longer holds the worker's log, or None while it does.
        Missing topics are created again before this returns."""
        try:
            if self._admin is None:
                self._admin = AIOKafkaAdminClient(**self.settings.kafka_client_options)
                await self._admin.start()
            created = await create_missing(self._admin, self.settings, self.topics)
        except Exception:
            await self.close()  # the broker is down or restarting: ask again next time
            raise
        if created:
            return f"topics {', '.join(sorted(created))} had vanished from the Kafka broker"
        return None

    async def close(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            try:
                await admin.close()
            except Exception as exc:  # closing a client of a dead broker: nothing to keep
                log.debug("closing the probe's Kafka admin client: %s", exc)
