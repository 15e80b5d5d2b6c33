"""Send a model version to cameras: only past a back-test that is not worse than what they
run (unless forced), by copying the weights where gateways read them and rewriting those
cameras' ``weights:`` in the site config, which the gateways' hot reload picks up.

Which detector entry of a camera is replaced: the one whose model has the candidate's class
names (a fine-tuned COCO model replaces the COCO entry, not the Fire/Smoke one). The
rewritten config is checked (load and model checks) on a copy before a file is touched.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from citywatch.config import CitywatchConfig
from citywatch.config.camera import CameraConfig
from citywatch.config.detector import BUNDLED_WEIGHTS, DetectorConfig
from citywatch.config.loader import check_files, config_files
from citywatch.config.model_checks import ModelUnreadable, read_model_info
from citywatch.models.config_weights import ConfigEditError, DetectorSlot, planned_texts
from citywatch.models.detector_factory import MODELS_DIR
from citywatch.models.model_registry import ModelRecord, RolloutEntry, now, operator, sha256_file

__all__ = [
    "RolloutRefused",
    "Target",
    "apply_changes",
    "config_value",
    "gate_problems",
    "rollout_entry",
    "select_cameras",
    "store_weights",
    "targets_for",
]


class RolloutRefused(ValueError):
    """The rollout would send a model the back-test has not cleared, or cannot be done."""


@dataclass(frozen=True)
class Target:
    """A detector entry to change: where it is, how it runs, and the weights it runs now."""

    slot: DetectorSlot
    entry: DetectorConfig
    current: Path
    written: str
    """Its ``weights`` as the config has it ("" when it runs the bundled model)."""

    @property
    def key(self) -> str:
        return f"{self.slot.camera}/{self.slot.index}"


def select_cameras(
    config: CitywatchConfig, cameras: Sequence[str], gateway: str | None
) -> list[CameraConfig]:
    """The cameras named, or every camera of ``gateway``; one of the two is required."""
    known = {c.id: c for c in config.devices.cameras}
    if cameras:
        unknown = sorted(set(cameras) - set(known))
        if unknown:
            raise RolloutRefused(f"no cameras {unknown} in the config; it has {sorted(known)}")
        return [known[c] for c in dict.fromkeys(cameras)]
    if gateway is not None:
        chosen = [c for c in config.devices.cameras if c.gateway == gateway]
        if not chosen:
            raise RolloutRefused(f"gateway {gateway!r} has no cameras in the config")
        return chosen
    raise RolloutRefused("name the cameras (--camera ID, repeatable) or a --gateway")


def targets_for(
    cameras: Sequence[CameraConfig], names: Sequence[str], models_dir: Path = MODELS_DIR
) -> list[Target]:
    """Each camera's detector entry running a model with ``names``; a camera with none is
    refused (its class maps and rules were written for another model)."""
    targets = []
    for camera in cameras:
        mine = []
        for index, entry in enumerate(camera.detector_list):
            if entry.backend == "classical":
                continue
            current = entry.weights_path(models_dir)
            try:
                same = list(read_model_info(current).names) == list(names)
            except (ModelUnreadable, OSError):
                same = False
            if same:
                written = str(entry.weights) if entry.weights is not None else ""
                mine.append(Target(DetectorSlot(camera.id, index), entry, current, written))
        if not mine:
            raise RolloutRefused(
                f"camera {camera.id!r} runs no model with the candidate's classes {list(names)};"
                " a model for other classes is added as a new detectors entry by hand"
            )
        targets += mine
    return targets


def gate_problems(record: ModelRecord, directory: Path, targets: Sequence[Target]) -> list[str]:
    """Why the back-tests do not clear ``record`` for ``targets`` (empty when they do)."""
    problems = []
    by_current: dict[Path, list[str]] = {}
    for target in targets:
        by_current.setdefault(target.current, []).append(target.slot.camera)
    for current, cameras in by_current.items():
        found = record.latest_backtest(sha256_file(current))
        if found is None:
            problems.append(
                f"no back-test against {current} (what {sorted(set(cameras))} run): run"
                f" `citywatch model backtest {directory} --against {current} --data DATA_YAML`,"
                " or give --data here"
            )
        elif found.verdict == "worse":
            problems.append(
                f"the back-test against {current} ({found.created:%Y-%m-%d %H:%M}) says worse:"
                f" {'; '.join(found.reasons)}"
            )
    return problems


def store_weights(directory: Path, record: ModelRecord, backend: str, store: Path) -> Path:
    """Copy the version's weights for ``backend`` into ``store`` under a name that says which
    version and which content (``street-v3-1a2b3c4d5e6f.onnx``); an existing copy is kept."""
    kind = "onnx" if backend == "onnx" else "pt"
    source = record.weights(directory, kind)
    target = store / f"{record.name}-v{record.version}-{record.files[kind].sha256[:12]}.{kind}"
    if not target.exists():
        store.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(target.suffix + ".part")
        shutil.copyfile(source, partial)
        partial.replace(target)
    return target


def config_value(path: Path, models_dir: Path = MODELS_DIR) -> str:
    """How the config names ``path``: relative to ``models/`` when inside it (portable to
    every gateway with the repository), else absolute."""
    resolved = path.resolve()
    if resolved.is_relative_to(models_dir.resolve()):
        return str(resolved.relative_to(models_dir.resolve()))
    return str(resolved)


def restore_value(target: Target) -> str:
    """What a rollback writes back: the old weights, or the bundled model's path."""
    if target.written:
        return target.written
    backend = target.entry.backend
    return BUNDLED_WEIGHTS["onnx" if backend == "onnx" else "ultralytics"]


