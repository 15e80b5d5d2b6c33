"""The pipeline's Kafka topics, created where they are missing.

The bridge and the stream worker both call :func:`ensure_topics` before they start: the
worker subscribes to its topics when it joins its group, and a topic that does not exist
yet would only be picked up at the next metadata refresh (minutes).
"""

from __future__ import annotations

import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from citywatch.contracts import KafkaTopics
from citywatch.stream.settings import StreamSettings

log = logging.getLogger(__name__)


async def ensure_topics(settings: StreamSettings, topics: KafkaTopics) -> None:
    """Create the pipeline's topics if they are missing (idempotent)."""
    admin = AIOKafkaAdminClient(**settings.kafka_client_options)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, num_partitions=settings.partitions, replication_factor=1)
            for name in topics.all()
            if name not in existing
        ]
        if missing:
            # Another bridge or worker may win the race.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
            log.info("created Kafka topics %s", [t.name for t in missing])
    finally:
        await admin.close()
