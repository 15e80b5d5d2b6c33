"""A private embedded stack for one benchmark run: citywatch's own Mosquitto, Kafka-protocol
broker and PostgreSQL, with the same binaries and server settings as ``citywatch stack up``,
in a temporary directory, started and stopped through the stack's public API
(``embedded_stack``, ``EmbeddedStack.up``/``down``), the schema migrated. A benchmark never
touches a stack someone else is using, and leaves nothing behind.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness import console
from citywatch.config import CitywatchConfig
from citywatch.stack import EmbeddedStack, MqttAccount, StackInfo
from citywatch.stack.binaries import choose_postgres
from citywatch.stack.endpoints import Endpoints, embedded_stack, resolve_endpoints
from citywatch.stack.ports import LOOPBACK
from citywatch.stream.migrate import migrate


@dataclass(frozen=True)
class PrivateStack:
    """The running stack: its directory, its services and the endpoints clients take."""

    data_dir: Path
    info: StackInfo
    endpoints: Endpoints

    def postgres_facts(self) -> dict[str, object]:
        """Which PostgreSQL served the run, for the results file."""
        service = self.info.service("postgres")
        return {
            "version": service.version,
            "binaries": choose_postgres().source,
            "pid": service.pid,
            "settings": "the embedded stack's (citywatch.stack), private to this run",
        }


@contextmanager
def private_stack(
    config: CitywatchConfig | None = None, accounts: Sequence[MqttAccount] = ()
) -> Iterator[PrivateStack]:
    """The embedded stack, up and migrated for the ``with`` block; its MQTT accounts are
    ``config``'s (gateways, bridge, center), or else ``accounts``."""
    # Not under a 0700 temporary root: the services drop root for their own users, who must
    # be able to reach the data directory.
    data_dir = Path(tempfile.mkdtemp(prefix="citywatch-bench-"))
    data_dir.chmod(0o711)
    if config is not None:
        launcher = embedded_stack(config, data_dir)
    else:
        launcher = EmbeddedStack(data_dir / "stack", accounts)
    try:
        with console.status("starting a private embedded stack…"):
            info = launcher.up(timeout_s=90)
            if config is not None:
                endpoints = resolve_endpoints(config, data_dir)
            else:
                endpoints = Endpoints(
                    mqtt_host=LOOPBACK, mqtt_port=info.service("mqtt").port,
                    kafka_bootstrap=info.kafka_bootstrap, kafka_idempotent=info.kafka_idempotent,
                    database_url=info.database_url, secrets_dir=data_dir / "secrets",
                )  # fmt: skip
            migrate(endpoints.database_url)
        yield PrivateStack(data_dir, info, endpoints)
    finally:
        launcher.down()
        shutil.rmtree(data_dir, ignore_errors=True)
