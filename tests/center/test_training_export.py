"""The learning loop's round trip on the real database: camera alerts with clean frames and
the duty officers' verdicts become a YOLO dataset (`citywatch model dataset`) that
ultralytics' own checks accept, its labels the seeded boxes."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from citywatch.cli.main import app
from tests.center.seed import act_on, insert_alert, seed_order
from tests.conftest import REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CAMERA = "cam-renmin-101"
OPENED = datetime(2026, 5, 12, 2, 0, tzinfo=UTC)
runner = CliRunner()


def jpeg(seed: int) -> bytes:
    image = np.random.default_rng(seed).integers(0, 255, (192, 320, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", image)[1].tobytes()


def frame_ref(data: bytes, path: Path) -> dict[str, str]:
    return {"kind": "frame", "uri": path.as_uri(), "content_type": "image/jpeg",
            "sha256": hashlib.sha256(data).hexdigest()}  # fmt: skip


def box(x1: float, y1: float, x2: float, y2: float, cls: str) -> dict[str, object]:
    return {"class": cls, "x1": x1, "y1": y1, "x2": x2, "y2": y2}


def decided_order(db, config, alerts: list[tuple[str, list[dict], dict]], verdict: str,  # type: ignore[no-untyped-def]
                  minute: int) -> None:  # fmt: skip
    """An order with ``alerts`` (id, evidence, attributes), confirmed or dismissed."""
    opened = OPENED + timedelta(minutes=minute)
    order = seed_order(db, config, device_id=CAMERA, alerts=0, opened_at=opened)
    for alert_id, evidence, attributes in alerts:
        insert_alert(db, alert_id=alert_id, device_id=CAMERA, device_kind="camera",
                     kind="illegal_parking", when=opened, evidence=evidence,
                     attributes=attributes)  # fmt: skip
        db.execute("INSERT INTO work_order_alerts (work_order_id, alert_id) VALUES (%s, %s)",
                   (order.id, alert_id))  # fmt: skip
    db.commit()
    later = opened + timedelta(minutes=5)
    if verdict == "false_positive":
        act_on(db, order, "mark_false_positive", time=later, reason="a shadow")
        return
    act_on(db, order, "dispatch", time=later, department=order.department)
    act_on(db, order, "sign", time=later + timedelta(minutes=1))
    act_on(db, order, "resolve", time=later + timedelta(minutes=9), note="towed")


def test_verdicts_export_as_a_yolo_dataset_ultralytics_accepts(
    db, center_settings, center_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """Two confirmed alerts on one frame → one image, two boxes; a frame found only in the
    upload store by SHA-256; a false positive → an empty-labelled crop; an alert without a
    frame listed as missing; the open order left out."""
    config = center_settings.config
    evidence = tmp_path / "data" / "evidence"
    (evidence / CAMERA).mkdir(parents=True)
    shared, uploaded, dismissed = jpeg(1), jpeg(2), jpeg(3)
    (evidence / CAMERA / "a-frame.jpg").write_bytes(shared)
    (evidence / CAMERA / "c-frame.jpg").write_bytes(dismissed)
    stored = evidence / "uploads" / "sha256" / hashlib.sha256(uploaded).hexdigest()[:2]
    stored.mkdir(parents=True)
    (stored / hashlib.sha256(uploaded).hexdigest()).write_bytes(uploaded)
    on_shared = frame_ref(shared, evidence / CAMERA / "a-frame.jpg")
    decided_order(db, config, [
        ("tr-car.0", [on_shared], box(0.1, 0.2, 0.3, 0.6, "car")),
        ("tr-person.0", [on_shared], box(0.5, 0.5, 0.6, 0.9, "person")),
    ], "resolved", 0)  # fmt: skip
    gateway_only = frame_ref(uploaded, Path("/gateway/evidence/b-frame.jpg"))
    decided_order(db, config, [("tr-uploaded.0", [gateway_only], box(0.0, 0.0, 0.5, 0.5, "car"))],
                  "resolved", 1)  # fmt: skip
    decided_order(db, config, [
        ("tr-fp.0", [frame_ref(dismissed, evidence / CAMERA / "c-frame.jpg")],
         box(0.4, 0.4, 0.5, 0.5, "car")),
    ], "false_positive", 2)  # fmt: skip
    snapshot_only = {"kind": "snapshot", "uri": "file:///gone.jpg", "content_type": "image/jpeg"}
    decided_order(db, config, [("tr-old.0", [snapshot_only], box(0.1, 0.1, 0.2, 0.2, "car"))],
                  "resolved", 3)  # fmt: skip
    open_order = seed_order(db, config, device_id=CAMERA, alerts=1, opened_at=OPENED,
                            evidence=[on_shared])  # fmt: skip
    assert open_order.state.value != "resolved"

    out = tmp_path / "dataset"
    result = runner.invoke(app, [
        "model", "dataset", "--config", str(REPO / "configs" / "demo-district.yaml"),
        "--data-dir", str(tmp_path / "data"), "--database-url", center_db,
        "--since", OPENED.isoformat(), "--until", (OPENED + timedelta(hours=1)).isoformat(),
        "--camera", CAMERA, "--out", str(out), "--val-fraction", "0",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output

    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["names"] == {0: "car", 1: "person"}
    labels = {p.name: p.read_text().splitlines() for p in (out / "labels" / "train").glob("*.txt")}
    positives = sorted(sorted(lines) for name, lines in labels.items() if "-fp-" not in name)
    assert positives == [
        ["0 0.200000 0.400000 0.200000 0.400000", "1 0.550000 0.700000 0.100000 0.400000"],
        ["0 0.250000 0.250000 0.500000 0.500000"],
    ]
    assert [lines for name, lines in labels.items() if "-fp-" in name] == [[]]
    manifest = json.loads((out / "manifest.json").read_text())
    assert [m["alert_id"] for m in manifest["missing"]] == ["tr-old.0"]
    assert manifest["counts"]["alerts_per_verdict"] == {"confirmed": 3, "false_positive": 1}
    assert "missing frames" in result.output and "hard-negative images" in result.output

    from ultralytics.data import utils as yolo_data

    monkeypatch.setenv("YOLO_OFFLINE", "1")
    monkeypatch.setattr(yolo_data, "check_font", lambda *_: None)  # it would ask the network
    checked = yolo_data.check_det_dataset(str(out / "data.yaml"), autodownload=False)
    assert checked["nc"] == 2 and Path(checked["train"]) == out / "images" / "train"
    for image in (out / "images" / "train").iterdir():
        label = out / "labels" / "train" / f"{image.stem}.txt"
        verdict = yolo_data.verify_image_label((str(image), str(label), "", False, 2, 0, 0, False))
        assert verdict[8] == 0, verdict[-1]  # not corrupt
