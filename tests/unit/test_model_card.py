"""The bundled model's card: generated figures, hand-written notes kept across retraining."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from citywatch.models.train_street import STREET_DIR, TrainResult, TrainSettings, write_card

pytestmark = pytest.mark.slow  # a card counts the parameters: torch loads the weights


def _result(tmp_path: Path, map50: float) -> TrainResult:
    pt = tmp_path / "citywatch-street.pt"
    shutil.copy(STREET_DIR / "citywatch-street.pt", pt)
    return TrainResult(
        settings=TrainSettings(),
        pt=pt,
        onnx=tmp_path / "citywatch-street.onnx",
        train_s=1620.0,
        render_s=22.0,
        metrics={"mAP50": map50},
        per_class_map50={"car": 0.9, "smoke": 0.4},
    )


def test_card_states_the_figures_of_the_run(tmp_path: Path) -> None:
    card = tmp_path / "MODEL_CARD.md"
    write_card(_result(tmp_path, 0.812), card)
    text = card.read_text(encoding="utf-8")
    assert "| mAP50 | 0.812 |" in text and "| smoke | 0.400 |" in text
    assert "training\n27.0 min" in text and "M parameters" in text
    assert (tmp_path / "train-result.json").exists()


def test_retraining_keeps_the_hand_written_weaknesses_and_history(tmp_path: Path) -> None:
    card = tmp_path / "MODEL_CARD.md"
    write_card(_result(tmp_path, 0.812), card)
    notes = "\n## Known weaknesses\n- dark smoke\n\n## History\n- the first model\n"
    card.write_text(card.read_text(encoding="utf-8") + notes, encoding="utf-8")
    write_card(_result(tmp_path, 0.83), card)
    text = card.read_text(encoding="utf-8")
    assert "| mAP50 | 0.830 |" in text and "0.812" not in text
    assert text.endswith(notes) and text.count("## Known weaknesses") == 1
