"""The rendered YOLO training set: valid, deterministic, varied, and split without overlap."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
from ruamel.yaml import YAML

from citywatch.hardware.camera.street.actors import FlashLook
from citywatch.hardware.camera.street.scene import STREET_CLASSES, TruthBox
from citywatch.models.street_dataset import MIN_BOX_PX, random_scene, render_dataset, yolo_lines

SIZE = (320, 192)


def test_dataset_has_valid_yolo_labels_and_data_yaml(tmp_path: Path) -> None:
    """Every label line is `cls cx cy w h`, normalised, inside the image, not tiny."""
    data_yaml = render_dataset(tmp_path / "ds", 8, 3, size=SIZE, seed=11)
    data = YAML(typ="safe").load(data_yaml.read_text())
    assert data["path"] == str((tmp_path / "ds").resolve())
    assert (data["train"], data["val"]) == ("images/train", "images/val")
    assert [data["names"][i] for i in range(6)] == list(STREET_CLASSES)
    for split, count in (("train", 8), ("val", 3)):
        images = sorted((tmp_path / "ds" / "images" / split).glob("*.jpg"))
        labels = sorted((tmp_path / "ds" / "labels" / split).glob("*.txt"))
        assert len(images) == len(labels) == count
        assert [p.stem for p in images] == [p.stem for p in labels]
    lines = [
        line
        for path in (tmp_path / "ds" / "labels").rglob("*.txt")
        for line in path.read_text().splitlines()
    ]
    assert lines
    for line in lines:
        cls, cx, cy, w, h = line.split()
        assert 0 <= int(cls) < len(STREET_CLASSES)
        cx_, cy_, w_, h_ = float(cx), float(cy), float(w), float(h)
        assert w_ * SIZE[0] >= MIN_BOX_PX - 1e-3 and h_ * SIZE[1] >= MIN_BOX_PX - 1e-3
        assert -1e-6 <= cx_ - w_ / 2 < cx_ + w_ / 2 <= 1 + 1e-6
        assert -1e-6 <= cy_ - h_ / 2 < cy_ + h_ / 2 <= 1 + 1e-6


def test_same_seed_gives_the_same_dataset_and_val_differs_from_train(tmp_path: Path) -> None:
    """Deterministic by seed; the validation split draws from its own seed stream."""
    render_dataset(tmp_path / "a", 3, 3, size=SIZE, seed=4)
    render_dataset(tmp_path / "b", 3, 3, size=SIZE, seed=4)
    render_dataset(tmp_path / "c", 3, 1, size=SIZE, seed=5)
    for sub in ("images/train", "images/val", "labels/train", "labels/val"):
        for path in (tmp_path / "a" / sub).iterdir():
            assert path.read_bytes() == (tmp_path / "b" / sub / path.name).read_bytes()
    train = (tmp_path / "a/images/train/train_000000.jpg").read_bytes()
    val = (tmp_path / "a/images/val/val_000000.jpg").read_bytes()
    other_seed = (tmp_path / "c/images/train/train_000000.jpg").read_bytes()
    assert train != val and train != other_seed


def test_random_scenes_cover_every_class_with_empty_frames_and_distractors() -> None:
    """Over many scenes every class appears often, some frames are empty, some flash."""
    rng = np.random.default_rng(0)
    specs = [random_scene(rng, (640, 384)) for _ in range(300)]
    classes = Counter(a.look.class_name for s in specs for a in s.actors)
    for name in STREET_CLASSES:
        assert classes[name] >= 60, (name, classes)
    assert any(not s.actors for s in specs)
    assert any(isinstance(a.look, FlashLook) for s in specs for a in s.actors)
    assert any(a.blur_px > 2 for s in specs for a in s.actors)
    gains = [s.lighting.gain for s in specs]
    assert min(gains) < 0.35 and max(gains) > 0.9  # night and day


def test_yolo_lines_skip_boxes_too_small_to_learn() -> None:
    """A box under MIN_BOX_PX on either side is left unlabelled."""
    truth = (
        TruthBox(1, "person", (10.0, 20.0, 14.0, 60.0), 1.0),
        TruthBox(2, "bus", (0.0, 0.0, 320.0, 96.0), 0.8),
    )
    assert yolo_lines(truth, SIZE) == ["2 0.500000 0.250000 1.000000 0.500000"]
