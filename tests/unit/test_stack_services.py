"""What the embedded stack's services are configured with (no service is started)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from citywatch.stack.binaries import PostgresBinaries
from citywatch.stack.mosquitto import MosquittoService
from citywatch.stack.postgres import PostgresService
from citywatch.stack.service import ProbeFailed, failed_to_bind
from citywatch.stack.tansu import TansuService, _parse_brokers


def test_mosquitto_config_is_loopback_only_and_authenticated(tmp_path: Path) -> None:
    """No anonymous clients, password and ACL files, persistence and a log in the data dir."""
    service = MosquittoService(tmp_path, Path("/usr/sbin/mosquitto"), None, "pw")
    lines = service.render_config(18830).splitlines()
    assert "listener 18830 127.0.0.1" in lines
    assert "allow_anonymous false" in lines
    assert f"password_file {tmp_path}/mosquitto/passwd" in lines
    assert f"acl_file {tmp_path}/mosquitto/acl" in lines
    assert "persistence true" in lines
    assert f"log_dest file {tmp_path}/mosquitto.log" in lines


def test_tansu_listens_and_advertises_the_same_loopback_address(tmp_path: Path) -> None:
    """Clients are sent back to the address they bootstrapped from."""
    argv = TansuService(tmp_path, Path("/bin/tansu"), None).argv(19092)
    assert argv[argv.index("--listener-url") + 1] == "tcp://127.0.0.1:19092"
    assert argv[argv.index("--advertised-listener-url") + 1] == "tcp://127.0.0.1:19092"
    assert argv[argv.index("--storage-engine") + 1] == "memory://tansu/"


def test_tansu_version_comes_from_its_log_banner(tmp_path: Path) -> None:
    """The last banner in the log is the running version."""
    (tmp_path / "tansu.log").write_text("tansu broker 0.5.9\n...\ntansu broker 0.6.0\nready\n")
    assert TansuService(tmp_path, Path("/bin/false"), None).version() == "0.6.0"


def _metadata_v1(correlation_id: int, brokers: list[tuple[int, str, int]]) -> bytes:
    body = struct.pack(">ii", correlation_id, len(brokers))
    for node, host, port in brokers:
        body += struct.pack(">ih", node, len(host)) + host.encode() + struct.pack(">ih", port, -1)
    return body + struct.pack(">ii", 111, 0)  # controller id, no topics


def test_kafka_metadata_response_is_parsed() -> None:
    """The brokers of a Metadata v1 answer, as Tansu 0.6 sends it."""
    response = _metadata_v1(1, [(111, "127.0.0.1", 19092)])
    assert _parse_brokers(response, 1) == [("127.0.0.1", 19092)]


def test_kafka_answer_to_another_request_is_rejected() -> None:
    """A mismatched correlation id is not taken for readiness."""
    with pytest.raises(ProbeFailed, match="correlation"):
        _parse_brokers(_metadata_v1(7, []), 1)


def test_postgres_listens_on_loopback_tcp_only(tmp_path: Path) -> None:
    """No Unix socket (nothing written outside the data dir), loopback TCP on our port."""
    service = PostgresService(tmp_path, PostgresBinaries(Path("/pg/bin"), "system"), None, "pw")
    argv = service.argv(15432)
    assert argv[:5] == ["/pg/bin/postgres", "-D", str(tmp_path / "postgres"), "-p", "15432"]
    assert "listen_addresses=127.0.0.1" in argv
    assert "unix_socket_directories=" in argv


def test_database_url_names_the_citywatch_role_and_database(tmp_path: Path) -> None:
    """The URL the stream and center tiers are given."""
    service = PostgresService(tmp_path, PostgresBinaries(Path("/pg/bin"), "system"), None, "pw")
    assert service.url(5432) == "postgresql://citywatch:pw@127.0.0.1:5432/citywatch"
    assert (
        service.url(5432, with_password=False) == "postgresql://citywatch@127.0.0.1:5432/citywatch"
    )


@pytest.mark.parametrize(
    "log_line",
    [
        "Error: Address already in use",  # mosquitto
        'Error: Io(Os { code: 98, kind: AddrInUse, message: "Address in use" })',  # tansu
        'LOG:  could not bind IPv4 address "127.0.0.1": Address already in use',  # postgres
    ],
)
def test_a_lost_port_race_is_recognised_in_each_services_log(log_line: str) -> None:
    """These failures are retried on a new port instead of failing `up`."""
    assert failed_to_bind(log_line)
