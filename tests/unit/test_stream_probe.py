"""Why a live stream does not open, asked of real local servers: an RTSP server answering
404 or demanding Digest credentials, an HTTP camera answering 404 or 401, a port nobody
listens on, and a server that accepts the connection and never answers."""

from __future__ import annotations

import hashlib
import re
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from citywatch.edge.camera.stream_probe import why_unreachable


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RtspResponder:
    """A minimal RTSP server: every request answered with ``status``; with credentials set,
    requests without the right Digest answer get 401 and a challenge first."""

    REALM, NONCE = "citywatch", "5eed"

    def __init__(self, status: int, user: str | None = None, password: str = "") -> None:
        self.status, self.user, self.password = status, user, password
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen()
        self.port = int(self._sock.getsockname()[1])
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def url(self, path: str = "live", userinfo: str = "") -> str:
        return f"rtsp://{userinfo}127.0.0.1:{self.port}/{path}"

    def close(self) -> None:
        self._sock.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while True:
                try:
                    chunk = conn.recv(4096)
                except OSError:
                    return
                if not chunk:
                    return
                data += chunk
                while b"\r\n\r\n" in data:
                    head, data = data.split(b"\r\n\r\n", 1)
                    conn.sendall(self._reply(head.decode("latin-1")).encode())

    def _reply(self, request: str) -> str:
        method, uri = request.split(" ")[:2]
        cseq = re.search(r"CSeq: *(\d+)", request)
        lines = [f"CSeq: {cseq.group(1) if cseq else 0}"]
        status = self.status
        if self.user is not None and not self._authorized(request, method, uri):
            status = 401
            lines.append(f'WWW-Authenticate: Digest realm="{self.REALM}", nonce="{self.NONCE}"')
        reason = {200: "OK", 401: "Unauthorized", 404: "Not Found"}.get(status, "Error")
        return f"RTSP/1.0 {status} {reason}\r\n" + "\r\n".join(lines) + "\r\n\r\n"

    def _authorized(self, request: str, method: str, uri: str) -> bool:
        answer = re.search(r'response="(\w+)"', request)

        def md5(text: str) -> str:
            return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()

        ha1 = md5(f"{self.user}:{self.REALM}:{self.password}")
        expected = md5(f"{ha1}:{self.NONCE}:{md5(f'{method}:{uri}')}")
        return answer is not None and answer.group(1) == expected


class HttpStatus:
    """An HTTP server answering every GET with one status code."""

    def __init__(self, status: int) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(status)
                if status == 401:
                    self.send_header("WWW-Authenticate", 'Basic realm="cam"')
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def rtsp_404() -> Iterator[RtspResponder]:
    server = RtspResponder(404)
    yield server
    server.close()


@pytest.fixture
def rtsp_locked() -> Iterator[RtspResponder]:
    server = RtspResponder(200, user="admin", password="right")
    yield server
    server.close()


def test_a_wrong_rtsp_path_is_named_as_such(rtsp_404: RtspResponder) -> None:
    """The server's 404 becomes the reason, with what to check."""
    reason = why_unreachable(rtsp_404.url("nope"))
    assert reason.startswith("RTSP 404 from rtsp://127.0.0.1:")
    assert "check the path" in reason


@pytest.mark.parametrize(
    ("userinfo", "expected"),
    [
        ("", "RTSP 401"),
        ("admin:wrong@", "RTSP 401"),
        ("admin:right@", "answers (RTSP 200)"),
    ],
    ids=["no-credentials", "wrong-password", "right-password"],
)
def test_rtsp_credentials_are_tried_as_the_server_asks(
    rtsp_locked: RtspResponder, userinfo: str, expected: str
) -> None:
    """Digest credentials from the URL are answered; only wrong ones are called wrong, and
    the password never appears in the reason."""
    reason = why_unreachable(rtsp_locked.url(userinfo=userinfo))
    assert expected in reason
    assert "admin" not in reason and "right" not in reason and "wrong@" not in reason


def test_a_port_nobody_listens_on_is_refused() -> None:
    """Nothing on the port: the connection is refused, said so with host and port."""
    port = _free_port()
    assert why_unreachable(f"rtsp://127.0.0.1:{port}/live") == (
        f"connection refused by 127.0.0.1:{port}: no RTSP server listens there"
    )


def test_a_server_that_never_answers_times_out() -> None:
    """A connection accepted but never answered is a timeout, within the probe's limit."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        reason = why_unreachable(f"rtsp://127.0.0.1:{port}/live", timeout_s=0.3)
    assert reason.startswith(f"no answer from 127.0.0.1:{port} within 0.3 s")


@pytest.mark.parametrize(
    ("status", "expected"),
    [(404, "HTTP 404"), (401, "HTTP 401"), (200, "answers (HTTP 200)")],
    ids=["not-found", "unauthorized", "ok-but-no-video"],
)
def test_http_camera_answers_are_named(status: int, expected: str) -> None:
    """An HTTP camera's status code becomes the reason."""
    server = HttpStatus(status)
    try:
        assert expected in why_unreachable(f"http://127.0.0.1:{server.port}/stream.mjpg")
    finally:
        server.close()
