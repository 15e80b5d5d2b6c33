"""Where gateways upload evidence (``/ingest/v1/evidence/{sha256}``), with their own broker
credentials, not a person's token.

A gateway authenticates with HTTP Basic: its broker username and the password its
``credentials.password`` secret holds, the same account the broker knows it by (the center
resolves the secret as the embedded stack does; a rotated secret applies at once). Failed
logins count against the client address as the API's do (429 with Retry-After when used
up). These paths are outside ``/api/``: the API's gate, which knows only people's tokens,
does not see them; their own bound is a number of uploads served at once (503 past it).

The protocol is a small tus-like one over the store of :mod:`.evidence_upload`:

* ``HEAD`` → ``Upload-Offset`` (bytes stored) and ``Upload-Complete`` (``?1`` / ``?0``);
* ``PATCH`` with ``Upload-Offset`` (where this chunk starts) and ``Upload-Length`` (the whole
  file) → 204 with the new ``Upload-Offset``; 409 with the stored offset when the chunk
  does not start there; 413 past the size limit; 422 when the complete file's SHA-256 is not
  its name (the partial file is gone: upload it again).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Path, Request, Response, status
from starlette.concurrency import run_in_threadpool

from citywatch.center.deps import State
from citywatch.center.evidence_upload import UploadError, UploadStore, store_of
from citywatch.center.throttle import retry_after
from citywatch.config.devices import Gateway
from citywatch.config.secrets import SecretError, resolve_secret

log = logging.getLogger(__name__)
router = APIRouter(prefix="/ingest/v1", tags=["ingest"])

MAX_CHUNK_BYTES = 64 * 1024 * 1024
"""Largest body of one PATCH (a gateway sends chunk_kb at a time, at most 64 MiB)."""
Sha256 = Annotated[str, Path(min_length=64, max_length=64, description="the file's SHA-256")]
_CHALLENGE = {"WWW-Authenticate": 'Basic realm="citywatch gateways"'}


@dataclass
class _Ingest:
    """Per-process bookkeeping: uploads served at once, and locks that keep two requests
    from appending to one file at once."""

    slots: asyncio.Semaphore
    locks: list[asyncio.Lock] = field(default_factory=lambda: [asyncio.Lock() for _ in range(64)])

    def lock_of(self, sha256: str) -> asyncio.Lock:
        """One of 64 striped locks: one file's chunks are appended one at a time."""
        return self.locks[int(sha256[:4], 16) % len(self.locks)]


def _ingest(request: Request, state: State) -> _Ingest:
    held = getattr(request.app.state, "ingest", None)
    if held is None:
        limit = state.settings.config.center.evidence_upload.concurrent_uploads
        held = _Ingest(asyncio.Semaphore(limit))
        request.app.state.ingest = held
    return held


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def authenticate_gateway(request: Request, state: State) -> Gateway:
    """The gateway whose broker username and password the request carries (HTTP Basic)."""
    address = _address(request)
    failures = state.auth.failures
    wait_s = failures.retry_after_s(address)
    if wait_s is not None:
        seconds = retry_after(wait_s)
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"too many failed logins from {address}: retry in {seconds:g} s",
            headers={"Retry-After": f"{seconds:g}"},
        )
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    try:
        username, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        sep = username = password = ""
    if scheme.lower() != "basic" or not sep:
        raise _refused(state, address, "send the gateway's broker username and password"
                       " (HTTP Basic)")  # fmt: skip
    gateway = next((g for g in state.settings.config.devices.gateways if g.username == username),
                   None)  # fmt: skip
    if gateway is None:
        raise _refused(state, address, f"no gateway has the username {username!r}")
    try:
        expected = resolve_secret(gateway.credentials.password, state.settings.secrets_dir)
    except SecretError as error:
        log.error("evidence upload from gateway %s: %s", gateway.id, error)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "the center cannot read this gateway's password secret; see its log",
            headers={"Retry-After": "60"},
        ) from None
    if not hmac.compare_digest(password.encode(), expected.encode()):
        raise _refused(state, address, f"wrong password for gateway {gateway.id}")
    return gateway


def _refused(state: State, address: str, reason: str) -> HTTPException:
    state.auth.failures.failed(address)
    log.warning("evidence upload refused from %s: %s", address, reason)
    return HTTPException(status.HTTP_401_UNAUTHORIZED, reason, headers=_CHALLENGE)


def _store_or_503(state: State) -> UploadStore:
    store = store_of(state.settings)
    if store is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "the center has no upload store: set center.evidence_upload.store_dir",
        )
    return store


def _progress_headers(offset: int, complete: bool) -> dict[str, str]:
    return {"Upload-Offset": str(offset), "Upload-Complete": "?1" if complete else "?0",
            "Cache-Control": "no-store"}  # fmt: skip


@router.head("/evidence/{sha256}", status_code=200, response_class=Response)
async def upload_progress(sha256: Sha256, request: Request, state: State) -> Response:
    """How much of the file is stored (``Upload-Offset``), so a gateway resumes there."""
    authenticate_gateway(request, state)
    store = _store_or_503(state)
    try:
        progress = await run_in_threadpool(store.progress, sha256)
    except UploadError as error:
        raise HTTPException(error.status_code, str(error)) from None
    return Response(status_code=200, headers=_progress_headers(progress.offset, progress.complete))


@router.patch("/evidence/{sha256}", status_code=204, response_class=Response)
async def upload_chunk(
    sha256: Sha256,
    request: Request,
    state: State,
    upload_offset: Annotated[int, Header(ge=0)],
    upload_length: Annotated[int, Header(ge=1)],
) -> Response:
    """Append one chunk at ``Upload-Offset`` of the ``Upload-Length``-byte file."""
    gateway = authenticate_gateway(request, state)
    store = _store_or_503(state)
    ingest = _ingest(request, state)
    declared = int(request.headers.get("content-length") or 0)
    if declared > MAX_CHUNK_BYTES:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                            f"a chunk may be at most {MAX_CHUNK_BYTES} bytes")  # fmt: skip
    try:
        await asyncio.wait_for(ingest.slots.acquire(), timeout=2.0)
    except TimeoutError:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "too many uploads at once",
                            headers={"Retry-After": "5"}) from None  # fmt: skip
    try:
        body = bytearray()
        async for piece in request.stream():
            body += piece
            if len(body) > MAX_CHUNK_BYTES:
                raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                                    f"a chunk may be at most {MAX_CHUNK_BYTES} bytes")  # fmt: skip
        async with ingest.lock_of(UploadStore.check_name(sha256)):
            progress = await run_in_threadpool(
                store.append, sha256, upload_offset, upload_length, [bytes(body)]
            )
    except UploadError as error:
        offset = getattr(error, "offset", None)
        headers = {} if offset is None else _progress_headers(offset, False)
        log.warning("evidence upload %s… from gateway %s refused: %s", sha256[:12], gateway.id,
                    error)  # fmt: skip
        raise HTTPException(error.status_code, str(error), headers=headers) from None
    finally:
        ingest.slots.release()
    return Response(status_code=204, headers=_progress_headers(progress.offset, progress.complete))
