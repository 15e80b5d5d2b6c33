"""Deduplication of alerts into incidents: the pure core behind work orders.

Many sightings of one problem are one incident (DOMAIN.md: 30 complaints about one
restaurant must be one work order). Every message of one episode joins that episode's
incident; a new episode of kind K joins the nearest incident of kind K whose centre (the
weighted median of its sightings) is within ``radius_m`` and which is alive at the alert's
time (until its deadline, whatever the gap since its last message), whatever device saw it;
otherwise it recurs (复发) on the nearest one closed less than ``reopen`` ago — reopening it,
or opening a new incident linked to it under ``recurrence: new_linked`` — or opens one.

Late data and settling centres: an incident that turns out to be within reach of another
of its kind whose life overlaps it (or, under ``reopen``, that it recurs on) is one problem
seen in two pieces — a gateway's backlog arrived after the live alerts, or two cameras'
centres agreed once they had sightings enough. The younger (by creation, so the work order
people act on survives) is folded into the older and reported in
:attr:`DedupResult.absorbed`: messages delayed by hours, each device in its own order, give
the incidents of event-time order (see tests/unit/test_dedup_late.py for the guarantees).

No I/O and no wall clock: times come from the alerts (event time) and from ``expire(now)``.
An incident's deadline is ``last_activity + quiet`` once all its episodes have ended, or
``last_activity + window + quiet`` while any is open (a gateway may never send the end);
``expire(now)`` closes incidents whose deadline is at or before ``now - lateness``, and an
alert at or after the deadline of the incident it matches finds it closed at its deadline,
whether or not ``expire`` has run yet.

Positions are WGS84 (incidents on either side of the antimeridian are never within reach
of each other). The values the engine hands out live in :mod:`citywatch.stream.incident`,
its indexes in :mod:`citywatch.stream.dedup_index`; callers import every name they use
from this module.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from citywatch.config.workflow import DedupPolicy
from citywatch.contracts.messages import Alert, AlertKind, Phase
from citywatch.stream.dedup_index import (
    M_PER_DEG,
    NEVER,
    SETTLED_SIGHTINGS,
    KindRules,
    Slot,
    distance_m,
    overlapping,
)
from citywatch.stream.incident import (
    DedupResult,
    Incident,
    Position,
    alert_position,
    device_key,
    sighting_weight,
)

__all__ = [
    "DEFAULT_LATENESS",
    "M_PER_DEG",
    "DedupEngine",
    "DedupResult",
    "Incident",
    "MissingDedupPolicy",
    "Position",
    "alert_position",
    "device_key",
    "distance_m",
]

DEFAULT_LATENESS = timedelta(minutes=5)


class MissingDedupPolicy(LookupError):
    """An alert of a kind the site config has no dedup policy for."""


class DedupEngine:
    """Merges alerts into incidents; see the module docstring for the rules."""

    def __init__(
        self, policies: Mapping[AlertKind, DedupPolicy], lateness: timedelta = DEFAULT_LATENESS
    ) -> None:
        if lateness < timedelta(0):
            raise ValueError(f"lateness must not be negative, got {lateness}")
        self._rules = {
            AlertKind(kind): KindRules(AlertKind(kind), p) for kind, p in policies.items()
        }
        self._lateness_s = lateness.total_seconds()
        self._open: dict[str, Slot] = {}
        self._closed: dict[str, Slot] = {}
        self._by_alert: dict[str, Slot] = {}
        self._by_episode: dict[str, Slot] = {}
        self._heap: list[tuple[float, str]] = []
        self._pending: list[Incident] = []  # closed inside add(), reported by expire()
        self._created = 0  # slots made so far: each slot's seq

    # -- the public API ---------------------------------------------------------------------

    def add(self, alert: Alert, position: Position | None) -> DedupResult:
        """Place one alert (its position resolved by the caller) into its incident."""
        slot = self._by_alert.get(alert.id)
        if slot is not None:
            return DedupResult(slot.inc, False, False, False, True)
        t = alert.event_time.timestamp()
        source = device_key(alert.device)
        episode = alert.episode_id
        slot = self._by_episode.get(episode)
        created = reopened = False
        if slot is not None:
            reopened = self._continue_episode(slot, alert, t)
            placed = slot
        else:
            rules = self._rules_for(alert.kind)
            slot, created, reopened = self._place(rules, position, source, t, alert)
            self._by_episode[episode] = slot
            slot.inc.episodes.add(episode)
            if alert.phase is Phase.END:
                slot.ended.add(episode)
            elif slot.inc.state == "open":
                slot.inc.open_episodes.add(episode)
            placed = slot
        opened_ts = slot.opened_ts
        moved = self._record(slot, alert, t, source, position)
        late = slot.opened_ts < opened_ts
        settled = moved and not late and slot.sightings >= SETTLED_SIGHTINGS
        slot, absorbed = self._fold_overlaps(slot, t, late or settled, settled and not late)
        if created and slot is not placed:  # its new incident was part of an older one
            created = False
            absorbed = [inc for inc in absorbed if inc is not placed.inc]
        return DedupResult(slot.inc, created, not created, reopened, False, tuple(absorbed))

    def expire(self, now: datetime) -> list[Incident]:
        """Close every incident whose deadline is at or before ``now - lateness``; return
        them in the order they closed.

        Also returned: incidents that ``add()`` found closed by an alert's own event time
        (a late message after the deadline) since the previous call, if still closed.
        """
        watermark = now.timestamp() - self._lateness_s
        heap = self._heap
        pending = {
            inc.id: inc
            for inc in self._pending
            if inc.state == "closed" and inc.merged_into is None
        }
        closed = list(pending.values())
        self._pending.clear()
        while heap and heap[0][0] <= watermark:
            due, incident_id = heapq.heappop(heap)
            slot = self._open.get(incident_id)
            if slot is None or slot.scheduled != due:
                continue  # a stale entry: closed since, or rescheduled
            deadline = slot.deadline()
            if deadline > due:  # activity since it was scheduled
                slot.scheduled = deadline
                heapq.heappush(heap, (deadline, incident_id))
                continue
            self._close(slot)
            closed.append(slot.inc)
        return closed

    def open_incidents(self) -> list[Incident]:
        """The open incidents, oldest first."""
        return [s.inc for s in sorted(self._open.values(), key=lambda s: (s.opened_ts, s.inc.id))]

    def restore(self, incidents: Iterable[Incident]) -> None:
        """Load open and recently closed incidents (from the database at worker start).

        An incident matched per device (a device fault, or no position) is keyed by its
        source. Episodes of a restored incident that are not open count as ended, so a late
        update of an aged-out episode does not reopen it (a new episode still does).
        """
        for inc in incidents:
            old = self._open.get(inc.id) or self._closed.get(inc.id)
            if old is not None:
                self._drop(old)
            rules = self._rules_for(inc.kind)
            by_device = rules.by_device or inc.position is None
            source = min(inc.sources, default=inc.id) if by_device else None
            slot = self._new_slot(inc, rules, source)
            slot.latest_ts = slot.last_ts
            if inc.position is not None:  # its centre stands for the sightings it had
                weight = float(max(1, len(inc.alert_ids)))
                slot.lat_w[inc.position.lat] = weight
                slot.lon_w[inc.position.lon] = weight
            self._index(slot)
            for alert_id in inc.alert_ids:
                self._by_alert[alert_id] = slot
            for episode in inc.episodes:
                self._by_episode[episode] = slot
            if inc.state == "open":
                self._open[inc.id] = slot
                self._schedule(slot)
            else:
                self._closed[inc.id] = slot

    def forget_closed_before(self, cutoff: datetime) -> int:
        """Drop incidents closed before ``cutoff`` with their alert ids and episodes (memory
        bound). Pass ``now`` minus how long closed incidents are held: the longest ``reopen``
        of the policies, or the late-data bound if longer (what closed before that can no
        longer be reopened, nor take a straggler). Returns how many were dropped."""
        limit = cutoff.timestamp()
        gone = [s for s in self._closed.values() if s.closed_ts < limit]
        for slot in gone:
            self._drop(slot)
        return len(gone)

    # -- placing an alert -------------------------------------------------------------------

    def _rules_for(self, kind: AlertKind) -> KindRules:
        rules = self._rules.get(kind)
        if rules is None:
            raise MissingDedupPolicy(
                f"no dedup policy for alert kind {kind.value!r}: add workflow.dedup.{kind.value}"
                " (radius_m, window) to the site config"
            )
        return rules

    def _continue_episode(self, slot: Slot, alert: Alert, t: float) -> bool:
        """A message of a known episode; returns whether it reopened the incident."""
        inc = slot.inc
        episode = alert.episode_id
        if inc.state == "open" and t >= slot.deadline():
            self._close(slot)  # closed by event time before the caller's timer ran
            self._pending.append(inc)
        if alert.phase is Phase.END:
            inc.open_episodes.discard(episode)
            slot.ended.add(episode)
            return False
        if episode in slot.ended:
            return False  # a late start or update of an episode that has ended
        reopened = False
        if inc.state == "closed" and t >= slot.closed_ts:
            self._reopen(slot)
            reopened = True
        if inc.state == "open":
            inc.open_episodes.add(episode)
        return reopened

    def _place(
        self, rules: KindRules, position: Position | None, source: str, t: float, alert: Alert
    ) -> tuple[Slot, bool, bool]:
        """The incident a new episode's first message joins: (slot, created, reopened)."""
        window = rules.window_s
        reopen = rules.reopen_s
        by_device = rules.by_device or position is None
        candidates: list[Slot] = []
        if by_device:
            candidates = rules.devices.get(source, candidates)
        else:
            assert position is not None
            lat, lon = position.lat, position.lon
            rules.open.near(lat, lon, candidates)
            rules.closed.near(lat, lon, candidates)
        # an alert before an incident opened joins it if its own episode is alive then
        life = rules.quiet_s if alert.phase is Phase.END else window + rules.quiet_s
        merge: tuple[float, float, str, Slot] | None = None
        recur: tuple[float, float, str, Slot] | None = None
        for slot in candidates:
            if t + life <= slot.opened_ts:
                continue
            if slot.inc.state == "open":
                deadline = slot.deadline()
                if t < deadline:  # alive: it takes the alert whatever the gap since its last
                    closed_ts = NEVER
                elif t > deadline + reopen:
                    continue
                else:
                    closed_ts = deadline  # due: closed by event time
            else:  # closed: a straggler inside its life joins it, later ones recur on it
                end = slot.end_ts()
                closed_ts = NEVER if t < end else end
                if t > closed_ts + reopen:
                    continue
            dist = 0.0 if by_device else distance_m(lat, lon, slot.lat, slot.lon)
            if dist > rules.radius_m:
                continue
            if closed_ts == NEVER:
                key = (dist, slot.opened_ts, slot.inc.id, slot)
                if merge is None or key[:3] < merge[:3]:
                    merge = key
            else:
                key = (dist, -closed_ts, slot.inc.id, slot)
                if recur is None or key[:3] < recur[:3]:
                    recur = key
        if merge is not None:
            return merge[3], False, False
        if recur is not None:
            slot = recur[3]
            if slot.inc.state == "open":
                self._close(slot)
                self._pending.append(slot.inc)
            if rules.policy.recurrence == "new_linked":
                linked = self._create(rules, alert, position, source, by_device)
                linked.inc.recurrence_of = slot.inc.id
                return linked, True, False
            self._reopen(slot)
            return slot, False, True
        return self._create(rules, alert, position, source, by_device), True, False

    def _create(
        self,
        rules: KindRules,
        alert: Alert,
        position: Position | None,
        source: str,
        by_device: bool,
    ) -> Slot:
        incident_id = f"inc.{alert.id}"
        n = 1
        while incident_id in self._open or incident_id in self._closed:
            n += 1
            incident_id = f"inc.{alert.id}.{n}"
        inc = Incident(
            id=incident_id,
            kind=alert.kind,
            position=position,
            opened_at=alert.event_time,
            last_activity=alert.event_time,
        )
        slot = self._new_slot(inc, rules, source if by_device else None)
        self._index(slot)
        self._open[incident_id] = slot
        return slot

    def _new_slot(self, inc: Incident, rules: KindRules, device: str | None) -> Slot:
        slot = Slot(inc, rules, device)
        self._created += 1
        slot.seq = self._created
        return slot

    def _record(
        self, slot: Slot, alert: Alert, t: float, source: str, position: Position | None
    ) -> bool:
        """Attach the alert to its incident and keep the incident's summary current; returns
        whether its centre moved."""
        inc = slot.inc
        inc.alert_ids.append(alert.id)
        self._by_alert[alert.id] = slot
        inc.sources.add(source)
        slot.span_ts = max(slot.span_ts, t)
        moved = False
        if position is not None and inc.position is not None:
            moved = slot.add_sighting(position.lat, position.lon, sighting_weight(alert))
        if t > slot.last_ts and inc.state == "open":  # a straggler never extends a closed one
            slot.last_ts = t
            inc.last_activity = alert.event_time
        if t < slot.opened_ts:
            slot.opened_ts = t
            inc.opened_at = alert.event_time
        if alert.confidence > inc.max_confidence:
            inc.max_confidence = alert.confidence
        values = alert.attributes
        if values or alert.level is not None:
            attributes = inc.attributes
            peak = attributes.get("peak_depth_cm")
            if t >= slot.latest_ts:
                slot.latest_ts = t
                attributes.update(values)
                if alert.level is not None:
                    inc.level = alert.level
            for name in ("depth_cm", "peak_depth_cm"):
                value = values.get(name)
                if (
                    isinstance(value, int | float)
                    and not isinstance(value, bool)
                    and (not isinstance(peak, int | float) or value > peak)
                ):
                    peak = value
            if peak is not None:
                attributes["peak_depth_cm"] = peak
        if inc.state == "open":
            self._schedule(slot)
        return moved

    # -- centres and late data --------------------------------------------------------------

    def _fold_overlaps(
        self, slot: Slot, t: float, moved_back: bool, settled: bool = False
    ) -> tuple[Slot, list[Incident]]:
        """Fold every incident that overlaps ``slot`` into the older of the two, until none
        does; returns the survivor and the incidents folded away. Only late data (an alert
        before a neighbour opened, or ``moved_back``: ``slot`` opens earlier now) or a
        ``settled`` centre that moved can make two overlap (:func:`overlapping`)."""
        absorbed: list[Incident] = []
        while (other := overlapping(slot, t, moved_back, settled)) is not None:
            keep, gone = (slot, other) if slot.seq < other.seq else (other, slot)
            self._fold(keep, gone)
            absorbed.append(gone.inc)
            slot, moved_back = keep, True
        for inc in absorbed:  # a chain of folds ends in one survivor
            inc.merged_into = slot.inc.id
        return slot, absorbed

    def _fold(self, keep: Slot, gone: Slot) -> None:
        """Move everything ``gone`` holds into ``keep``; ``gone`` stays closed as merged."""
        ki, gi = keep.inc, gone.inc
        self._unindex(gone)
        for alert_id in gi.alert_ids:
            self._by_alert[alert_id] = keep
        for episode in gi.episodes:
            self._by_episode[episode] = keep
        keep.absorb(gone)
        still_open = (gi.open_episodes if gi.state == "open" else set()) - keep.ended
        if gi.state == "open" and ki.state == "closed":  # alive after all: no recurrence
            self._reopen(keep)
            ki.reopen_count -= 1
        if ki.state == "open":
            ki.open_episodes |= still_open
            ki.attributes.pop("closed_by", None)
        elif gi.closed_at is not None and (ki.closed_at is None or gi.closed_at > ki.closed_at):
            ki.closed_at, keep.closed_ts = gi.closed_at, gone.closed_ts
        keep.recentre()
        if ki.state == "open":
            self._schedule(keep)
        gi.state = "closed"
        gi.closed_at = gi.closed_at or gi.last_activity
        gi.open_episodes.clear()
        gi.attributes["closed_by"] = "merged"
        gi.merged_into = ki.id

    # -- index upkeep -----------------------------------------------------------------------

    def _schedule(self, slot: Slot) -> None:
        """Keep one live heap entry no later than the deadline (expire re-pushes later ones)."""
        deadline = slot.deadline()
        if deadline < slot.scheduled:
            slot.scheduled = deadline
            heapq.heappush(self._heap, (deadline, slot.inc.id))

    def _index(self, slot: Slot) -> None:
        rules = slot.rules
        rules.latest_opened_ts = max(rules.latest_opened_ts, slot.opened_ts)
        if slot.device is not None:
            rules.devices.setdefault(slot.device, []).append(slot)
            return
        grid = rules.open if slot.inc.state == "open" else rules.closed
        slot.cell = grid.cell(slot.lat, slot.lon)
        grid.add(slot)

    def _close(self, slot: Slot) -> None:
        inc = slot.inc
        rules = slot.rules
        aged_out = bool(inc.open_episodes)
        extra = rules.policy.window if aged_out else timedelta(0)
        inc.closed_at = inc.last_activity + extra + rules.policy.quiet
        slot.closed_ts = slot.deadline()
        inc.state = "closed"
        inc.open_episodes.clear()
        inc.attributes["closed_by"] = "aged_out" if aged_out else "ended"
        slot.scheduled = NEVER
        del self._open[inc.id]
        self._closed[inc.id] = slot
        if slot.device is None:
            rules.open.remove(slot)
            rules.closed.add(slot)

    def _reopen(self, slot: Slot) -> None:
        inc = slot.inc
        rules = slot.rules
        inc.state = "open"
        inc.closed_at = None
        inc.reopen_count += 1
        inc.attributes.pop("closed_by", None)
        slot.closed_ts = NEVER
        del self._closed[inc.id]
        self._open[inc.id] = slot
        if slot.device is None:
            rules.closed.remove(slot)
            rules.open.add(slot)

    def _unindex(self, slot: Slot) -> None:
        """Take an incident out of every index but the alert and episode maps."""
        inc = slot.inc
        rules = slot.rules
        if slot.device is not None:
            rules.devices[slot.device].remove(slot)
            if not rules.devices[slot.device]:
                del rules.devices[slot.device]
        else:
            (rules.open if inc.state == "open" else rules.closed).remove(slot)
        self._open.pop(inc.id, None)
        self._closed.pop(inc.id, None)
        slot.scheduled = NEVER

    def _drop(self, slot: Slot) -> None:
        """Forget an incident entirely (its alert ids and episodes with it)."""
        inc = slot.inc
        self._unindex(slot)
        for alert_id in inc.alert_ids:
            if self._by_alert.get(alert_id) is slot:
                del self._by_alert[alert_id]
        for episode in inc.episodes:
            if self._by_episode.get(episode) is slot:
                del self._by_episode[episode]
