"""Which rules a replay's start time keeps outside their schedule.

``edge replay`` puts frame 1 at ``--start`` (default: now) so schedules apply as they would
live. A replay run at night of a recording made by day then finds every daytime rule
inactive and reports nothing, with nothing to say why: this module tells the operator which
rules were inactive for all or part of the replayed span, so the CLI can warn.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from citywatch.config.camera import CameraConfig
from citywatch.edge.camera.episodes import schedule_active

__all__ = ["ScheduleGap", "schedule_gaps"]

_STEP = timedelta(minutes=1)


@dataclass(frozen=True)
class ScheduleGap:
    """A scheduled rule that was inactive for some of the replayed span."""

    rule: str
    window: str
    """The schedule as the operator wrote it, e.g. ``07:00–22:00 mon,tue``."""
    span: str
    """The replayed span in the site's local time, e.g. ``2026-05-12 23:30–23:31``."""
    never_active: bool

    def message(self) -> str:
        """One line for the operator: what happened and what to pass instead."""
        how = "never active" if self.never_active else "inactive for part of it"
        return (
            f"rule {self.rule!r} is scheduled {self.window} but the replay runs {self.span}"
            f" local time, so it was {how}: pass --start with the time the recording was"
            " made (ISO 8601, e.g. 2026-05-12T09:00:00+08:00)"
        )


def schedule_gaps(
    camera: CameraConfig, tz: str, start: datetime, duration_s: float
) -> list[ScheduleGap]:
    """The camera's scheduled rules that were inactive somewhere in ``start`` + duration.

    Sampled every minute and at both ends (schedules are minute-grained in practice).
    """
    zone = ZoneInfo(tz)
    end = start + timedelta(seconds=max(duration_s, 0.0))
    instants = [start]
    while instants[-1] + _STEP < end:
        instants.append(instants[-1] + _STEP)
    instants.append(end)
    local = [t.astimezone(zone) for t in instants]
    span = f"{local[0]:%Y-%m-%d %H:%M:%S}–{local[-1]:%H:%M:%S}"
    gaps = []
    for rule in camera.rules:
        if rule.schedule is None:
            continue
        active = [schedule_active(rule.schedule, t) for t in local]
        if all(active):
            continue
        schedule = rule.schedule
        window = f"{schedule.start:%H:%M}–{schedule.end:%H:%M}"
        if len(schedule.days) < 7:
            window += " " + ",".join(schedule.days)
        gaps.append(ScheduleGap(rule.name, window, span, never_active=not any(active)))
    return gaps
