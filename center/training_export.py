"""The learning loop's input from the database: the camera alerts of decided work orders,
each with its clean frame, class, box and the duty officers' verdict.

The verdict is the one the back-test's truth export reads (:data:`.truth_export.DECIDING_VERDICT`:
the order's latest deciding event), so a model is trained and back-tested on the same
decisions. Orders are chosen by when they opened, as the truth export chooses them; alerts
without evidence (updates without a better frame, episode ends) carry no image and are not
part of it. The frame's bytes are found as the console finds evidence: the center's upload
store by SHA-256 first, then the ``file://`` path under the evidence roots; an alert whose
frame is in neither is returned with the reason, so the dataset lists it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from citywatch.center import evidence_files, evidence_upload
from citywatch.center.evidence_files import EvidenceUnavailable
from citywatch.center.settings import CenterSettings
from citywatch.center.truth_export import CONFIRMING, DECIDING_VERDICT, DISMISSING
from citywatch.contracts.messages import EvidenceKind
from citywatch.models.dataset_export import VerdictAlert
from citywatch.models.yolo_labels import NormBox

__all__ = ["verdict_alerts"]

_ALERTS = (
    """
WITH orders AS (
    SELECT w.id, w.number, w.opened_at FROM work_orders w
    WHERE w.opened_at >= %(since)s AND w.opened_at < %(until)s
)
SELECT o.id AS order_id, o.number, v.event AS decision, v.reason,
       a.id AS alert_id, a.device_id AS camera, a.kind, a.attributes, a.evidence
FROM orders o"""
    + DECIDING_VERDICT
    + """
JOIN work_order_alerts l ON l.work_order_id = o.id
JOIN alerts a ON a.id = l.alert_id
WHERE a.device_kind = 'camera'
      AND (%(cameras)s::text[] IS NULL OR a.device_id = ANY(%(cameras)s))
      AND (%(kinds)s::text[] IS NULL OR a.kind = ANY(%(kinds)s))
      AND jsonb_typeof(a.evidence) = 'array' AND jsonb_array_length(a.evidence) > 0
ORDER BY o.opened_at, o.id, a.event_time, a.id
"""
)

NO_FRAME = (
    "no clean frame evidence (the alert predates it, or the camera runs with evidence.frame off)"
)


def _box(attributes: dict[str, Any]) -> NormBox | None:
    values = [attributes.get(key) for key in ("x1", "y1", "x2", "y2")]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return None
    box = NormBox(*(float(v) for v in values))  # type: ignore[arg-type]
    return box if box.x2 > box.x1 and box.y2 > box.y1 else None


def _frame_ref(evidence: object) -> evidence_files.EvidenceRef | None:
    for ref in evidence if isinstance(evidence, list) else []:
        if isinstance(ref, dict) and ref.get("kind") == EvidenceKind.FRAME.value and ref.get("uri"):
            return evidence_files.EvidenceRef(
                kind=EvidenceKind.FRAME.value, uri=str(ref["uri"]),
                content_type=ref.get("content_type"), sha256=ref.get("sha256"),
            )  # fmt: skip
    return None


def to_verdict_alert(row: dict[str, Any], settings: CenterSettings) -> VerdictAlert:
    """One row of the query as the dataset's input, its frame located (blocking file I/O)."""
    attributes = row["attributes"] if isinstance(row["attributes"], dict) else {}
    ref = _frame_ref(row["evidence"])
    path, missing = None, None
    if ref is None:
        missing = NO_FRAME
    elif not ref.sha256:
        missing = f"the frame {ref.uri} was announced without a SHA-256"
    else:
        try:
            path = evidence_upload.locate(ref, settings).path
        except EvidenceUnavailable as exc:
            missing = f"frame {ref.sha256[:12]}… not in the center's store: {exc}"
    return VerdictAlert(
        alert_id=row["alert_id"], order_id=row["order_id"], order_number=row["number"],
        camera=row["camera"], kind=row["kind"], class_name=str(attributes.get("class") or ""),
        box=_box(attributes),
        verdict="false_positive" if row["decision"] in DISMISSING else "confirmed",
        decision=row["decision"], reason=row["reason"],
        frame_sha256=ref.sha256.lower() if ref is not None and ref.sha256 else None,
        frame_path=path, missing=missing,
    )  # fmt: skip


async def verdict_alerts(
    conn: AsyncConnection,
    settings: CenterSettings,
    *,
    since: datetime,
    until: datetime,
    cameras: Sequence[str] | None = None,
    kinds: Sequence[str] | None = None,
) -> list[VerdictAlert]:
    """The camera alerts with evidence of orders opened in [since, until) that have a
    verdict, optionally of some cameras and alert kinds only, oldest order first."""
    params = {
        "since": since, "until": until, "deciding": [*CONFIRMING, *DISMISSING],
        "cameras": list(cameras) if cameras else None, "kinds": list(kinds) if kinds else None,
    }  # fmt: skip
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(_ALERTS, params)
        rows = await cursor.fetchall()
    return [to_verdict_alert(row, settings) for row in rows]
