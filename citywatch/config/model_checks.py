"""Model checks at config time: what each camera's detectors can report, read from the
model files' own metadata without loading or running them, against what its rules ask.

``citywatch config check`` runs these after the config validates, so an operator learns
at the desk, with the file and line, that a rule asks for ``fire`` from a COCO model or
that a 640-trained model is configured at 320, instead of from a camera refusing to start
at a street cabinet. ONNX: ultralytics' ``names``/``imgsz`` metadata and the input shape
(``onnx`` reads the file; without it onnxruntime opens it, never running it). ``.pt``: the
checkpoint's pickle is read by a reader that builds no object and imports nothing, taking
the model's ``names`` and the training ``imgsz``; it never executes the file's code.
"""

from __future__ import annotations

import ast
import importlib.util
import logging
import pickle
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from citywatch.config.camera import CameraConfig, StreetVendingRule
from citywatch.config.detector import DetectorConfig, canonical_class
from citywatch.config.tree import CitywatchConfig

__all__ = ["ModelInfo", "ModelUnreadable", "model_problems", "read_model_info"]

log = logging.getLogger(__name__)

Problem = TypeVar("Problem")
Loc = tuple[str | int, ...]


class ModelUnreadable(ValueError):
    """The weights exist but their class names cannot be read without running them."""


@dataclass(frozen=True)
class ModelInfo:
    """What a model file says about itself."""

    names: tuple[str, ...]
    fixed_hw: tuple[int, int] | None
    """The input (h, w) of a fixed-size export; None for a dynamic one or a ``.pt``."""
    trained_imgsz: int | None
    """The size the model was trained (``.pt``) or exported (ONNX) at, when recorded."""


# -- reading ---------------------------------------------------------------------------------


def read_model_info(path: Path) -> ModelInfo:
    """Names and input size of an ultralytics ``.onnx`` export or ``.pt`` checkpoint."""
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return _read_onnx(path)
    if suffix == ".pt":
        return _read_checkpoint(path)
    raise ModelUnreadable(
        f"{path}: class names are read from .onnx and .pt files only; the classes of this"
        " model are checked when the camera starts"
    )


