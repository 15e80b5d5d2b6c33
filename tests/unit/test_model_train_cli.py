"""`citywatch model train`: a new directory unless told otherwise, quiet, and honest about a
model that detects nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from citywatch.cli.main import app
from citywatch.models.train_street import (
    STREET_DIR,
    WEIGHTS_STEM,
    next_model_dir,
    weak_model_warning,
)

REPO = Path(__file__).resolve().parents[2]


def test_training_refuses_to_write_over_existing_weights(tmp_path: Path) -> None:
    """--output at a directory holding weights, without --overwrite: one line, exit 2, and
    nothing is rendered or trained."""
    (tmp_path / f"{WEIGHTS_STEM}.pt").write_bytes(b"weights")
    result = CliRunner().invoke(
        app, ["model", "train", "--output", str(tmp_path), "--work-dir", str(tmp_path / "w")]
    )
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"✗ {tmp_path} already holds {WEIGHTS_STEM}.pt: pass --overwrite to replace it, or"
        " choose another --output (without --output a new models/street-vN is used)"
    )
    assert not (tmp_path / "w").exists()


def test_default_output_is_a_new_version_beside_the_bundled_model(tmp_path: Path) -> None:
    """Without --output the run goes to street-v2, then street-v3: never models/street."""
    base = tmp_path / "street"
    base.mkdir()
    assert next_model_dir(base) == tmp_path / "street-v2"
    (tmp_path / "street-v2").mkdir()
    assert next_model_dir(base) == tmp_path / "street-v3"
    assert next_model_dir().parent == STREET_DIR.parent and next_model_dir() != STREET_DIR


def test_near_zero_map_is_warned_about() -> None:
    """mAP50 under 0.05 gets a warning saying what to change; a usable model none."""
    warning = weak_model_warning({"mAP50": 0.0})
    assert warning is not None and warning.startswith("mAP50 0.000 on the validation split")
    assert "--epochs" in warning
    assert weak_model_warning({"mAP50": 0.61}) is None


@pytest.mark.slow
@pytest.mark.service
def test_tiny_training_run_shows_our_progress_not_ultralytics_output(tmp_path: Path) -> None:
    """Two epochs on 8 images: a batch count, no settings dump or layer table, and the
    near-zero mAP warned about (about 15 s on a CPU)."""
    out = tmp_path / "model"
    result = subprocess.run(
        [sys.executable, "-m", "citywatch.cli.main", "model", "train", "--output", str(out),
         "--work-dir", str(tmp_path / "work"), "--train", "8", "--val", "4", "--epochs", "2",
         "--imgsz", "64"],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert "training batches" in result.stdout and "2/2" in result.stdout
    for noise in ("engine/trainer:", "Ultralytics", "params", "WARNING"):
        assert noise not in output, output
    assert "! mAP50 0.000 on the validation split" in result.stderr
    assert (out / f"{WEIGHTS_STEM}.onnx").is_file()
