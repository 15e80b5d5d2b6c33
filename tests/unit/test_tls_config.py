"""TLS and login settings of every link, from config to the clients' arguments.

MQTT: ``mqtts://`` means TLS and contradictions are refused at load. Kafka: the security
settings reach every aiokafka client and the Faust worker. PostgreSQL: ``sslmode`` and
``sslrootcert`` reach psycopg's conninfo unchanged.
"""

from __future__ import annotations

import re
import ssl
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict
from pydantic import ValidationError

from citywatch.config import CitywatchConfig
from citywatch.config.checks import verify_gateway_tls_needs_a_tls_broker
from citywatch.config.devices import TlsConfig
from citywatch.config.services import DatabaseService, KafkaService, MqttService
from citywatch.stack.endpoints import gateway_tls, resolve_endpoints
from citywatch.stack.tls import EmbeddedCa
from citywatch.stream.bridge import Bridge
from citywatch.stream.kafka_security import kafka_security
from citywatch.stream.settings import stream_settings
from citywatch.tls_client import TlsFilesError, client_context

EXTERNAL_KAFKA = "kafka-1.city.example:9093"


def external(config: CitywatchConfig, **sections: object) -> CitywatchConfig:
    """The demo site with every service external (no stack needed to resolve it)."""
    services = config.services
    update = {
        "mqtt": MqttService(url="mqtts://mqtt.city.example:8883"),
        "kafka": KafkaService(bootstrap=EXTERNAL_KAFKA),
        "database": DatabaseService(url="postgresql://citywatch@db.city.example/citywatch"),
        **sections,
    }
    return config.model_copy(update={"services": services.model_copy(update=update)})


@pytest.fixture
def secrets_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "secrets"
    directory.mkdir()
    for name in ("mqtt-bridge", "gw-sensors-east", "kafka-citywatch"):
        (directory / name).write_text(f"{name}-secret\n")
    monkeypatch.setenv("CITYWATCH_SECRETS_DIR", str(directory))
    return directory


# -- MQTT --------------------------------------------------------------------------------------


def test_mqtts_url_resolves_to_tls_on_port_8883(
    demo_config: CitywatchConfig, tmp_path: Path, secrets_dir: Path
) -> None:
    """The scheme is kept: an mqtts:// URL without a port is TLS on 8883, system CAs."""
    config = external(demo_config, mqtt=MqttService(url="mqtts://mqtt.city.example"))
    endpoints = resolve_endpoints(config, tmp_path)
    assert (endpoints.mqtt_tls, endpoints.mqtt_port, endpoints.mqtt_ca_file) == (True, 8883, None)
    gateway = config.devices.gateways[0]
    assert gateway_tls(gateway, endpoints).tls


def test_bridge_connects_with_tls_to_an_mqtts_broker(
    demo_config: CitywatchConfig, tmp_path: Path, secrets_dir: Path
) -> None:
    """The bridge's MQTT client gets a verifying TLS context from an mqtts:// URL."""
    ca = EmbeddedCa(tmp_path / "ca")
    ca.ensure()
    mqtt = MqttService(url="mqtts://mqtt.city.example:8883", ca_file=str(ca.ca_cert))
    bridge = Bridge(stream_settings(external(demo_config, mqtt=mqtt), tmp_path))
    assert bridge._broker.uses_tls and bridge._broker.tls_ca_file == str(ca.ca_cert)
    context = bridge._client._ssl_context
    assert context is not None and context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize(
    ("settings", "complaint"),
    [
        ({"url": "mqtt://broker:1883", "ca_file": "/etc/ca.pem"}, "is not mqtts://"),
        (
            {"url": "mqtt://broker:1883", "bridge": {"username": "b", "password": "secret:b",
             "cert_file": "/c.pem", "key_file": "/k.pem"}},
            "bridge.cert_file",
        ),
        ({"url": "mqtts://broker:8883", "tls": "embedded"}, "tls: embedded"),
        (
            {"url": "mqtts://broker", "center": {"username": "c", "password": "secret:c",
             "cert_file": "/c.pem"}},
            "cert_file and key_file go together",
        ),
    ],
)  # fmt: skip
def test_contradictory_mqtt_tls_settings_are_refused(settings: dict, complaint: str) -> None:
    """TLS files with a plain URL, or the embedded CA with an external broker: an error."""
    with pytest.raises(ValidationError, match=complaint):
        MqttService.model_validate(settings)


def test_gateway_tls_block_with_a_plain_broker_is_a_config_issue(
    demo_config: CitywatchConfig,
) -> None:
    """A gateway's tls: block is not silently ignored when the broker URL is mqtt://."""
    gateways = list(demo_config.devices.gateways)
    gateways[1] = gateways[1].model_copy(update={"tls": TlsConfig(ca_file="/etc/ca.pem")})
    devices = demo_config.devices.model_copy(update={"gateways": tuple(gateways)})
    plain = demo_config.model_copy(update={"devices": devices})
    issues = verify_gateway_tls_needs_a_tls_broker(plain)
    assert [i.path for i in issues] == [("devices", "gateways", 1, "tls")]
    assert "plain MQTT" in issues[0].message
    assert verify_gateway_tls_needs_a_tls_broker(external(plain)) == []


def test_unreadable_tls_files_name_the_files() -> None:
    """A CA file that does not exist is reported with its path, not a bare errno."""
    with pytest.raises(TlsFilesError, match=re.escape("/nonexistent/ca.pem")):
        client_context("/nonexistent/ca.pem")


# -- Kafka -------------------------------------------------------------------------------------


