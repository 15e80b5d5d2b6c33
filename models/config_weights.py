"""Rewrite the ``weights:`` of chosen cameras' detectors in a site config, in place, leaving
every other character of the YAML as the operator wrote it (comments, anchors, flow maps).

ruamel's round-trip parser says where each camera's detector entry and its ``weights`` value
start (line and column); the edit replaces just that scalar, or adds ``weights:`` to an
entry that had none (the bundled model). Dumping the whole tree again would reflow an
operator's file; a line-level edit at a parser-given position cannot. A detector entry that
is a YAML anchor shared with a camera not being changed is refused, not silently changed
for both.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

__all__ = ["ConfigEditError", "DetectorSlot", "planned_texts"]

PLAIN = re.compile(r"[A-Za-z0-9_./~][A-Za-z0-9_./~+@=-]*")
"""A path safe to write as a plain YAML scalar (no quoting needed in block or flow style)."""


class ConfigEditError(ValueError):
    """The config cannot be edited safely at the place a rollout would change."""


@dataclass(frozen=True)
class DetectorSlot:
    """One detector entry of one camera: ``index`` in its ``detectors`` list, or 0 for a
    single ``detector`` block (or none: the default bundled model)."""

    camera: str
    index: int


def _scalar(value: str) -> str:
    return value if PLAIN.fullmatch(value) else json.dumps(value)


def _scalar_end(line: str, col: int, flow: bool) -> int:
    """Where the scalar that starts at ``col`` ends (exclusive)."""
    quote = line[col] if col < len(line) else ""
    if quote == '"':
        at = col + 1
        while at < len(line) and line[at] != '"':
            at += 2 if line[at] == "\\" else 1
        return at + 1
    if quote == "'":
        at = col + 1
        while at < len(line):
            if line[at] == "'" and line[at + 1 : at + 2] != "'":
                return at + 1
            at += 2 if line[at] == "'" else 1
        return at
    stops = [line.find(" #", col)] + ([line.find(c, col) for c in ",}]"] if flow else [])
    end = min([s for s in stops if s >= 0] or [len(line)])
    return len(line[:end].rstrip())


def _cameras(tree: Any) -> list[CommentedMap]:
    devices = tree.get("devices") if isinstance(tree, CommentedMap) else None
    cameras = devices.get("cameras") if isinstance(devices, CommentedMap) else None
    return [c for c in cameras or [] if isinstance(c, CommentedMap)]


def _entry(camera: CommentedMap, index: int) -> CommentedMap | None:
    if "detectors" in camera:
        return camera["detectors"][index]
    return camera.get("detector")


def _edit(lines: list[str], camera: CommentedMap, entry: CommentedMap | None, value: str) -> None:
    """Set ``weights`` of ``entry`` (of ``camera``) to ``value`` in ``lines``."""
    text = _scalar(value)
    if entry is not None and "weights" in entry:
        line, col = entry.lc.value("weights")
        flow = bool(entry.fa.flow_style())
        end = _scalar_end(lines[line], col, flow)
        lines[line] = lines[line][:col] + text + lines[line][end:]
    elif entry is not None and (entry.fa.flow_style() or not len(entry)):
        empty_block = not len(entry) and camera.get("detector") is entry
        line, col = camera.lc.value("detector") if empty_block else (entry.lc.line, entry.lc.col)
        brace = lines[line].find("{", col)
        if brace < 0:
            raise ConfigEditError("a flow mapping whose '{' is not on its first line")
        rest = lines[line][brace + 1 :]
        joiner = "" if rest.lstrip().startswith("}") else ", "
        lines[line] = lines[line][: brace + 1] + f"weights: {text}{joiner}" + rest
    elif entry is not None and len(entry):
        first = next(iter(entry))
        line, col = entry.lc.key(first)
        if lines[line][:col].strip():  # "- backend: onnx": the new key goes below
            vline, _ = entry.lc.value(first)
            if vline != line or isinstance(entry[first], CommentedMap | list):
                raise ConfigEditError(
                    f"cannot add weights beside {first!r}: write `weights:` into the entry"
                )
            line += 1
        lines.insert(line, " " * col + f"weights: {text}\n")
    elif "detector" in camera:  # `detector:` with nothing under it
        line, _ = camera.lc.key("detector")
        lines[line] = lines[line].rstrip("\n").rstrip() + f" {{weights: {text}}}\n"
    else:  # no detector block (the bundled model): add one below the gateway line
        line, col = camera.lc.key("gateway" if "gateway" in camera else "id")
        lines.insert(line + 1, " " * col + f"detector: {{weights: {text}}}\n")


def planned_texts(files: list[Path], changes: Mapping[DetectorSlot, str]) -> dict[Path, str]:
    """The new text of every file that holds one of the ``changes`` (slot → new weights).

    Raises :class:`ConfigEditError` for a camera not found in any file, or a detector entry
    that is a YAML anchor another (unchanged) camera aliases.
    """
    wanted = {slot.camera for slot in changes}
    found: set[str] = set()
    texts: dict[Path, str] = {}
    for path in files:
        text = path.read_text(encoding="utf-8")
        cameras = _cameras(YAML(typ="rt").load(text))
        mine = [c for c in cameras if str(c.get("id")) in wanted]
        if not mine:
            continue
        owners: dict[int, set[str]] = {}
        for camera in cameras:
            for index in range(len(camera.get("detectors") or [None])):
                node = _entry(camera, index)
                if node is not None:
                    owners.setdefault(id(node), set()).add(str(camera.get("id")))
        lines = text.splitlines(keepends=True)
        edits: dict[tuple[int, int], tuple[CommentedMap, CommentedMap | None, str]] = {}
        for camera in mine:
            camera_id = str(camera["id"])
            found.add(camera_id)
            for slot, value in changes.items():
                if slot.camera != camera_id:
                    continue
                entry = _entry(camera, slot.index)
                shared = owners.get(id(entry), set()) - wanted if entry is not None else set()
                if shared:
                    raise ConfigEditError(
                        f"{path}:{entry.lc.line + 1}: the detector of camera {camera_id} is a"  # type: ignore[union-attr]
                        f" YAML anchor that cameras {sorted(shared)} use too; roll out to them"
                        " as well (--camera, or --gateway), or give the camera its own detector"
                    )
                at = (entry.lc.line, entry.lc.col) if entry is not None else (id(camera), -1)
                edits[at] = (camera, entry, value)
        # bottom-up, so an inserted line does not move the places still to edit
        for (_, _), (camera, entry, value) in sorted(
            edits.items(), key=lambda item: _line_of(item[1][0], item[1][1]), reverse=True
        ):
            _edit(lines, camera, entry, value)
        texts[path] = "".join(lines)
    missing = sorted(wanted - found)
    if missing:
        raise ConfigEditError(f"cameras {missing} are not in {[str(f) for f in files]}")
    return texts


def _line_of(camera: CommentedMap, entry: CommentedMap | None) -> int:
    return int(entry.lc.line if entry is not None else camera.lc.line)
