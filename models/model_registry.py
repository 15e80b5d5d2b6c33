"""Versions of trained models: a directory per version with a ``model.json`` saying what the
weights are, where they came from, how well they did and where they went.

The learning loop (fine-tune → back-test → roll out) reads and extends this record, so a
duty officer's question "which model is cam-12 running, and what was it trained on?" has one
answer: the weights' sha256 leads to a version, its ``model.json`` to the parent weights, the
dataset's content hash, the back-tests and every rollout (who, when, forced or not).
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import os
import platform
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = [
    "RECORD_FILE",
    "BacktestEntry",
    "DatasetRef",
    "FileRef",
    "ModelRecord",
    "RegistryError",
    "RolloutEntry",
    "dataset_ref",
    "find_versions",
    "host_info",
    "next_version_dir",
    "operator",
    "read_record",
    "record_dir_of",
    "sha256_file",
    "write_record",
]

log = logging.getLogger(__name__)

RECORD_FILE = "model.json"
Verdict = Literal["better", "same", "worse"]


class RegistryError(ValueError):
    """A model version cannot be found or read."""


class FileRef(BaseModel):
    """A file by path and content: the path may move, the sha256 says which weights."""

    path: str
    sha256: str


class DatasetRef(BaseModel):
    """The dataset a version was trained on: its data.yaml and, when the dataset has a
    ``manifest.json`` (``citywatch model dataset`` writes one), its content hash and counts."""

    path: str
    content_hash: str | None = None
    counts: dict[str, Any] = Field(default_factory=dict)


class BacktestEntry(BaseModel):
    """The outcome of one back-test of this version (the figures are in ``file``)."""

    created: datetime
    against: FileRef
    dataset: DatasetRef
    backend: str
    verdict: Verdict
    reasons: list[str] = Field(default_factory=list)
    suite: bool = False
    file: str = "backtest.json"


class RolloutEntry(BaseModel):
    """One rollout (or rollback): who sent which weights to which cameras of which config."""

    created: datetime
    by: str
    action: Literal["rollout", "rollback"] = "rollout"
    config: str
    weights: str
    cameras: dict[str, str] = Field(default_factory=dict)
    """Camera id → the weights it ran before (what a rollback restores)."""
    forced: bool = False
    reason: str = ""


class ModelRecord(BaseModel):
    """``model.json``: a trained model version, machine-readable (its card is made from it)."""

    name: str
    version: int
    created: datetime
    files: dict[str, FileRef]
    """``pt`` and ``onnx``: the weights of this version, paths relative to its directory."""
    names: list[str]
    imgsz: int
    parent: FileRef | None = None
    dataset: DatasetRef | None = None
    recipe: Literal["synthetic", "fine-tune"] = "fine-tune"
    settings: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    per_class_map50: dict[str, float] = Field(default_factory=dict)
    train_s: float = 0.0
    host: dict[str, str] = Field(default_factory=dict)
    backtests: list[BacktestEntry] = Field(default_factory=list)
    rollouts: list[RolloutEntry] = Field(default_factory=list)

    def weights(self, directory: Path, kind: str) -> Path:
        """The absolute path of this version's ``pt`` or ``onnx`` weights."""
        if kind not in self.files:
            raise RegistryError(f"{directory} has no {kind} weights (it has {sorted(self.files)})")
        return directory / self.files[kind].path

    def latest_backtest(self, against_sha256: str) -> BacktestEntry | None:
        """The most recent back-test against the weights with this sha256."""
        found = [b for b in self.backtests if b.against.sha256 == against_sha256]
        return found[-1] if found else None


def sha256_file(path: Path) -> str:
    """The weights' identity: two copies of a model in different places are one model."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def next_version_dir(registry: Path, name: str) -> tuple[Path, int]:
    """A new ``<name>-vN`` under ``registry`` (N one past the highest there, from 2: version 1
    is the model the name started with, e.g. the bundled ``models/street``)."""
    pattern = re.compile(rf"^{re.escape(name)}-v(\d+)$")
    taken = [int(m.group(1)) for p in registry.glob(f"{name}-v*") if (m := pattern.match(p.name))]
    version = max([1, *taken]) + 1
    return registry / f"{name}-v{version}", version


def dataset_ref(data_yaml: Path) -> DatasetRef:
    """The dataset's reference, with the manifest's content hash and counts when there is one."""
    manifest = data_yaml.parent / "manifest.json"
    ref = DatasetRef(path=str(data_yaml.resolve()))
    if manifest.is_file():
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise RegistryError(
                f"{manifest} is not readable JSON ({exc}); re-export the dataset"
            ) from None
        ref.content_hash = data.get("content_hash") or data.get("content_sha256")
        counts = data.get("counts")
        ref.counts = counts if isinstance(counts, dict) else {}
    return ref


def host_info(device: str) -> dict[str, str]:
    """Where a model was trained: enough to tell a CPU run from a GPU run a year later."""
    info = {
        "host": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": str(os.cpu_count() or 0),
        "device": device,
    }
    for package in ("torch", "ultralytics", "onnxruntime"):
        try:
            module = __import__(package)
        except ImportError:
            continue
        info[package] = str(getattr(module, "__version__", "?"))
    return info


def operator() -> str:
    """Who is rolling out (recorded with each rollout)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER", "unknown")


def read_record(directory: Path) -> ModelRecord:
    path = directory / RECORD_FILE
    try:
        return ModelRecord.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RegistryError(
            f"{directory} has no {RECORD_FILE}: it is not a model version made by"
            " `citywatch model train`; give a version directory or its weights"
        ) from None
    except ValueError as exc:
        raise RegistryError(f"{path} is not a valid model record: {exc}") from None


def write_record(directory: Path, record: ModelRecord) -> Path:
    """Write ``model.json`` (atomically: a half-written record would lose the history)."""
    path = directory / RECORD_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(record.model_dump_json(indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def record_dir_of(candidate: Path) -> Path:
    """The version directory of ``candidate``: the directory itself, or the directory of a
    weights file inside one."""
    directory = candidate if candidate.is_dir() else candidate.parent
    if not (directory / RECORD_FILE).is_file():
        raise RegistryError(
            f"{candidate} is not a model version (no {RECORD_FILE} in {directory}); train one"
            " with `citywatch model train`, or give the version directory it wrote"
        )
    return directory


def find_versions(registry: Path) -> list[tuple[Path, ModelRecord]]:
    """Every version directly under ``registry``, by name then version."""
    found = []
    for path in sorted(registry.glob(f"*/{RECORD_FILE}")):
        try:
            found.append((path.parent, read_record(path.parent)))
        except RegistryError as exc:
            log.warning("skipping %s: %s", path.parent, exc)
    return sorted(found, key=lambda item: (item[1].name, item[1].version))


def now() -> datetime:
    return datetime.now(UTC)
