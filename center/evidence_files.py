"""Evidence of an alert (a snapshot with boxes drawn, a crop, a clip, a series): where its
bytes are and whether the center may serve them.

Gateways announce evidence by reference (``file://`` URI, content type, SHA-256), either in
the alert (``alerts.evidence``) or in a later notice (the ``evidence`` table: a clip is
finished seconds after its alert). The center serves a ``file://`` reference only when the
file's real path — symlinks followed, ``..`` collapsed — lies under one of the configured
evidence roots, so a forged or careless URI cannot read ``/etc/passwd`` or the center's
secrets. Evidence is served only from stored files: an ``http(s)`` reference is never
redirected to (a device could otherwise steer an operator's browser, token-bearing URL and
all, to any address it likes); it is 404 with a note to mirror the object into a root.
"""

from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from psycopg import AsyncConnection
from psycopg.rows import dict_row

EVIDENCE_ROUTE = "/api/v1/alerts/{alert_id}/evidence/{kind}"

SERVABLE_TYPES = ("image/", "video/", "application/json", "text/csv", "text/plain")
"""Content types served as declared; anything else goes out as application/octet-stream,
so that a file a gateway mislabels as HTML cannot run script in the console's origin."""


def evidence_url(alert_id: str, kind: str) -> str:
    """The center's URL of one piece of an alert's evidence (what the console fetches)."""
    return EVIDENCE_ROUTE.format(alert_id=quote(alert_id, safe=""), kind=quote(str(kind), safe=""))


class EvidenceUnavailable(Exception):
    """Evidence that cannot be served; ``status_code`` is the HTTP answer."""

    status_code = 404


class EvidenceMissing(EvidenceUnavailable):
    """No such alert or evidence kind, or the file is gone (the gateway's store rotated)."""

    status_code = 404


class EvidenceRefused(EvidenceUnavailable):
    """The reference points outside the evidence roots, or somewhere the center never reads."""

    status_code = 403


class EvidenceRemote(EvidenceMissing):
    """The reference points at another server; the center does not send browsers there."""


class EvidenceCorrupt(EvidenceUnavailable):
    """The file's SHA-256 differs from the one the gateway announced."""

    status_code = 409


@dataclass(frozen=True)
class EvidenceRef:
    """One stored reference to an alert's evidence."""

    kind: str
    uri: str
    content_type: str | None
    sha256: str | None


@dataclass(frozen=True)
class LocalFile:
    path: Path
    """Real path (symlinks resolved), inside an evidence root."""


def locate(uri: str, roots: Sequence[Path]) -> LocalFile:
    """Where the bytes of ``uri`` are; raises :class:`EvidenceRefused` for a file outside
    every root (checked on the real path, before its existence, so nothing about files
    outside the roots leaks), :class:`EvidenceRemote` for another server's address and
    :class:`EvidenceMissing` for a file that is not there.
    """
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        raise EvidenceRemote(
            f"this evidence is stored at another address ({parts.netloc or 'no host'}), which"
            " the center does not send browsers to; mirror it into one of"
            " center.evidence_roots and announce it as a file:// URI"
        )
    if scheme != "file":
        raise EvidenceMissing(
            f"evidence URI {uri!r} uses {scheme or 'no'} scheme; the center serves only"
            " file:// evidence stored under its evidence roots"
        )
    if parts.netloc not in ("", "localhost"):
        raise EvidenceRefused(
            f"evidence URI {uri!r} names host {parts.netloc!r}; mirror that gateway's evidence"
            " into one of center.evidence_roots and announce it as a local file"
        )
    raw = unquote(parts.path)
    if "\x00" in raw or not raw.startswith("/"):
        raise EvidenceRefused(f"evidence URI {uri!r} is not an absolute file path")
    real = Path(raw).resolve()
    if not any(real.is_relative_to(root.resolve()) for root in roots):
        if not roots:
            raise EvidenceRefused(
                "no evidence roots are configured: set center.evidence_roots to the folders"
                " gateway evidence is mirrored into"
            )
        raise EvidenceRefused(
            f"evidence URI {uri!r} resolves outside the evidence roots"
            f" ({', '.join(str(r) for r in roots)}); the center serves no other files"
        )
    if not real.is_file():
        raise EvidenceMissing(
            f"evidence file {real} is not there (the gateway's evidence store may have rotated"
            " it out, or it is not mirrored to the center yet)"
        )
    return LocalFile(real)


@lru_cache(maxsize=1024)
def _file_sha256(path: Path, size: int, mtime_ns: int) -> str:
    """The file's SHA-256; keyed by size and mtime too, so a rewritten file is hashed anew
    while a video player's many range requests for one clip hash it once."""
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def check_sha256(path: Path, expected: str | None) -> None:
    """Raise :class:`EvidenceCorrupt` when ``expected`` is given and the file differs (it
    reads the whole file on first use: call it off the event loop)."""
    if not expected:
        return
    stat = path.stat()
    actual = _file_sha256(path, stat.st_size, stat.st_mtime_ns)
    if actual != expected.lower():
        raise EvidenceCorrupt(
            f"evidence file {path.name} does not match the SHA-256 its gateway announced"
            f" ({expected[:12]}…, file has {actual[:12]}…): it was changed or truncated after"
            " the alert; compare with the gateway's copy"
        )


def content_type(declared: str | None, path: Path) -> str:
    """The type to serve ``path`` as: the declared one (or a guess from the name) when it
    is a media or plain-data type, otherwise a download."""
    candidate = (declared or "").split(";")[0].strip().lower()
    if not candidate or candidate == "application/octet-stream":
        candidate = (mimetypes.guess_type(path.name)[0] or "").lower()
    if candidate.startswith(SERVABLE_TYPES):
        return candidate
    return "application/octet-stream"


_FIND = """
SELECT EXISTS (SELECT 1 FROM alerts WHERE id = %(alert)s) AS alert_known,
       (SELECT to_jsonb(r) FROM (
            SELECT 0 AS source, a.event_time, ref->>'uri' AS uri,
                   ref->>'content_type' AS content_type, ref->>'sha256' AS sha256
            FROM alerts a, jsonb_array_elements(a.evidence) AS ref
            WHERE a.id = %(alert)s AND jsonb_typeof(a.evidence) = 'array'
                  AND ref->>'kind' = %(kind)s AND ref->>'uri' IS NOT NULL
            UNION ALL
            SELECT 1, e.event_time, e.uri, e.content_type, e.sha256
            FROM evidence e WHERE e.alert_id = %(alert)s AND e.kind = %(kind)s
            ORDER BY source, event_time DESC
            LIMIT 1) r) AS ref
"""


async def find(conn: AsyncConnection, alert_id: str, kind: str) -> EvidenceRef:
    """The reference to ``kind`` evidence of the alert: the one the alert carries, else the
    latest later notice. Raises :class:`EvidenceMissing` naming what is absent."""
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(_FIND, {"alert": alert_id, "kind": kind})
        row = await cursor.fetchone()
    assert row is not None
    ref = row["ref"]
    if ref is None:
        if not row["alert_known"]:
            raise EvidenceMissing(f"no alert {alert_id!r}")
        raise EvidenceMissing(f"alert {alert_id!r} has no {kind} evidence")
    return EvidenceRef(
        kind=kind, uri=ref["uri"], content_type=ref["content_type"], sha256=ref["sha256"]
    )
