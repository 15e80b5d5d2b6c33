"""`citywatch model train --data --from`: a fine-tune on a tiny dataset becomes a new model
version with its model.json and card, listed by `model list` and back-tested against its
parent through the onnx backend."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from citywatch.models.model_registry import read_record, sha256_file
from citywatch.models.street_dataset import render_dataset
from citywatch.models.train_street import STREET_DIR, WEIGHTS_STEM
from tests.conftest import REPO


def _citywatch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "citywatch.cli.main", *args],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.service
def test_fine_tune_on_a_tiny_set_is_a_versioned_model_with_its_record_and_card(
    tmp_path: Path,
) -> None:
    """One epoch on 8 rendered images from the bundled weights (about 10 s on a CPU): a new
    street-v2 with both weights, a model.json naming the parent and the dataset's content
    hash, a card; `model list` shows it and `model backtest` (with one scene of the scenario
    suite) records a verdict."""
    data = render_dataset(tmp_path / "data", 8, 4, size=(320, 192), seed=7)
    manifest = {"content_sha256": "0ddba11", "counts": {"images": {"train": 8, "val": 4}}}
    (data.parent / "manifest.json").write_text(json.dumps(manifest))
    parent = STREET_DIR / f"{WEIGHTS_STEM}.pt"
    registry = tmp_path / "models"
    tuned = _citywatch(
        "model", "train", "--data", str(data), "--from", str(parent), "--registry",
        str(registry), "--epochs", "1", "--imgsz", "64", "--batch", "4", "--work-dir",
        str(tmp_path / "work"),
    )  # fmt: skip
    assert tuned.returncode == 0, tuned.stdout + tuned.stderr
    assert "training batches" in tuned.stdout and "Ultralytics" not in tuned.stdout
    version = registry / "street-v2"
    record = read_record(version)
    assert (record.name, record.version, record.recipe) == ("street", 2, "fine-tune")
    assert record.parent is not None and record.parent.sha256 == sha256_file(parent)
    assert record.dataset is not None and record.dataset.content_hash == "0ddba11"
    assert record.names == ["car", "truck", "bus", "person", "stall", "smoke"]
    assert record.settings["epochs"] == 1 and record.host["device"] in {"cpu", "0"}
    assert record.files["onnx"].sha256 == sha256_file(version / "model.onnx")
    card = (version / "MODEL_CARD.md").read_text()
    assert "# street v2" in card and "content hash `0ddba11`" in card

    listed = _citywatch("model", "list", "--registry", str(registry))
    assert listed.returncode == 0 and "street-v2" in listed.stdout and "0ddba11" in listed.stdout
    tested = _citywatch(
        "model", "backtest", str(version), "--data", str(data), "--imgsz", "320", "--suite",
        "--scenario", "smoke-plume",
    )  # fmt: skip
    assert tested.returncode in (0, 1), tested.stdout + tested.stderr
    assert "verdict:" in tested.stdout and "suite current: TP 1 FP 0 FN 0" in tested.stdout
    result = json.loads((version / "backtest.json").read_text())
    assert sorted(result["suite"]) == ["candidate", "current"]
    entry = read_record(version).backtests[-1]
    assert entry.against.sha256 == sha256_file(STREET_DIR / f"{WEIGHTS_STEM}.onnx")
    assert (version / "backtest.json").is_file() and "## Back-test\nAgainst" in (
        version / "MODEL_CARD.md"
    ).read_text()
