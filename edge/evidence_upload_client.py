"""The HTTP side of evidence upload: one file to the center's ``/ingest/v1/evidence``, in
chunks, resuming where the center's copy ends (see :mod:`citywatch.center.routes_ingest`
for the protocol). Standard library only: a gateway installs no HTTP client for this.
"""

from __future__ import annotations

import base64
import http.client
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["CenterUploadClient", "UploadFailed", "UploadRefused"]

_PERMANENT = {413, 422}
"""Answers that a retry cannot change: too large, or the file no longer matches its hash."""


class UploadFailed(Exception):
    """A try failed but may succeed later (network, 5xx, 429, a refused login)."""


class UploadRefused(Exception):
    """The center will never take this file (too large, or bytes not matching the hash)."""


@dataclass
class CenterUploadClient:
    """Uploads files to one center as one gateway (HTTP Basic with its broker account)."""

    center_url: str
    username: str
    password: Callable[[], str]
    """Read at each request: a rotated secret applies at once."""
    chunk_bytes: int = 1024 * 1024
    timeout_s: float = 30.0
    ca_file: str | None = None

    def _connection(self) -> http.client.HTTPConnection:
        parts = urlsplit(self.center_url)
        host, port = parts.hostname or "localhost", parts.port
        if parts.scheme == "https":
            context = ssl.create_default_context(cafile=self.ca_file)
            return http.client.HTTPSConnection(host, port, timeout=self.timeout_s, context=context)
        return http.client.HTTPConnection(host, port, timeout=self.timeout_s)

    def _headers(self) -> dict[str, str]:
        login = base64.b64encode(f"{self.username}:{self.password()}".encode()).decode()
        return {"Authorization": f"Basic {login}"}

    def upload(self, path: Path, sha256: str) -> int:
        """Send ``path`` as ``sha256``, resuming where the center's copy ends; returns the
        bytes sent by this call. Raises :class:`UploadFailed` or :class:`UploadRefused`."""
        url = f"{urlsplit(self.center_url).path.rstrip('/')}/ingest/v1/evidence/{sha256}"
        size = path.stat().st_size
        sent = 0
        connection = self._connection()
        try:
            status, offset, complete = self._request(connection, "HEAD", url, {}, b"")
            if status != 200:
                raise UploadFailed(f"the center answered HEAD with {status}")
            with path.open("rb") as file:
                while not complete:
                    file.seek(offset)
                    chunk = file.read(self.chunk_bytes)
                    headers = {"Upload-Offset": str(offset), "Upload-Length": str(size),
                               "Content-Type": "application/offset+octet-stream"}  # fmt: skip
                    status, offset, complete = self._request(
                        connection, "PATCH", url, headers, chunk
                    )
                    if status == 204:
                        sent += len(chunk)
                    elif status != 409:  # 409: resume from the offset the center gave
                        raise UploadFailed(f"the center answered {status}")
        except (OSError, http.client.HTTPException) as exc:
            raise UploadFailed(f"cannot reach the center at {self.center_url}: {exc}") from exc
        finally:
            connection.close()
        return sent

    def _request(
        self,
        connection: http.client.HTTPConnection,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes,
    ) -> tuple[int, int, bool]:
        """(status, Upload-Offset, Upload-Complete) of one request."""
        connection.request(method, url, body=body or None, headers=self._headers() | headers)
        response = connection.getresponse()
        detail = response.read().decode(errors="replace")[:300]
        if response.status in _PERMANENT:
            raise UploadRefused(f"the center refused the file ({response.status}): {detail}")
        if response.status in (401, 403):
            raise UploadFailed(
                f"the center refused the gateway's login ({response.status}): {detail};"
                " check credentials.password and that the center can read that secret"
            )
        if response.status not in (200, 204, 409):
            raise UploadFailed(f"the center answered {response.status}: {detail}")
        offset = int(response.getheader("Upload-Offset") or 0)
        return response.status, offset, response.getheader("Upload-Complete") == "?1"
