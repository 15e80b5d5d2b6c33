"""Street scenario files: load one (errors at file:line), and render a whole scenario as an
mp4 with MOTChallenge-style ground truth and the expected events as JSON lines, for the
scored scenario suite. What a file says is in :mod:`.script`; :class:`ScenarioPlayer`
renders any instant on demand.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
from pydantic import ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from citywatch.hardware.camera.street.player import ScenarioPlayer
from citywatch.hardware.camera.street.scene import TruthBox
from citywatch.hardware.camera.street.script import ExpectedEvent, Scenario

__all__ = [
    "SCENARIO_DIR",
    "ExpectedEvent",
    "RenderedVideo",
    "Scenario",
    "ScenarioError",
    "ScenarioPlayer",
    "load_scenario",
    "render_video",
    "scenario_names",
]

SCENARIO_DIR = Path(__file__).resolve().parents[3] / "configs" / "scenarios"
"""Where a bare scenario name is looked up (``configs/scenarios/NAME.yaml``)."""


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the file, line and field."""


def scenario_names() -> list[str]:
    """The scenarios shipped in ``configs/scenarios``."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))


def load_scenario(path_or_name: str | Path) -> Scenario:
    """Load a scenario from a path, or by bare name from ``configs/scenarios/NAME.yaml``."""
    text = str(path_or_name)
    is_path = isinstance(path_or_name, Path) or "/" in text or text.endswith((".yaml", ".yml"))
    path = Path(path_or_name) if is_path else SCENARIO_DIR / f"{text}.yaml"
    if not path.is_file():
        known = ", ".join(scenario_names()) or "none"
        raise ScenarioError(f"{path}: no such scenario file (known scenarios: {known})")
    try:
        tree = YAML(typ="rt").load(path.read_text(encoding="utf-8"))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f":{mark.line + 1}" if mark else ""
        raise ScenarioError(f"{path}{line}: invalid YAML: {exc.problem}") from None
    if not isinstance(tree, CommentedMap):
        raise ScenarioError(f"{path}: a scenario file is a mapping (name, duration_s, actors, ...)")
    lines: dict[tuple[str | int, ...], int] = {}
    data = _plain(tree, (), lines)
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        problems = [_explain(path, err, data, lines) for err in exc.errors(include_url=False)]
        raise ScenarioError("\n".join(problems)) from None


def _plain(node: Any, loc: tuple[str | int, ...], lines: dict[tuple[str | int, ...], int]) -> Any:
    """Plain Python from ruamel's tree, noting the line of every key and item."""
    if isinstance(node, CommentedMap):
        out = {}
        for key, value in node.items():
            lines[(*loc, key)] = node.lc.key(key)[0] + 1
            out[key] = _plain(value, (*loc, key), lines)
        return out
    if isinstance(node, CommentedSeq):
        items = []
        for index, value in enumerate(node):
            lines[(*loc, index)] = node.lc.item(index)[0] + 1
            items.append(_plain(value, (*loc, index), lines))
        return items
    return node


def _explain(path: Path, err: Any, data: Any, lines: dict[tuple[str | int, ...], int]) -> str:
    """One validation error as ``file:line: field: message``.

    Pydantic puts union tags (``car``, ``smoke``) into the error path that are not keys in
    the file; only the parts that exist in the data are kept.
    """
    loc: tuple[str | int, ...] = ()
    node = data
    for part in err["loc"]:
        if (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        ):
            node = node[part]
            loc = (*loc, part)
        elif isinstance(node, dict) and part == err["loc"][-1]:
            loc = (*loc, part)
    line, probe = None, loc
    while probe and line is None:
        line = lines.get(probe)
        probe = probe[:-1]
    field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    message = err["msg"]
    if err["type"] == "extra_forbidden":
        message = f"unknown field {loc[-1]!r} (check the spelling)"
    elif err["type"] == "missing":
        message = f"required field {err['loc'][-1]!r} is missing"
    elif "input" in err and not isinstance(err["input"], dict | list):
        message += f" (got {err['input']!r})"
    return f"{path}{f':{line}' if line else ''}: {field or '(top level)'}: {message}"


@dataclass(frozen=True)
class RenderedVideo:
    frames: int
    video: Path
    truth: Path
    expect: Path


def render_video(
    scenario: Scenario,
    video_path: Path,
    truth_path: Path,
    expect_path: Path | None = None,
    *,
    progress: bool = True,
) -> RenderedVideo:
    """Write the whole scenario: an mp4, its ground truth and its expected events.

    The truth CSV is MOTChallenge-style without a header, one row per visible actor per
    frame: ``frame,id,left,top,width,height,conf,class,visibility`` (frame from 1, id the
    actor's track id, conf 1, class a class name). The expected events go to
    ``expect_path`` (default: the truth path with suffix ``.expect.jsonl``), one per line.
    """
    video_path, truth_path = Path(video_path), Path(truth_path)
    expect_path = Path(expect_path) if expect_path else truth_path.with_suffix(".expect.jsonl")
    for path in (video_path, truth_path, expect_path):
        path.parent.mkdir(parents=True, exist_ok=True)
    player = ScenarioPlayer(scenario)
    width, height = scenario.size
    writer = cv2.VideoWriter(
        str(video_path), cv2.VideoWriter.fourcc(*"mp4v"), scenario.fps, (width, height)
    )
    if not writer.isOpened():
        raise OSError(f"cannot open {video_path} for writing an mp4v video")
    bar = Progress(
        TextColumn(f"rendering {scenario.name}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not progress,
    )
    try:
        with truth_path.open("w", newline="", encoding="utf-8") as handle, bar:
            rows = csv.writer(handle)
            task = bar.add_task("frames", total=player.frame_count)
            for index in range(player.frame_count):
                image, truth = player.frame(index)
                writer.write(image)
                rows.writerows(_mot_rows(index + 1, truth))
                bar.advance(task)
    finally:
        writer.release()
    expect_path.write_text(
        "".join(json.dumps(e.record()) + "\n" for e in scenario.expect), encoding="utf-8"
    )
    return RenderedVideo(player.frame_count, video_path, truth_path, expect_path)


def _mot_rows(frame: int, truth: Sequence[TruthBox]) -> list[list[object]]:
    return [
        [frame, t.track_id, f"{t.xyxy[0]:.1f}", f"{t.xyxy[1]:.1f}", f"{t.xyxy[2] - t.xyxy[0]:.1f}",
         f"{t.xyxy[3] - t.xyxy[1]:.1f}", 1, t.class_name, f"{t.visibility:.3f}"]
        for t in truth
    ]  # fmt: skip