def _read_onnx(path: Path) -> ModelInfo:
    try:
        import onnx
    except ImportError:  # an edge-only install: onnxruntime reads it (without running it)
        return _read_onnx_session(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and friends, untyped
        raise ModelUnreadable(f"{path} is not a readable ONNX file ({exc})") from exc
    meta = {p.key: p.value for p in model.metadata_props}
    dims = model.graph.input[0].type.tensor_type.shape.dim if model.graph.input else []
    shape = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    return _onnx_info(path, meta, shape)


def _read_onnx_session(path: Path) -> ModelInfo:
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's own untyped Fail/InvalidGraph
        raise ModelUnreadable(f"{path} is not a readable ONNX file ({exc})") from exc
    shape = [d if isinstance(d, int) else None for d in session.get_inputs()[0].shape]
    return _onnx_info(path, dict(session.get_modelmeta().custom_metadata_map), shape)


def _onnx_info(path: Path, meta: dict[str, str], shape: list[int | None]) -> ModelInfo:
    if "names" not in meta:
        raise ModelUnreadable(
            f"{path} has no 'names' metadata, so its classes are unknown; export it with"
            " ultralytics (yolo export format=onnx)"
        )
    try:
        names = ast.literal_eval(meta["names"])
        imgsz = ast.literal_eval(meta["imgsz"]) if "imgsz" in meta else None
    except (ValueError, SyntaxError) as exc:
        raise ModelUnreadable(f"{path}: unreadable metadata ({exc})") from exc
    fixed = None
    if len(shape) == 4 and shape[2] and shape[3]:
        fixed = (int(shape[2]), int(shape[3]))
    trained = max(imgsz) if isinstance(imgsz, list | tuple) and imgsz else imgsz
    return ModelInfo(_ordered(names, path), fixed, int(trained) if trained else None)


def _ordered(names: object, path: Path) -> tuple[str, ...]:
    if isinstance(names, list | tuple):
        return tuple(str(n) for n in names)
    if isinstance(names, dict) and names:
        return tuple(str(names[k]) for k in sorted(names))
    raise ModelUnreadable(f"{path}: 'names' is not a list or dict of class names")


class _Stub:
    """Whatever class the pickle names: records its arguments and state, runs nothing."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _Stub:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.__dict__.setdefault("items", {})[key] = value

    def append(self, value: Any) -> None:
        self.__dict__.setdefault("values", []).append(value)

    def extend(self, values: Any) -> None:
        self.__dict__.setdefault("values", []).extend(values)


class _InertUnpickler(pickle.Unpickler):
    """Resolves every global to a fresh :class:`_Stub` subclass: no import, no call of
    anything the file names, no tensor data read (persistent ids become None)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in {("builtins", "set"), ("builtins", "frozenset")}:
            return set
        return type(name, (_Stub,), {"module": module})

    def persistent_load(self, pid: Any) -> None:
        return None


def _read_checkpoint(path: Path) -> ModelInfo:
    try:
        with zipfile.ZipFile(path) as archive:
            member = next(n for n in archive.namelist() if n.endswith("/data.pkl"))
            with archive.open(member) as fh:
                checkpoint = _InertUnpickler(fh).load()
    except (zipfile.BadZipFile, StopIteration) as exc:
        raise ModelUnreadable(
            f"{path} is not a torch zip checkpoint; its classes are checked when the camera starts"
        ) from exc
    except (pickle.UnpicklingError, EOFError, AttributeError, TypeError) as exc:
        raise ModelUnreadable(f"{path}: unreadable checkpoint ({exc})") from exc
    if not isinstance(checkpoint, dict):
        raise ModelUnreadable(f"{path} is not an ultralytics checkpoint")
    model = checkpoint.get("ema") or checkpoint.get("model")
    state = getattr(model, "state", None)
    names = state.get("names") if isinstance(state, dict) else None
    if names is None:
        raise ModelUnreadable(f"{path}: no class names in the checkpoint's model")
    args = checkpoint.get("train_args")
    imgsz = args.get("imgsz") if isinstance(args, dict) else None
    return ModelInfo(_ordered(names, path), None, int(imgsz) if isinstance(imgsz, int) else None)


# -- checking --------------------------------------------------------------------------------


def _models_dir() -> Path:
    """The repository's ``models/`` folder, where relative weights are read (found without
    importing the models package: config imports no stage)."""
    spec = importlib.util.find_spec("citywatch.models")
    assert spec is not None and spec.submodule_search_locations is not None
    return Path(next(iter(spec.submodule_search_locations)))


def model_problems(
    config: CitywatchConfig,
    locate: Callable[[Loc, str], Problem],
    models_dir: Path | None = None,
) -> list[Problem]:
    """Errors for every camera whose models cannot serve its rules, located by ``locate``;
    imgsz mismatches are logged as located warnings and do not fail the check."""
    models_dir = models_dir or _models_dir()
    infos: dict[Path, ModelInfo | str] = {}
    errors: list[Problem] = []
    for index, camera in enumerate(config.devices.cameras):
        base: Loc = ("devices", "cameras", index)
        for loc, message, fatal in camera_issues(camera, base, models_dir, infos):
            if fatal:
                errors.append(locate(loc, message))
            else:
                log.warning("warning: %s", locate(loc, message))
    return errors


def camera_issues(
    camera: CameraConfig, base: Loc, models_dir: Path, infos: dict[Path, ModelInfo | str]
) -> list[tuple[Loc, str, bool]]:
    """(path, message, is_error) for one camera: weights, maps, filters, rules, sizes."""
    issues: list[tuple[Loc, str, bool]] = []
    reported: set[str] = set()
    unknown = False
    for j, entry in enumerate(camera.detector_list):
        at: Loc = (*base, "detectors", j) if camera.detectors else (*base, "detector")
        if entry.backend == "classical":
            reported.add("smoke")
            continue
        path = entry.weights_path(models_dir)
        if path not in infos:
            infos[path] = _info_or_reason(path)
        info = infos[path]
        if isinstance(info, str):
            issues.append(((*at, "weights"), info, not path.exists()))
            unknown = True
            continue
        issues += _entry_issues(entry, info, at)
        names = {canonical_class(n, entry.class_map) for n in info.names}
        reported |= names if entry.classes is None else names & set(entry.classes)
    if unknown:
        return issues
    for k, rule in enumerate(camera.rules):
        wanted = list(rule.classes)
        if isinstance(rule, StreetVendingRule) and rule.require_person:
            wanted += list(rule.person_classes)
        missing = [c for c in dict.fromkeys(wanted) if c not in reported]
        if missing:
            issues.append(
                (
                    (*base, "rules", k, "classes"),
                    f"rule {rule.name!r} asks for {missing}, which none of camera"
                    f" {camera.id!r}'s detectors reports (after class_map): they report"
                    f" {_some(sorted(reported))}; fix the class names, map a model class to them"
                    " (class_map), or add a detector that has them",
                    True,
                )
            )
    return issues


def _some(names: list[str], shown: int = 12) -> str:
    """A long class list cut short (a COCO model has 80)."""
    if len(names) <= shown:
        return str(names)
    return f"{names[:shown]} and {len(names) - shown} more"


def _info_or_reason(path: Path) -> ModelInfo | str:
    if not path.exists():
        return f"model weights not found at {path}; put the model file there or fix the path"
    try:
        return read_model_info(path)
    except ModelUnreadable as exc:
        return str(exc)


def _entry_issues(entry: DetectorConfig, info: ModelInfo, at: Loc) -> list[tuple[Loc, str, bool]]:
    issues: list[tuple[Loc, str, bool]] = []
    lacking = [name for name in entry.class_map if name not in info.names]
    if lacking:
        issues.append(
            (
                (*at, "class_map"),
                f"class_map names {lacking}, which the model lacks; it has {list(info.names)}",
                True,
            )
        )
    mapped = {canonical_class(n, entry.class_map) for n in info.names}
    for key, wanted in (
        ("classes", entry.classes or ()),
        ("class_confidence", entry.class_confidence),
    ):
        absent = sorted(set(wanted) - mapped)
        if absent:
            issues.append(
                (
                    (*at, key),
                    f"{key} names {absent}, which the model does not report (after"
                    f" class_map); it reports {sorted(mapped)}",
                    True,
                )
            )
    if info.fixed_hw is not None and info.fixed_hw != (entry.imgsz, entry.imgsz):
        h, w = info.fixed_hw
        issues.append(
            (
                (*at, "imgsz"),
                f"the model was exported with a fixed {w}×{h} input and runs at that size,"
                f" not imgsz {entry.imgsz}; set imgsz: {max(h, w)} or re-export it dynamic",
                False,
            )
        )
    elif info.trained_imgsz is not None and entry.imgsz < info.trained_imgsz:
        issues.append(
            (
                (*at, "imgsz"),
                f"imgsz {entry.imgsz} is below the {info.trained_imgsz} the model was"
                f" trained or exported at: small objects will be missed; set imgsz:"
                f" {info.trained_imgsz} unless you measured the smaller size",
                False,
            )
        )
    return issues
