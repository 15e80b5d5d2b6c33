"""SLA clocks: due times in natural or working time over a working calendar (pure).

Chinese city time limits are often counted in working hours and days ("137", 4 working
hours for road waterlogging), so a due time needs the site's calendar: working periods per
working day in the SITE's local zone, weekdays off, public holidays and 调休 weekend days
worked. Everything goes in and out as aware UTC; local time is used only to lay the
calendar's periods on the time line.

Working-time units: a limit's whole days count **working days** and its remainder counts
working hours, where one working day is the sum of one day's periods (7 h for 09:00–12:00
+ 13:30–17:30). So a working ``1d`` is 7 working hours and a working ``4h`` is 4. A report
outside working hours starts its clock at the next working period.

A period ending at ``00:00`` ends at the following midnight, so ``[["00:00", "00:00"]]``
with every day a workday is round-the-clock (working time equals natural time).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from citywatch.config.workflow import SlaTier, WorkingCalendar

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_ZERO = timedelta(0)


class CalendarError(ValueError):
    """The working calendar cannot run a working-time clock (overlapping or empty hours)."""


def site_zone(name: str) -> ZoneInfo:
    """The IANA zone of the site (``site.timezone``), with an error an operator can act on."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise CalendarError(
            f"unknown time zone {name!r}: use an IANA name such as 'Asia/Shanghai'"
        ) from error


@lru_cache(maxsize=64)
def _periods(calendar: WorkingCalendar) -> tuple[tuple[time, time | None], ...]:
    """The calendar's periods, validated and sorted; ``None`` as an end means midnight."""
    if not calendar.hours:
        raise CalendarError("the working calendar has no working hours: add at least one period")
    periods: list[tuple[time, time | None]] = []
    for start, end in sorted(calendar.hours):
        stop: time | None = None if end == time(0) else end
        if stop is not None and stop <= start:
            raise CalendarError(
                f"working period {start:%H:%M}–{end:%H:%M} ends before it starts; "
                "write periods as [start, end] within one day (end 00:00 means midnight)"
            )
        if periods:
            last_end = periods[-1][1]
            if last_end is None or last_end > start:
                raise CalendarError(
                    f"working periods overlap at {start:%H:%M}: list each hour once"
                )
        periods.append((start, stop))
    return tuple(periods)


def is_working_day(day: date, calendar: WorkingCalendar) -> bool:
    """Whether ``day`` (a local date) is worked: 调休 days win over holidays and weekends."""
    if day in calendar.extra_workdays:
        return True
    if day in calendar.holidays:
        return False
    return _WEEKDAYS[day.weekday()] in calendar.workdays


def working_day_length(calendar: WorkingCalendar) -> timedelta:
    """One working day: the sum of one day's working periods (7 h for the default hours)."""
    day = date(2000, 1, 3)  # any date: naive wall-clock arithmetic, no zone involved
    total = _ZERO
    for start, end in _periods(calendar):
        stop = datetime.combine(day if end else day + timedelta(days=1), end or time(0))
        total += stop - datetime.combine(day, start)
    return total


def working_amount(limit: timedelta, calendar: WorkingCalendar) -> timedelta:
    """A working-clock limit as working time: whole days are working days, the rest hours."""
    return limit.days * working_day_length(calendar) + timedelta(
        seconds=limit.seconds, microseconds=limit.microseconds
    )


@lru_cache(maxsize=8192)
def _day_periods(
    day: date, calendar: WorkingCalendar, tz: tzinfo
) -> tuple[tuple[datetime, datetime], ...]:
    """The working periods of local ``day`` as UTC intervals (none on a day off).

    Cached: the escalation timer asks for the same few weeks of days over and over.
    """
    if not is_working_day(day, calendar):
        return ()
    out = []
    for start, end in _periods(calendar):
        begin = datetime.combine(day, start, tzinfo=tz).astimezone(UTC)
        stop = (
            datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
            if end is None
            else datetime.combine(day, end, tzinfo=tz)
        ).astimezone(UTC)
        if stop > begin:  # a DST jump can swallow a short period
            out.append((begin, stop))
    return tuple(out)


