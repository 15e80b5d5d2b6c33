"""How the stream tier's Kafka clients authenticate and encrypt: one value, two forms.

A real Kafka cluster takes ``SSL`` (TLS, optionally mutual) or ``SASL_SSL`` (SCRAM or
PLAIN over TLS); the embedded broker takes plain connections on loopback. Every aiokafka
client the stream tier builds (bridge producer and consumer, topic admin) is given
:meth:`KafkaSecurity.aiokafka_kwargs`, and the Faust worker the same settings as its
``broker_credentials`` (:meth:`KafkaSecurity.faust_credentials`), so no client is left in
plaintext by accident. TLS contexts verify the broker's host name (there is no knob to
skip it) against ``ca_file`` or the system CAs.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from citywatch.config.secrets import resolve_secret
from citywatch.config.services import KafkaService
from citywatch.tls_client import client_context

__all__ = ["PLAINTEXT", "KafkaSecurity", "kafka_security"]


@dataclass(frozen=True)
class KafkaSecurity:
    """Resolved Kafka security settings (the SASL password read from its secret)."""

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    def ssl_context(self) -> ssl.SSLContext | None:
        """The verifying client context, or None for an unencrypted protocol."""
        if not self.uses_tls:
            return None
        return client_context(self.ca_file, self.cert_file, self.key_file)

    def aiokafka_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for AIOKafkaProducer, AIOKafkaConsumer and AIOKafkaAdminClient."""
        kwargs: dict[str, Any] = {"security_protocol": self.protocol}
        context = self.ssl_context()
        if context is not None:
            kwargs["ssl_context"] = context
        if self.uses_sasl:
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.username
            kwargs["sasl_plain_password"] = self.password
        return kwargs

    def faust_credentials(self) -> Any:
        """Faust's ``broker_credentials`` for these settings (None: plaintext).

        Faust turns them back into the same aiokafka arguments for the worker's consumer
        and producer (``credentials_to_aiokafka_auth``).
        """
        from faust.auth import SASLCredentials, SSLCredentials  # the worker's extra only

        context = self.ssl_context()
        if self.uses_sasl:
            return SASLCredentials(
                username=self.username,
                password=self.password,
                ssl_context=context,
                mechanism=self.sasl_mechanism,
            )
        if context is not None:
            return SSLCredentials(context)
        return None


PLAINTEXT = KafkaSecurity()


def kafka_security(kafka: KafkaService, secrets_dir: Path | None) -> KafkaSecurity:
    """The ``services.kafka`` security settings with the SASL password resolved."""
    password = resolve_secret(kafka.password, secrets_dir) if kafka.password else None
    return KafkaSecurity(
        protocol=kafka.security_protocol,
        sasl_mechanism=kafka.sasl_mechanism,
        username=kafka.username,
        password=password,
        ca_file=kafka.ca_file,
        cert_file=kafka.cert_file,
        key_file=kafka.key_file,
    )