def apply_changes(config_path: Path, changes: Mapping[DetectorSlot, str]) -> list[Path]:
    """Rewrite the ``weights`` of ``changes`` in the config's files; the new files are first
    checked as a copy (loader and model checks), so a change that would not load is refused
    before a gateway could see it. Returns the files changed."""
    files = config_files(config_path)
    texts = planned_texts(files, changes)
    _check_copy(config_path, files, texts)
    for path, text in texts.items():
        partial = path.with_name(f".{path.name}.rollout")
        partial.write_text(text, encoding="utf-8")
        shutil.copymode(path, partial)
        partial.replace(path)  # one rename: a reloading gateway sees the old or the new file
    return sorted(texts)


def _check_copy(config_path: Path, files: Sequence[Path], texts: Mapping[Path, str]) -> None:
    common = Path(*_common_parts([f.resolve() for f in [config_path, *files]]))
    with tempfile.TemporaryDirectory(prefix="citywatch-rollout-") as tmp:
        for path in files:
            copy = Path(tmp) / path.resolve().relative_to(common)
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_text(texts.get(path, path.read_text(encoding="utf-8")), encoding="utf-8")
        problems = check_files([Path(tmp) / config_path.resolve().relative_to(common)])
    if problems:
        listed = "; ".join(str(p).replace(tmp, str(common)) for p in problems)
        raise ConfigEditError(f"the rewritten config would not load, nothing changed: {listed}")


def _common_parts(paths: Sequence[Path]) -> tuple[str, ...]:
    parts = [p.parent.parts for p in paths]
    common: list[str] = []
    for column in zip(*parts, strict=False):
        if len(set(column)) != 1:
            break
        common.append(column[0])
    return tuple(common)


def rollout_entry(
    config_path: Path,
    weights: str,
    targets: Sequence[Target],
    forced: bool,
    reason: str,
    action: str = "rollout",
) -> RolloutEntry:
    """The record of a rollout (or rollback): each slot with the weights it had before."""
    return RolloutEntry(
        created=now(),
        by=operator(),
        action="rollback" if action == "rollback" else "rollout",
        config=str(config_path.resolve()),
        weights=weights,
        cameras={t.key: t.written for t in targets},
        forced=forced,
        reason=reason,
    )
