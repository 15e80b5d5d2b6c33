"""Truth files for back-testing: the alerts a labelled recording should raise, one JSON
object a line (``kind``, optional ``zone`` and ``position``, a start and optional end in video
seconds or wall time). A line that cannot be read is an error naming the file and line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from citywatch.contracts.messages import AlertKind

__all__ = ["TruthEvent", "TruthFileError", "parse_truth", "read_truth", "video_seconds"]


class TruthFileError(ValueError):
    """A line of a truth file cannot be read; the message names the file and line."""


class TruthEvent(BaseModel):
    """One expected alert: what, where and from when (video seconds or wall time)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: AlertKind
    zone: str | None = None
    start_s: float | None = Field(default=None, ge=0, description="video seconds")
    start: AwareDatetime | None = Field(default=None, description="wall time, ISO 8601")
    end_s: float | None = Field(default=None, ge=0)
    end: AwareDatetime | None = None
    position: tuple[float, float] | None = Field(default=None, description="[x, y] in 0–1")
    expected_delay_s: float | None = Field(
        default=None, ge=0, description="overrides the kind's expected latency"
    )
    line: int | None = Field(default=None, description="where in the truth file (reports)")

    @model_validator(mode="after")
    def _one_start_and_sane_end(self) -> TruthEvent:
        if (self.start_s is None) == (self.start is None):
            raise ValueError("give exactly one of start_s (video seconds) or start (wall time)")
        if self.end_s is not None and self.end is not None:
            raise ValueError("give at most one of end_s or end")
        if self.position is not None and not all(0 <= v <= 1 for v in self.position):
            raise ValueError(f"position {list(self.position)} must be normalised to 0–1")
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValueError("end is before start")
        if self.start_s is not None and self.end_s is not None and self.end_s < self.start_s:
            raise ValueError("end_s is before start_s")
        return self

    def span_s(self, video_start: datetime) -> tuple[float, float | None]:
        """(start, end or ``None`` if open) in video seconds."""
        if self.start_s is not None:
            start = self.start_s
        else:
            assert self.start is not None  # the validator guarantees one of the two
            start = video_seconds(self.start, video_start)
        if self.end_s is not None:
            end: float | None = self.end_s
        elif self.end is not None:
            end = video_seconds(self.end, video_start)
        else:
            end = None
        if end is not None and end < start:
            raise ValueError(f"truth event {self.describe()} ends before it starts")
        return start, end

    def describe(self) -> str:
        where = f" line {self.line}" if self.line is not None else ""
        zone = f" in {self.zone}" if self.zone else ""
        at = f" at ({self.position[0]:.2f}, {self.position[1]:.2f})" if self.position else ""
        when = f"{self.start_s:g}s" if self.start_s is not None else f"{self.start}"
        return f"{self.kind.value}{zone}{at} from {when}{where}"


def video_seconds(time: datetime, video_start: datetime) -> float:
    """``time`` on the video's clock, whose second 0 is the wall time ``video_start``."""
    return (time - video_start).total_seconds()


def parse_truth(lines: Iterable[str], *, source: str = "<truth>") -> list[TruthEvent]:
    """Truth events from JSON lines; blank lines and ``#`` comments are skipped."""
    events = []
    for number, text in enumerate(lines, start=1):
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TruthFileError(f"{source}:{number}: not valid JSON: {exc.msg}") from None
        if not isinstance(raw, dict):
            raise TruthFileError(f"{source}:{number}: each line is a JSON object")
        try:
            events.append(TruthEvent.model_validate({**raw, "line": number}))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'event'}: {err['msg']}"
                for err in exc.errors(include_url=False)
            )
            raise TruthFileError(f"{source}:{number}: {problems}") from None
    return events


def read_truth(path: Path | str) -> list[TruthEvent]:
    """Read a truth file; see :func:`parse_truth`."""
    path = Path(path)
    with path.open(encoding="utf-8") as file:
        return parse_truth(file, source=str(path))