def test_sasl_ssl_scram_reaches_every_aiokafka_client(
    demo_config: CitywatchConfig, tmp_path: Path, secrets_dir: Path
) -> None:
    """SASL_SSL with SCRAM-SHA-512: protocol, mechanism, login and a verifying TLS context."""
    kafka = KafkaService(
        bootstrap=EXTERNAL_KAFKA, security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
        username="citywatch", password="secret:kafka-citywatch",
    )  # fmt: skip
    settings = stream_settings(external(demo_config, kafka=kafka), tmp_path)
    options = settings.kafka_client_options
    assert options["bootstrap_servers"] == [EXTERNAL_KAFKA]
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "citywatch",
        "kafka-citywatch-secret",
    )
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext) and context.check_hostname


def test_mutual_tls_loads_the_client_certificate(tmp_path: Path) -> None:
    """SSL with a CA and a client certificate: the context trusts the CA, holds the cert."""
    ca = EmbeddedCa(tmp_path / "ca")
    ca.ensure(["citywatch-stream"])
    cert, key = ca.client_files("citywatch-stream")
    kafka = KafkaService(
        bootstrap=EXTERNAL_KAFKA, security_protocol="SSL", ca_file=str(ca.ca_cert),
        cert_file=str(cert), key_file=str(key),
    )  # fmt: skip
    options = kafka_security(kafka, None).aiokafka_kwargs()
    assert options["security_protocol"] == "SSL" and "sasl_mechanism" not in options
    trusted = options["ssl_context"].get_ca_certs()
    assert [dict(x[0] for x in c["subject"])["commonName"] for c in trusted] == [
        "citywatch embedded CA"
    ]


def test_faust_worker_gets_the_same_credentials(tmp_path: Path, secrets_dir: Path) -> None:
    """Faust's broker_credentials turn back into the aiokafka arguments the clients get."""
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    kafka = KafkaService(
        bootstrap=EXTERNAL_KAFKA, security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-256",
        username="citywatch", password="secret:kafka-citywatch",
    )  # fmt: skip
    security = kafka_security(kafka, secrets_dir)
    faust_args = credentials_to_aiokafka_auth(security.faust_credentials())
    ours = security.aiokafka_kwargs()
    for key in ("security_protocol", "sasl_mechanism", "sasl_plain_username", "sasl_plain_password"):
        assert faust_args[key] == ours[key]
    assert isinstance(faust_args["ssl_context"], ssl.SSLContext)
    plain = kafka_security(KafkaService(bootstrap=EXTERNAL_KAFKA), None)
    assert plain.faust_credentials() is None
    assert plain.aiokafka_kwargs() == {"security_protocol": "PLAINTEXT"}


@pytest.mark.parametrize(
    ("settings", "complaint"),
    [
        ({"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN"}, "needs sasl_mechanism"),
        ({"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "username": "u",
          "password": "env:P"}, "in clear"),
        ({"username": "u", "password": "env:P"}, "use SASL_SSL"),
        ({"ca_file": "/ca.pem"}, "security_protocol is PLAINTEXT"),
        ({"security_protocol": "SSL", "cert_file": "/c.pem"}, "go together"),
        ({"bootstrap": "embedded", "security_protocol": "SSL"}, "embedded Kafka"),
    ],
)  # fmt: skip
def test_incomplete_or_unsafe_kafka_security_is_refused(settings: dict, complaint: str) -> None:
    """A SASL login without its parts, PLAIN in clear, TLS files without TLS: an error."""
    with pytest.raises(ValidationError, match=complaint):
        KafkaService.model_validate({"bootstrap": EXTERNAL_KAFKA, **settings})


# -- PostgreSQL --------------------------------------------------------------------------------


def test_sslmode_in_the_database_url_reaches_psycopg_unchanged(
    demo_config: CitywatchConfig, tmp_path: Path, secrets_dir: Path
) -> None:
    """libpq TLS options written in the URL survive the password being added."""
    (secrets_dir / "db").write_text("db-secret\n")
    url = "postgresql://citywatch@db.city.example/citywatch?sslmode=verify-full&sslrootcert=/etc/pg-ca.pem"
    database = DatabaseService(url=url, password="secret:db")
    endpoints = resolve_endpoints(external(demo_config, database=database), tmp_path)
    conninfo = conninfo_to_dict(endpoints.database_url)
    assert conninfo["sslmode"] == "verify-full"
    assert conninfo["sslrootcert"] == "/etc/pg-ca.pem"
    assert conninfo["password"] == "db-secret"


def test_sslmode_knobs_are_added_to_the_conninfo(
    demo_config: CitywatchConfig, tmp_path: Path, secrets_dir: Path
) -> None:
    """services.database.sslmode/sslrootcert become libpq parameters."""
    database = DatabaseService(
        url="postgresql://citywatch@db.city.example/citywatch",
        sslmode="verify-full",
        sslrootcert="/etc/pg-ca.pem",
    )
    endpoints = resolve_endpoints(external(demo_config, database=database), tmp_path)
    conninfo = conninfo_to_dict(endpoints.database_url)
    assert (conninfo["sslmode"], conninfo["sslrootcert"]) == ("verify-full", "/etc/pg-ca.pem")


@pytest.mark.parametrize(
    ("settings", "complaint"),
    [
        ({"url": "embedded", "sslmode": "require"}, "external database"),
        ({"url": "postgresql://h/db", "sslmode": "require", "sslrootcert": "/ca"}, "verify-ca"),
    ],
)
def test_database_tls_settings_that_cannot_apply_are_refused(
    settings: dict, complaint: str
) -> None:
    """sslmode on the loopback-only embedded database, or a root cert nobody checks: error."""
    with pytest.raises(ValidationError, match=complaint):
        DatabaseService.model_validate(settings)
