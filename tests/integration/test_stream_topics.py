"""A stream worker started before any bridge creates the pipeline's Kafka topics itself: it
subscribes when it joins its group, and a topic made later would only be seen at the next
metadata refresh (minutes)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from citywatch.contracts import KafkaTopics
from citywatch.stack.child import CliProcess
from tests.conftest import DEMO_CONFIG, REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def topics_of(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


def test_a_worker_alone_creates_its_topics(stack, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    prefix = f"solo{uuid.uuid4().hex[:6]}"
    site = tmp_path / "site.yaml"  # the demo site under topic names no bridge has made
    site.write_text(
        f"include:\n  - {os.path.relpath(DEMO_CONFIG, tmp_path)}\n"
        f"services:\n  kafka:\n    topic_prefix: {prefix}\n"
    )
    wanted = set(KafkaTopics(prefix).all())
    assert not wanted & asyncio.run(topics_of(stack.endpoints.kafka_bootstrap))
    env = {"CITYWATCH_DATA_DIR": str(stack.data_dir), "CITYWATCH_CONFIG": str(site)}
    worker = CliProcess(["stream", "app"], tmp_path / "app.log", env, cwd=REPO)
    try:
        deadline = time.monotonic() + 60
        while not wanted <= asyncio.run(topics_of(stack.endpoints.kafka_bootstrap)):
            assert worker.process.poll() is None, worker.output()[-3000:]
            assert time.monotonic() < deadline, worker.output()[-3000:]
            time.sleep(0.5)
    finally:
        worker.stop()
