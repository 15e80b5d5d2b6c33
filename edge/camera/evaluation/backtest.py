"""Back-testing: score the alerts of a replayed recording against labelled truth.

An operator who changes a rule (a shorter dwell, a new zone) replays labelled recordings and
wants to know, per alert kind, how many real events were found (recall), how many alerts
were real (precision), how many repeated an alert already raised (duplicates) and how late
each came. The truth is a JSON-lines file of expected alerts (read by
:mod:`~citywatch.edge.camera.evaluation.truth_file`); only ``start`` messages of the run are detections, one per
episode. :mod:`~citywatch.edge.camera.evaluation.backtest_report` prints the result.

An episode matches a truth event when the kinds are equal, the zones are equal (when both
are known), the positions lie within a tolerance (when both are known), and the alert
started within ``[truth start - early_s, truth end + slack_s]``. Matching is one-to-one
and finds as many pairs as possible, preferring pairs closest to the expected start time;
an unmatched episode that matches some (already taken) event is a duplicate, any other is a
false positive. Both count against precision.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, computed_field

from citywatch.contracts.messages import Alert, AlertKind, Phase
from citywatch.edge.camera.evaluation.truth_file import TruthEvent, video_seconds

__all__ = [
    "AlertEpisode",
    "BacktestReport",
    "Duplicate",
    "FalsePositive",
    "KindScore",
    "Match",
    "Miss",
    "episodes_of",
    "merge_reports",
    "score",
]

Position = tuple[float, float]


class AlertEpisode(BaseModel):
    """One detection of the run: the first ``start`` message of an episode."""

    model_config = ConfigDict(frozen=True)

    episode_id: str
    kind: AlertKind
    zone: str | None
    start_s: float
    position: Position | None


def episodes_of(alerts: Iterable[Alert], video_start: datetime) -> list[AlertEpisode]:
    """The episodes that started in ``alerts`` (resent starts count once), by start time."""
    first: dict[str, Alert] = {}
    for alert in alerts:
        if alert.phase is not Phase.START:
            continue
        known = first.get(alert.episode_id)
        if known is None or alert.event_time < known.event_time:
            first[alert.episode_id] = alert
    episodes = [
        AlertEpisode(
            episode_id=alert.episode_id,
            kind=alert.kind,
            zone=alert.location.zone,
            start_s=video_seconds(alert.event_time, video_start),
            position=_anchor(alert),
        )
        for alert in first.values()
    ]
    return sorted(episodes, key=lambda e: (e.start_s, e.episode_id))


def _anchor(alert: Alert) -> Position | None:
    x, y = alert.attributes.get("anchor_x"), alert.attributes.get("anchor_y")
    if isinstance(x, int | float) and isinstance(y, int | float) and not isinstance(x, bool):
        return float(x), float(y)
    return None


class Match(BaseModel):
    scenario: str = ""
    truth_index: int = Field(description="position in the truth list")
    episode_id: str
    truth: str
    delay_s: float = Field(description="alert start - (truth start + expected latency)")


class Duplicate(BaseModel):
    scenario: str = ""
    truth_index: int = Field(description="position in the truth list")
    episode_id: str
    truth: str


class Miss(BaseModel):
    scenario: str = ""
    truth_index: int = Field(description="position in the truth list")
    truth: str


class FalsePositive(BaseModel):
    scenario: str = ""
    episode_id: str
    kind: AlertKind
    zone: str | None
    start_s: float


class KindScore(BaseModel):
    """Counts for one kind (or all); rates are derived so merged scores stay exact."""

    kind: str
    tp: int = 0
    fp: int = 0
    fn: int = 0
    duplicates: int = 0
    delay_sum_s: float = 0.0
    delay_max_s: float | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def precision(self) -> float | None:
        """Matched episodes over all episodes; ``None`` when the run raised none."""
        raised = self.tp + self.fp + self.duplicates
        return self.tp / raised if raised else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def recall(self) -> float | None:
        """Found events over all truth events; ``None`` when there were none."""
        expected = self.tp + self.fn
        return self.tp / expected if expected else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def delay_mean_s(self) -> float | None:
        return self.delay_sum_s / self.tp if self.tp else None

    def plus(self, other: KindScore, kind: str | None = None) -> KindScore:
        maxima = [m for m in (self.delay_max_s, other.delay_max_s) if m is not None]
        return KindScore(
            kind=kind or self.kind,
            tp=self.tp + other.tp,
            fp=self.fp + other.fp,
            fn=self.fn + other.fn,
            duplicates=self.duplicates + other.duplicates,
            delay_sum_s=self.delay_sum_s + other.delay_sum_s,
            delay_max_s=max(maxima) if maxima else None,
        )


class BacktestReport(BaseModel):
    """The score of one run (or of a suite of runs, see :func:`merge_reports`)."""

    scenario: str = ""
    kinds: dict[str, KindScore]
    total: KindScore
    matches: list[Match] = []
    duplicates: list[Duplicate] = []
    false_positives: list[FalsePositive] = []
    misses: list[Miss] = []

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    def failures(self, min_precision: float, min_recall: float) -> list[str]:
        """What falls short, per kind and in total; empty when the run passes."""
        found = []
        for score in [*self.kinds.values(), self.total]:
            if score.precision is not None and score.precision < min_precision:
                found.append(f"{score.kind}: precision {score.precision:.2f} < {min_precision}")
            if score.recall is not None and score.recall < min_recall:
                found.append(f"{score.kind}: recall {score.recall:.2f} < {min_recall}")
        return found

    def passes(self, min_precision: float, min_recall: float) -> bool:
        """Whether every kind and the total reach both rates (an undefined rate passes)."""
        return not self.failures(min_precision, min_recall)


def score(
    alerts: Iterable[Alert],
    truth: Sequence[TruthEvent],
    *,
    video_start: datetime,
    latency_s: Mapping[AlertKind, float] | None = None,
    position_tolerance: float = 0.08,
    slack_s: float = 10.0,
    early_s: float = 0.0,
    scenario: str = "",
) -> BacktestReport:
    """Score the alerts of one run against its truth (see the module docstring).

    ``video_start`` is the wall time of video second 0, used to place alert times and
    wall-time truth on the video's clock; ``latency_s`` is how long after the condition
    began each kind is expected to alert (the rule's dwell, a smoke window × fraction).
    """
    latency_s = latency_s or {}
    episodes = episodes_of(alerts, video_start)
    spans = [event.span_s(video_start) for event in truth]
    expected = [
        start
        + (
            event.expected_delay_s
            if event.expected_delay_s is not None
            else latency_s.get(event.kind, 0.0)
        )
        for event, (start, _) in zip(truth, spans, strict=True)
    ]

    def fits(episode: AlertEpisode, t: int) -> bool:
        event, (start, end) = truth[t], spans[t]
        if episode.kind is not event.kind:
            return False
        if episode.zone and event.zone and episode.zone != event.zone:
            return False
        if episode.position and event.position:
            dx = episode.position[0] - event.position[0]
            dy = episode.position[1] - event.position[1]
            if math.hypot(dx, dy) > position_tolerance:
                return False
        latest = math.inf if end is None else end + slack_s
        return start - early_s <= episode.start_s <= latest

    def nearest_first(episode: AlertEpisode) -> list[int]:
        fitting = [t for t in range(len(truth)) if fits(episode, t)]
        return sorted(fitting, key=lambda t: abs(episode.start_s - expected[t]))

    candidates = [nearest_first(e) for e in episodes]
    owner = _max_matching(candidates, len(truth))

    report = BacktestReport(scenario=scenario, kinds={}, total=KindScore(kind="total"))
    scores: dict[str, KindScore] = {
        kind.value: KindScore(kind=kind.value)
        for kind in sorted({e.kind for e in episodes} | {t.kind for t in truth})
    }
    matched_episode = {e: t for t, e in enumerate(owner) if e is not None}
    for index, episode in enumerate(episodes):
        kind_score = scores[episode.kind.value]
        t = matched_episode.get(index)
        if t is not None:
            delay = episode.start_s - expected[t]
            kind_score.tp += 1
            kind_score.delay_sum_s += delay
            kind_score.delay_max_s = max(delay, kind_score.delay_max_s or -math.inf)
            report.matches.append(
                Match(
                    scenario=scenario,
                    episode_id=episode.episode_id,
                    truth_index=t,
                    truth=truth[t].describe(),
                    delay_s=delay,
                )
            )
        elif candidates[index]:
            kind_score.duplicates += 1
            report.duplicates.append(
                Duplicate(
                    scenario=scenario,
                    episode_id=episode.episode_id,
                    truth_index=candidates[index][0],
                    truth=truth[candidates[index][0]].describe(),
                )
            )
        else:
            kind_score.fp += 1
            report.false_positives.append(
                FalsePositive(
                    scenario=scenario,
                    episode_id=episode.episode_id,
                    kind=episode.kind,
                    zone=episode.zone,
                    start_s=episode.start_s,
                )
            )
    for t, event in enumerate(truth):
        if owner[t] is None:
            scores[event.kind.value].fn += 1
            report.misses.append(Miss(scenario=scenario, truth_index=t, truth=event.describe()))
    report.kinds = scores
    report.total = _total(scores.values())
    return report


def _max_matching(candidates: list[list[int]], truth_count: int) -> list[int | None]:
    """Maximum one-to-one matching of episodes to truth events (augmenting paths).

    Episodes are taken in start order and try their candidates nearest the expected time
    first, so among equally large matchings the time-closest pairs are preferred. Returns,
    per truth event, the index of its episode or ``None``.
    """
    owner: list[int | None] = [None] * truth_count

    def augment(episode: int, seen: set[int]) -> bool:
        for t in candidates[episode]:
            if t in seen:
                continue
            seen.add(t)
            current = owner[t]
            if current is None or augment(current, seen):
                owner[t] = episode
                return True
        return False

    for episode in range(len(candidates)):
        augment(episode, set())
    return owner


def _total(scores: Iterable[KindScore]) -> KindScore:
    total = KindScore(kind="total")
    for kind_score in scores:
        total = total.plus(kind_score, kind="total")
    return total


def merge_reports(reports: Iterable[BacktestReport], scenario: str = "suite") -> BacktestReport:
    """One report over many scenarios: counts and delays summed, rates recomputed."""
    merged = BacktestReport(scenario=scenario, kinds={}, total=KindScore(kind="total"))
    for report in reports:
        for kind, kind_score in report.kinds.items():
            known = merged.kinds.get(kind)
            merged.kinds[kind] = kind_score if known is None else known.plus(kind_score)
        merged.matches.extend(report.matches)
        merged.duplicates.extend(report.duplicates)
        merged.false_positives.extend(report.false_positives)
        merged.misses.extend(report.misses)
    merged.kinds = dict(sorted(merged.kinds.items()))
    merged.total = _total(merged.kinds.values())
    return merged
