"""The learning loop's dataset writer without a database: label maths, boxes merged per
frame, false positives as hard negatives, a split that survives re-exports, and an
operator's labelled folder mapped by class name."""

from __future__ import annotations

import hashlib
import json
from dataclasses import astuple
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from citywatch.models.dataset_export import DatasetError, VerdictAlert, plan_dataset
from citywatch.models.dataset_files import crop_labels, write_dataset
from citywatch.models.labelled_dir import LabelledError, read_labelled
from citywatch.models.yolo_labels import NormBox, crop_region, label_line, split_of


def frame_file(folder: Path, seed: int, size: tuple[int, int] = (320, 192)) -> tuple[Path, str]:
    """A JPEG frame of random content, and its SHA-256."""
    image = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    path = folder / f"frame{seed}.jpg"
    path.write_bytes(cv2.imencode(".jpg", image)[1].tobytes())
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def alert(
    alert_id: str, frame: tuple[Path, str] | None, box: NormBox, *, cls: str = "car",
    verdict: str = "confirmed", order: str = "wo-1",
) -> VerdictAlert:  # fmt: skip
    return VerdictAlert(
        alert_id=alert_id, order_id=order, order_number=f"N-{order}", camera="cam1",
        kind="illegal_parking", class_name=cls, box=box, verdict=verdict,  # type: ignore[arg-type]
        decision="resolved" if verdict == "confirmed" else "false_positive", reason=None,
        frame_sha256=frame[1] if frame else None, frame_path=frame[0] if frame else None,
        missing=None if frame else "not in the center's store",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("box", "line"),
    [
        (NormBox(0.1, 0.2, 0.3, 0.6), "0 0.200000 0.400000 0.200000 0.400000"),
        (NormBox(-0.2, 0.5, 0.2, 1.3), "0 0.100000 0.750000 0.200000 0.500000"),  # clipped
        (NormBox(1.1, 0.2, 1.3, 0.4), None),  # outside the image
    ],
)
def test_a_box_becomes_a_yolo_line_clipped_to_the_image(box: NormBox, line: str | None) -> None:
    """xyxy in 0–1 → `class cx cy w h`, clipped; nothing inside → no line."""
    assert label_line(0, box) == line


def test_a_false_positive_region_keeps_context_and_stays_inside_the_frame() -> None:
    """The box grown by its size on each side; at a border it is shifted in, not cut."""
    assert astuple(crop_region(NormBox(0.4, 0.4, 0.5, 0.5))) == pytest.approx((0.3, 0.3, 0.6, 0.6))
    edge = crop_region(NormBox(0.9, 0.0, 1.0, 0.1))
    assert astuple(edge) == pytest.approx((0.7, 0.0, 1.0, 0.3))
    pixels, inside = crop_labels([(0, NormBox(0.75, 0.05, 0.85, 0.15))], edge, 100, 100)
    assert pixels == (70, 0, 100, 30)
    assert astuple(inside[0][1]) == pytest.approx((1 / 6, 1 / 6, 0.5, 0.5))


def test_alerts_on_one_frame_make_one_image_with_all_their_boxes(tmp_path: Path) -> None:
    """Two confirmed objects on one frame: one image, two boxes; a second rule's alert on
    the same object adds no duplicate box."""
    frame = frame_file(tmp_path, 1)
    plan = plan_dataset([
        alert("a1", frame, NormBox(0.1, 0.1, 0.3, 0.4)),
        alert("a2", frame, NormBox(0.5, 0.5, 0.7, 0.9), cls="person", order="wo-2"),
        alert("a3", frame, NormBox(0.1, 0.1, 0.3, 0.41), order="wo-3"),
    ])  # fmt: skip
    [image] = plan.images
    assert plan.names == ("car", "person")
    assert sorted(c for c, _ in image.boxes) == [0, 1]
    assert [a.alert_id for a in image.alerts] == ["a1", "a2", "a3"]


def test_false_positives_become_crops_frames_or_nothing(tmp_path: Path) -> None:
    """crop: the region as its own image, keeping a confirmed box inside it; frame: the
    whole frame with the confirmed boxes; none: counted only. A false positive on a
    confirmed object is a contradiction, never a negative."""
    shared, lonely = frame_file(tmp_path, 1), frame_file(tmp_path, 2)
    alerts = [
        alert("ok", shared, NormBox(0.40, 0.40, 0.50, 0.50)),
        alert("fp1", shared, NormBox(0.52, 0.40, 0.60, 0.50), cls="person", verdict="false_positive"),
        alert("fp2", lonely, NormBox(0.1, 0.1, 0.2, 0.2), verdict="false_positive"),
        alert("clash", shared, NormBox(0.40, 0.40, 0.50, 0.51), verdict="false_positive"),
    ]  # fmt: skip
    crops = plan_dataset(alerts, names=["car", "person"], negatives="crop")
    by_origin = {i.name: i for i in crops.images}
    negatives = [i for i in crops.images if i.origin == "hard_negative"]
    assert len(negatives) == 2 and len(by_origin) == 3
    with_car = next(i for i in negatives if i.source_sha256 == shared[1])
    assert [c for c, _ in with_car.boxes] == [0] and with_car.region is not None
    assert [c.alert_id for c in crops.conflicts] == ["clash"]

    frames = plan_dataset(alerts, names=["car", "person"], negatives="frame")
    assert {(i.source_sha256, i.origin, len(i.boxes)) for i in frames.images} == {
        (shared[1], "verdict", 1), (lonely[1], "hard_negative", 0)}  # fmt: skip
    none = plan_dataset(alerts, names=["car", "person"], negatives="none")
    assert len(none.images) == 1 and none.negatives_left_out == 2


