"""The chaos suite's TCP proxy: relays both ways, a cut makes bytes vanish without closing
anything, a restore closes what lived through the cut and relays again."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from benchmarks.chaos_proxy import TcpProxy


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    def echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(1024):
                conn.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    server.close()


def roundtrip(port: int, payload: bytes, timeout_s: float = 1.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(payload)
        try:
            return sock.recv(1024)
        except TimeoutError:
            return b""


def test_bytes_flow_until_the_cut_vanish_during_it_and_flow_after(echo_port: int) -> None:
    """Echoed through the proxy; nothing back while cut (no error either); echoed again."""
    proxy = TcpProxy(echo_port)
    try:
        assert roundtrip(proxy.port, b"before") == b"before"
        held = socket.create_connection(("127.0.0.1", proxy.port), timeout=0.5)
        proxy.cut()
        assert roundtrip(proxy.port, b"during", timeout_s=0.5) == b""
        held.sendall(b"lost")
        with pytest.raises(TimeoutError):
            held.recv(16)
        proxy.restore()
        assert held.recv(16) == b"", "a connection that lived through the cut is closed"
        held.close()
        assert roundtrip(proxy.port, b"after") == b"after"
    finally:
        proxy.close()