def _periods_from(
    start: datetime, calendar: WorkingCalendar, tz: tzinfo
) -> Iterator[tuple[datetime, datetime]]:
    """Working periods (UTC) that end after ``start``, in order, forever or until none remain.

    Raises :class:`CalendarError` once no working day can follow (a calendar with no
    weekday worked and its 调休 days used up), instead of looping forever.
    """
    day = start.astimezone(tz).date() - timedelta(days=1)  # a period may cross midnight in UTC
    idle = 0
    # Days off in a row: at most a week's rest days around every holiday, so this bound
    # is never reached by a calendar that has working days ahead.
    patience = 7 * (len(calendar.holidays) + 2)
    while True:
        periods = _day_periods(day, calendar, tz)
        for begin, stop in periods:
            if stop > start:
                yield begin, stop
        idle = 0 if periods else idle + 1
        if idle > patience and not any(extra > day for extra in calendar.extra_workdays):
            raise CalendarError(
                f"the working calendar has no working day after {day}: "
                "list workdays or extra_workdays"
            )
        day += timedelta(days=1)


def add_working_time(
    start: datetime, amount: timedelta, calendar: WorkingCalendar, tz: tzinfo
) -> datetime:
    """The earliest instant by which ``amount`` of working time has passed since ``start``.

    A zero amount returns ``start`` itself; a positive one counted from outside working
    hours begins at the next working period, and one that fills a period exactly ends at
    that period's end (12:00, not 13:30).
    """
    start = start.astimezone(UTC)
    if amount < _ZERO:
        raise ValueError(f"cannot add a negative working time ({amount})")
    if amount == _ZERO:
        return start
    left = amount
    for begin, stop in _periods_from(start, calendar, tz):
        begin = max(begin, start)
        if left <= stop - begin:
            return begin + left
        left -= stop - begin
    raise AssertionError("unreachable: _periods_from ends only by raising")  # pragma: no cover


def working_time_between(
    a: datetime, b: datetime, calendar: WorkingCalendar, tz: tzinfo
) -> timedelta:
    """Working time from ``a`` to ``b``; negative when ``b`` is before ``a``."""
    a, b = a.astimezone(UTC), b.astimezone(UTC)
    if b < a:
        return -working_time_between(b, a, calendar, tz)
    total = _ZERO
    for begin, stop in _periods_from(a, calendar, tz):
        if begin >= b:
            break
        total += min(stop, b) - max(begin, a)
    return total


def due_at(opened_at: datetime, tier: SlaTier, calendar: WorkingCalendar, tz: tzinfo) -> datetime:
    """When a problem opened at ``opened_at`` must be resolved under ``tier`` (aware UTC)."""
    return SlaClock(tier, calendar, tz).due(opened_at)


def _limit_amount(tier: SlaTier, calendar: WorkingCalendar) -> timedelta:
    return working_amount(tier.limit, calendar) if tier.clock == "working" else tier.limit


@dataclass(frozen=True)
class SlaClock:
    """One SLA tier with the calendar and zone its clock runs over.

    A work order keeps its clock, so due times, extensions, remaining time and escalation
    thresholds are all measured the same way as when the order was opened.
    """

    tier: SlaTier
    calendar: WorkingCalendar
    tz: tzinfo

    @property
    def working(self) -> bool:
        return self.tier.clock == "working"

    @property
    def limit(self) -> timedelta:
        """The tier's limit in this clock's time (working days converted to working hours)."""
        return _limit_amount(self.tier, self.calendar)

    def add(self, start: datetime, amount: timedelta) -> datetime:
        """``start`` plus ``amount`` of this clock's time, in UTC."""
        if self.working:
            return add_working_time(start, amount, self.calendar, self.tz)
        if amount < _ZERO:
            raise ValueError(f"cannot add a negative time ({amount})")
        return start.astimezone(UTC) + amount

    def elapsed(self, a: datetime, b: datetime) -> timedelta:
        """This clock's time from ``a`` to ``b`` (negative when ``b`` is earlier)."""
        if self.working:
            return working_time_between(a, b, self.calendar, self.tz)
        return b - a

    def due(self, start: datetime) -> datetime:
        """When the limit runs out for a clock started at ``start``."""
        return self.add(start, self.limit)


class ClockedOrder(Protocol):
    """What :func:`remaining` and :func:`is_overdue` need of a work order."""

    @property
    def sla(self) -> SlaClock: ...

    @property
    def due_at(self) -> datetime: ...

    @property
    def sla_stopped_at(self) -> datetime | None: ...


def remaining(order: ClockedOrder, now: datetime) -> timedelta:
    """Time left before the due time, in the order's clock; negative once overdue.

    The clock stops when the order is resolved (or dismissed as a false positive): a
    resolved order keeps the margin it was resolved with, which is what the on-time rate
    (按期处置率) counts.
    """
    until = order.sla_stopped_at or now
    return order.sla.elapsed(until, order.due_at)


def is_overdue(order: ClockedOrder, now: datetime) -> bool:
    """Whether the order passed its due time unresolved (at ``now`` or when it stopped)."""
    return (order.sla_stopped_at or now) > order.due_at
