"""Tansu, the embedded Kafka-protocol broker: command line, readiness and version.

Tansu runs with in-memory storage: topics vanish when it stops, which suits a single-machine
stack whose durable state lives in PostgreSQL. That storage refuses InitProducerId, so
idempotent (and transactional) producers do not work against it; the launcher reports this
as `StackInfo.kafka_idempotent = False` and producers must set `enable_idempotence=False`.
"""

from __future__ import annotations

import re
import signal
import socket
import struct
import subprocess
from pathlib import Path

from citywatch.stack.ports import LOOPBACK
from citywatch.stack.processes import ServiceUser
from citywatch.stack.service import ProbeFailed

#: In-memory storage supports no idempotent producers (InitProducerId is refused).
SUPPORTS_IDEMPOTENCE = False

_METADATA_API_KEY = 3
_METADATA_VERSION = 1
_PROBE_TIMEOUT_S = 1.0  # per attempt; the launcher retries until its deadline
_BANNER = re.compile(r"^tansu broker (\S+)", re.MULTILINE)


class TansuService:
    """The `kafka` service of the stack."""

    name = "kafka"
    stop_signal = signal.SIGTERM
    # Tansu can take seconds to stop on SIGTERM; its memory storage has nothing to flush,
    # so a short grace before SIGKILL loses nothing and keeps `down` fast.
    stop_grace_s = 3.0

    def __init__(self, data_dir: Path, program: Path, run_as: ServiceUser | None) -> None:
        self.program = program
        self.run_as = run_as
        self.log_path = data_dir / "tansu.log"

    def prepare(self, port: int) -> None:
        """Nothing to prepare: memory storage needs no files."""

    def argv(self, port: int) -> list[str]:
        url = self.marker(port)
        return [
            str(self.program),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]

    def marker(self, port: int) -> str:
        return f"tcp://{LOOPBACK}:{port}"

    def probe(self, port: int) -> None:
        brokers = fetch_broker_addresses(port)
        if (LOOPBACK, port) not in brokers:
            raise ProbeFailed(f"metadata from port {port} advertises {brokers}, not itself")

    def version(self) -> str:
        """From the log banner ("tansu broker 0.6.0"), else from `tansu -V`."""
        try:
            found = _BANNER.findall(self.log_path.read_text(errors="replace"))
        except FileNotFoundError:
            found = []
        if found:
            return str(found[-1])
        result = subprocess.run(
            [str(self.program), "-V"], capture_output=True, text=True, check=False, timeout=10
        )
        return result.stdout.strip().rsplit(" ", 1)[-1] or "unknown"


def fetch_broker_addresses(port: int, host: str = LOOPBACK) -> list[tuple[str, int]]:
    """Send a Kafka Metadata (v1) request, as any client's bootstrap does; return its brokers.

    Done over a raw socket so the stack does not need a Kafka client library installed.
    """
    client_id = b"citywatch-health"
    correlation_id = 1
    header = struct.pack(
        ">hhih", _METADATA_API_KEY, _METADATA_VERSION, correlation_id, len(client_id)
    )
    body = struct.pack(">i", 0)  # an empty topic list: brokers only
    request = header + client_id + body
    try:
        with socket.create_connection((host, port), timeout=_PROBE_TIMEOUT_S) as sock:
            sock.sendall(struct.pack(">i", len(request)) + request)
            size = struct.unpack(">i", _read_exactly(sock, 4))[0]
            response = _read_exactly(sock, size)
    except OSError as exc:
        raise ProbeFailed(f"cannot get Kafka metadata from {host}:{port}: {exc}") from exc
    return _parse_brokers(response, correlation_id)


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed mid-response")
        data += chunk
    return bytes(data)


def _parse_brokers(response: bytes, correlation_id: int) -> list[tuple[str, int]]:
    """Brokers of a Metadata v1 response: [node_id int32, host string, port int32, rack]."""
    try:
        got_id, count = struct.unpack_from(">ii", response, 0)
        if got_id != correlation_id:
            raise ProbeFailed(f"Kafka answered correlation id {got_id}, not {correlation_id}")
        offset = 8
        brokers = []
        for _ in range(count):
            _node, host_len = struct.unpack_from(">ih", response, offset)
            offset += 6
            host = response[offset : offset + host_len].decode()
            offset += host_len
            (port,) = struct.unpack_from(">i", response, offset)
            offset += 4
            (rack_len,) = struct.unpack_from(">h", response, offset)
            offset += 2 + max(rack_len, 0)
            brokers.append((host, port))
    except struct.error as exc:
        raise ProbeFailed(f"malformed Kafka metadata response: {exc}") from exc
    return brokers
