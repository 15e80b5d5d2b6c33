"""Why a live camera stream does not open, in words an operator can act on.

OpenCV's FFmpeg backend says only that a stream did not open; the reason (a refused
connection, a wrong path, wrong credentials, a server that does not answer) goes to
FFmpeg's own log without the camera's id. After a failed open the camera's source asks
the server itself, once, with the same URL: an RTSP ``DESCRIBE`` (with the URL's
credentials, Basic or Digest as the server asks) or an HTTP ``GET``, and turns the answer
into the reason shown in the camera's status ``detail``.
"""

from __future__ import annotations

import base64
import hashlib
import re
import socket
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from citywatch.hardware.camera.video_source import redact_url

__all__ = ["why_unreachable"]

_RTSP_PORT = 554
_HINTS = {
    401: "wrong or missing credentials in source.url",
    403: "the camera refuses this user",
    404: "no stream at this path: check the path in source.url",
    454: "no such session",
    503: "the camera is busy (too many clients?)",
}


def why_unreachable(url: str, timeout_s: float = 2.0) -> str:
    """The reason ``url`` gives no video, probed within about ``timeout_s``; credentials
    never appear in it."""
    parts = urlsplit(url)
    if parts.hostname is None:
        return f"{redact_url(url)} names no host"
    scheme = parts.scheme.lower()
    if scheme in ("rtsp", "rtsps"):
        return _rtsp(url, timeout_s)
    if scheme in ("http", "https"):
        return _http(url, timeout_s)
    return f"cannot open {redact_url(url)}"


def _rtsp(url: str, timeout_s: float) -> str:
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or _RTSP_PORT
    where = f"{host}:{port}"
    bare = redact_url(url, keep_user=False)
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as conn:
            conn.settimeout(timeout_s)
            status, headers = _describe(conn, bare, 1, None)
            if status == 401 and parts.username is not None:
                auth = _authorization(headers, parts.username, parts.password or "", bare)
                if auth is not None:
                    status, headers = _describe(conn, bare, 2, auth)
    except socket.gaierror:
        return f"cannot resolve host {host!r} of {bare}"
    except ConnectionRefusedError:
        return f"connection refused by {where}: no RTSP server listens there"
    except TimeoutError:
        return f"no answer from {where} within {timeout_s:g} s: camera off or unreachable"
    except OSError as exc:
        return f"cannot reach {where}: {exc.strerror or exc}"
    except ValueError as exc:
        return f"{where} does not speak RTSP: {exc}"
    if status == 200:
        return f"{bare} answers (RTSP 200) but gave no decodable video: check the codec"
    hint = _HINTS.get(status, "the camera refused the stream")
    return f"RTSP {status} from {bare}: {hint}"


def _describe(
    conn: socket.socket, url: str, cseq: int, authorization: str | None
) -> tuple[int, dict[str, str]]:
    """Send one DESCRIBE; the status code and headers of the answer."""
    lines = [f"DESCRIBE {url} RTSP/1.0", f"CSeq: {cseq}", "Accept: application/sdp"]
    if authorization is not None:
        lines.append(f"Authorization: {authorization}")
    conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    status_line, *header_lines = head.split("\r\n")
    match = re.match(r"RTSP/\d\.\d (\d{3})", status_line)
    if match is None:
        raise ValueError(f"answered {status_line[:60]!r}")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    return int(match.group(1)), headers


def _authorization(headers: dict[str, str], user: str, password: str, url: str) -> str | None:
    """The Authorization header answering the server's challenge (Basic or Digest)."""
    challenge = headers.get("www-authenticate", "")
    if challenge.lower().startswith("basic"):
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    if not challenge.lower().startswith("digest"):
        return None
    fields = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
    realm, nonce = fields.get("realm", ""), fields.get("nonce", "")

    def md5(text: str) -> str:
        return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()

    response = md5(f"{md5(f'{user}:{realm}:{password}')}:{nonce}:{md5(f'DESCRIBE:{url}')}")
    return (
        f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{url}",'
        f' response="{response}"'
    )


def _http(url: str, timeout_s: float) -> str:
    parts = urlsplit(url)
    where = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
    bare = redact_url(url, keep_user=False)
    request = urllib.request.Request(url, method="GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        hint = _HINTS.get(exc.code, "the camera refused the stream")
        return f"HTTP {exc.code} from {bare}: {hint}"
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, ConnectionRefusedError):
            return f"connection refused by {where}: no server listens there"
        if isinstance(reason, TimeoutError | socket.timeout):
            return f"no answer from {where} within {timeout_s:g} s: camera off or unreachable"
        if isinstance(reason, socket.gaierror):
            return f"cannot resolve host {parts.hostname!r} of {bare}"
        return f"cannot reach {where}: {reason}"
    except TimeoutError:
        return f"no answer from {where} within {timeout_s:g} s: camera off or unreachable"
    except OSError as exc:
        return f"cannot reach {where}: {exc}"
    return f"{bare} answers (HTTP {status}) but gave no decodable video: check the format"
