"""Detection files: a detector's output per frame, saved so rules can be replayed without it.

The format is MOTChallenge-style CSV, one box a row::

    frame,id,left,top,width,height,conf,class[,visibility]

``frame`` counts from 1, boxes are in pixels, ``class`` is a class *name* (``car``), ``id``
is a tracker id or -1 for an untracked detection, and ``visibility`` is accepted and
ignored. Blank lines and ``#`` comments are skipped. :func:`parse_detections` is the pure
core over lines; :func:`read_detections` and :func:`write_detections` are the thin file
shell.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from citywatch.models.detections import Detections

__all__ = [
    "UNTRACKED",
    "DetectionFileError",
    "DetectionFrame",
    "format_detections",
    "parse_detections",
    "read_detections",
    "write_detections",
]

UNTRACKED = -1
"""The ``id`` of a detection no tracker has followed."""

_COLUMNS = "frame,id,left,top,width,height,conf,class[,visibility]"


class DetectionFileError(ValueError):
    """A row of a detection file cannot be read; the message names the file and line."""

    def __init__(self, source: str, line: int, problem: str) -> None:
        super().__init__(f"{source}:{line}: {problem} (expected {_COLUMNS})")
        self.source = source
        self.line = line
        self.problem = problem


class DetectionFrame(NamedTuple):
    """The detections of one frame. ``track_ids`` is ``None`` when the whole file is
    untracked; otherwise one id per box, -1 for boxes without a track."""

    frame: int
    detections: Detections
    track_ids: NDArray[np.int64] | None


class _Row(NamedTuple):
    frame: int
    track_id: int
    box: tuple[float, float, float, float]
    confidence: float
    class_name: str


def parse_detections(
    lines: Iterable[str], *, source: str = "<detections>", total_frames: int | None = None
) -> list[DetectionFrame]:
    """Group the rows in ``lines`` by frame, in frame order.

    With ``total_frames``, every frame from 1 to ``total_frames`` appears (empty ones
    included, so a replay's clock advances through them) and a row past the end is an
    error. ``source`` names the file in error messages.
    """
    if total_frames is not None and total_frames < 0:
        raise ValueError(f"total_frames must be >= 0, got {total_frames}")
    by_frame: dict[int, list[_Row]] = {}
    tracked = False
    for number, fields in enumerate(csv.reader(lines), start=1):
        if not fields or not "".join(fields).strip() or fields[0].lstrip().startswith("#"):
            continue
        if number == 1 and fields[0].strip().lower() == "frame":
            continue  # a header row
        row = _parse_row(fields, source, number)
        if total_frames is not None and row.frame > total_frames:
            raise DetectionFileError(
                source, number, f"frame {row.frame} is past the video's {total_frames} frames"
            )
        tracked = tracked or row.track_id != UNTRACKED
        by_frame.setdefault(row.frame, []).append(row)

    numbers = range(1, total_frames + 1) if total_frames is not None else sorted(by_frame)
    return [_frame(n, by_frame.get(n, []), tracked) for n in numbers]


def _parse_row(fields: list[str], source: str, line: int) -> _Row:
    if len(fields) not in (8, 9):
        raise DetectionFileError(source, line, f"{len(fields)} columns, need 8 or 9")
    cells = [cell.strip() for cell in fields]

    def number(index: int, name: str) -> float:
        try:
            value = float(cells[index])
        except ValueError:
            raise DetectionFileError(
                source, line, f"{name} {cells[index]!r} is not a number"
            ) from None
        if not math.isfinite(value):
            raise DetectionFileError(source, line, f"{name} {cells[index]!r} is not finite")
        return value

    def integer(index: int, name: str) -> int:
        value = number(index, name)
        if not value.is_integer():
            raise DetectionFileError(source, line, f"{name} {cells[index]!r} is not an integer")
        return int(value)

    frame = integer(0, "frame")
    if frame < 1:
        raise DetectionFileError(source, line, f"frame {frame} must be >= 1 (frames count from 1)")
    track_id = integer(1, "id")
    if track_id < UNTRACKED:
        raise DetectionFileError(source, line, f"id {track_id} must be >= 0, or -1 if untracked")
    left, top = number(2, "left"), number(3, "top")
    width, height = number(4, "width"), number(5, "height")
    if width < 0 or height < 0:
        raise DetectionFileError(source, line, f"box size {width}x{height} is negative")
    confidence = number(6, "conf")
    if not 0 <= confidence <= 1:
        raise DetectionFileError(source, line, f"conf {confidence} is outside [0, 1]")
    class_name = cells[7]
    if not class_name:
        raise DetectionFileError(source, line, "class name is empty")
    if len(cells) == 9:
        number(8, "visibility")
    return _Row(frame, track_id, (left, top, left + width, top + height), confidence, class_name)


def _frame(number: int, rows: list[_Row], tracked: bool) -> DetectionFrame:
    if rows:
        detections = Detections(
            np.array([row.box for row in rows], np.float32),
            np.array([row.confidence for row in rows], np.float32),
            tuple(row.class_name for row in rows),
        )
    else:
        detections = Detections.empty()
    ids = np.array([row.track_id for row in rows], np.int64) if tracked else None
    return DetectionFrame(number, detections, ids)


def format_detections(
    frames: Iterable[tuple[int, Detections, NDArray[np.integer] | None]],
) -> Iterator[str]:
    """The CSV rows (without newlines) of ``frames``: one per box, ``-1`` ids when untracked."""
    for frame, detections, track_ids in frames:
        if frame < 1:
            raise ValueError(f"frame numbers count from 1, got {frame}")
        if track_ids is not None and len(track_ids) != len(detections):
            raise ValueError(
                f"frame {frame}: {len(track_ids)} track ids for {len(detections)} detections"
            )
        ids = [UNTRACKED] * len(detections) if track_ids is None else [int(i) for i in track_ids]
        for det, track_id in zip(detections, ids, strict=True):
            yield _csv_line(
                [
                    str(frame),
                    str(track_id),
                    f"{det.x1:.2f}",
                    f"{det.y1:.2f}",
                    f"{det.x2 - det.x1:.2f}",
                    f"{det.y2 - det.y1:.2f}",
                    f"{det.confidence:.4f}",
                    det.class_name,
                ]
            )


class _LineWriter:
    """A file-like sink for ``csv.writer`` that keeps the last written line."""

    line = ""

    def write(self, text: str) -> int:
        self.line = text
        return len(text)


def _csv_line(cells: list[str]) -> str:
    sink = _LineWriter()
    csv.writer(sink, lineterminator="").writerow(cells)  # quotes a class name with a comma
    return sink.line


def read_detections(path: Path | str, *, total_frames: int | None = None) -> list[DetectionFrame]:
    """Read a detection file; see :func:`parse_detections`."""
    path = Path(path)
    with path.open(encoding="utf-8", newline="") as file:
        return parse_detections(file, source=str(path), total_frames=total_frames)


def write_detections(
    path: Path | str, frames: Iterable[tuple[int, Detections, NDArray[np.integer] | None]]
) -> int:
    """Write ``frames`` as a detection file (replacing it); return the number of rows."""
    path = Path(path)
    count = 0
    with path.open("w", encoding="utf-8", newline="") as file:
        for line in format_detections(frames):
            file.write(line + "\n")
            count += 1
    return count