def test_the_split_is_stable_and_a_crop_follows_its_frame(tmp_path: Path) -> None:
    """Same image, same split on every export (whatever else was added); a negative crop
    lands in its frame's split, so no view of a frame leaks across."""
    shas = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(400)]
    splits = [split_of(s, 0.2) for s in shas]
    assert splits == [split_of(s, 0.2) for s in shas]
    assert 50 < splits.count("val") < 110
    assert splits != [split_of(s, 0.2, seed=7) for s in shas]
    frames = [frame_file(tmp_path, i) for i in range(6)]
    alerts = [alert(f"a{i}", f, NormBox(0.1, 0.1, 0.3, 0.3)) for i, f in enumerate(frames)]
    alerts.append(alert("fp", frames[0], NormBox(0.6, 0.6, 0.7, 0.7), verdict="false_positive"))
    few = {i.name: i.split for i in plan_dataset(alerts[:3], val_fraction=0.5).images}
    more = plan_dataset(alerts, val_fraction=0.5).images
    assert all(few[i.name] == i.split for i in more if i.name in few)
    assert len({i.split for i in more if i.source_sha256 == frames[0][1]}) == 1


def labelled_folder(root: Path, classes: str, label: str) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    frame_file(root / "images", 9)
    (root / "labels" / "frame9.txt").write_text(label)
    (root / "classes.txt").write_text(classes)
    return root


def test_labelled_frames_map_by_class_name_onto_the_models_order(tmp_path: Path) -> None:
    """The folder's `Car` (index 1 there) is the model's `car` (index 2 here)."""
    folder = labelled_folder(tmp_path / "lab", "person\nCar\n", "1 0.5 0.5 0.2 0.2\n")
    plan = plan_dataset([], read_labelled(folder), names=["person", "bicycle", "car"])
    [image] = plan.images
    assert image.origin == "labelled" and [c for c, _ in image.boxes] == [2]


def test_an_unknown_labelled_class_names_its_file_and_line(tmp_path: Path) -> None:
    """A class the model lacks, and a malformed line, are reported at FILE:LINE."""
    folder = labelled_folder(
        tmp_path / "lab", "car\ncat\n", "0 0.5 0.5 0.2 0.2\n1 0.3 0.3 0.1 0.1\n"
    )
    with pytest.raises(DatasetError, match=r"frame9\.txt:2: class 'cat' is not among"):
        plan_dataset([], read_labelled(folder), names=["car", "person"])
    (folder / "labels" / "frame9.txt").write_text("0 0.5 0.5 1.2\n")
    with pytest.raises(LabelledError, match=r"frame9\.txt:1: expected `class cx cy w h`"):
        read_labelled(folder)


def test_a_written_dataset_has_labels_manifest_and_a_repeatable_hash(tmp_path: Path) -> None:
    """data.yaml names in order; a label line per box; a missing or changed frame listed in
    the manifest; the same input written twice has the same content hash."""
    frame, changed = frame_file(tmp_path, 1), frame_file(tmp_path, 2)
    alerts = [
        alert("a1", frame, NormBox(0.1, 0.2, 0.3, 0.6)),
        alert("fp", frame, NormBox(0.6, 0.6, 0.7, 0.7), verdict="false_positive"),
        alert("gone", None, NormBox(0.1, 0.1, 0.2, 0.2)),
        alert("edited", changed, NormBox(0.1, 0.1, 0.2, 0.2)),
    ]  # fmt: skip
    changed[0].write_bytes(changed[0].read_bytes() + b"\0")
    plan = plan_dataset(alerts, names=["person", "car"])
    first = write_dataset(plan, tmp_path / "ds", sources={"test": True})
    data = yaml.safe_load((tmp_path / "ds" / "data.yaml").read_text())
    assert data["names"] == {0: "person", 1: "car"} and data["train"] == "images/train"
    labels = sorted((tmp_path / "ds" / "labels").rglob("*.txt"))
    assert [p.read_text() for p in labels if "-fp-" not in p.name] == [
        "1 0.200000 0.400000 0.200000 0.400000\n"]  # fmt: skip
    assert first.boxes == {"car": 1} and first.hard_negatives == 1
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert {m["alert_id"] for m in manifest["missing"]} == {"gone", "edited"}
    assert manifest["content_sha256"] == first.content_sha256
    again = write_dataset(plan, tmp_path / "ds", sources={"test": True})
    assert again.content_sha256 == first.content_sha256
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not empty"):
        write_dataset(plan, tmp_path / "other", sources={})
