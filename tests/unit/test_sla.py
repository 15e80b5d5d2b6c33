"""SLA clocks: working-calendar arithmetic and due times in natural and working time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from citywatch.config.workflow import SlaTier, WorkingCalendar
from citywatch.workorder.sla import (
    CalendarError,
    SlaClock,
    add_working_time,
    due_at,
    is_overdue,
    is_working_day,
    remaining,
    site_zone,
    working_amount,
    working_day_length,
    working_time_between,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
# National Day 2026 as a test calendar: weekday holidays Oct 1, 2, 5–7; 调休 Sun Sep 27
# and Sat Oct 10 worked. Hours 09:00–12:00 and 13:30–17:30 (7 h a day).
CALENDAR = WorkingCalendar(
    holidays=(
        date(2026, 10, 1),
        date(2026, 10, 2),
        date(2026, 10, 5),
        date(2026, 10, 6),
        date(2026, 10, 7),
    ),
    extra_workdays=(date(2026, 9, 27), date(2026, 10, 10)),
)
ROUND_THE_CLOCK = WorkingCalendar(
    workdays=("mon", "tue", "wed", "thu", "fri", "sat", "sun"), hours=((time(0), time(0)),)
)


def local(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A 2026 Shanghai wall-clock time."""
    return datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI)


def working(limit: timedelta) -> SlaTier:
    return SlaTier(id="t", limit=limit, clock="working")


def natural(limit: timedelta) -> SlaTier:
    return SlaTier(id="t", limit=limit, clock="natural")


H = timedelta(hours=1)
M = timedelta(minutes=1)
D = timedelta(days=1)


@pytest.mark.parametrize(
    ("opened", "tier", "expected"),
    [
        pytest.param(
            local(9, 14, 10), working(4 * H), local(9, 14, 15, 30), id="skips the lunch break"
        ),
        pytest.param(
            local(9, 14, 9), working(3 * H), local(9, 14, 12), id="filling the morning ends at noon"
        ),
        pytest.param(
            local(9, 14, 12, 15),
            working(H),
            local(9, 14, 14, 30),
            id="lunch-time report starts at 13:30",
        ),
        pytest.param(
            local(9, 14, 23),
            working(4 * H),
            local(9, 15, 14, 30),
            id="report at 23:00 starts next morning",
        ),
        pytest.param(
            local(9, 15, 6), working(30 * M), local(9, 15, 9, 30), id="early report starts at 09:00"
        ),
        pytest.param(
            local(9, 14, 17, 30),
            working(H),
            local(9, 15, 10),
            id="report at closing starts next day",
        ),
        pytest.param(
            local(9, 18, 16, 30),
            working(4 * H),
            local(9, 21, 12),
            id="friday afternoon runs over the weekend",
        ),
        pytest.param(
            local(9, 19, 10), working(2 * H), local(9, 21, 11), id="saturday report starts monday"
        ),
        pytest.param(
            local(9, 26, 10), working(2 * H), local(9, 27, 11), id="tiaoxiu sunday is worked"
        ),
        pytest.param(
            local(9, 30, 16, 30),
            working(D),
            local(10, 8, 16, 30),
            id="one working day skips the holiday week",
        ),
        pytest.param(
            local(10, 9, 17),
            working(4 * H),
            local(10, 10, 14),
            id="tiaoxiu saturday after the holiday",
        ),
        pytest.param(
            local(9, 14, 10), working(3 * D), local(9, 17, 10), id="137 general is 21 working hours"
        ),
        pytest.param(
            local(9, 14, 10), working(D + 2 * H), local(9, 15, 12), id="days and hours add up"
        ),
        pytest.param(
            local(9, 19, 23),
            natural(30 * M),
            local(9, 19, 23, 30),
            id="waterlogging runs in natural time",
        ),
        pytest.param(
            local(10, 1, 3),
            natural(10 * M),
            local(10, 1, 3, 10),
            id="smoke runs on a holiday night",
        ),
        pytest.param(local(9, 18, 16), natural(D), local(9, 19, 16), id="natural day is 24 hours"),
    ],
)
def test_due_at(opened: datetime, tier: SlaTier, expected: datetime) -> None:
    """Due times follow the tier's clock over the site's working calendar."""
    due = due_at(opened, tier, CALENDAR, SHANGHAI)
    assert due == expected
    assert due.tzinfo is UTC


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        pytest.param(local(9, 18, 16), local(9, 21, 10), 2.5 * H, id="over a weekend"),
        pytest.param(
            local(9, 14, 12, 10),
            local(9, 14, 13, 20),
            timedelta(0),
            id="lunch break counts nothing",
        ),
        pytest.param(local(9, 30, 9), local(10, 9, 9), 14 * H, id="holiday week counts two days"),
        pytest.param(local(9, 26), local(9, 28), 7 * H, id="tiaoxiu sunday counts a day"),
        pytest.param(
            local(9, 19), local(9, 20, 23), timedelta(0), id="plain weekend counts nothing"
        ),
        pytest.param(local(9, 21, 10), local(9, 18, 16), -2.5 * H, id="backwards is negative"),
        pytest.param(local(9, 14, 10), local(9, 14, 10), timedelta(0), id="same instant is zero"),
    ],
)
def test_working_time_between(a: datetime, b: datetime, expected: timedelta) -> None:
    """Working time between two instants counts only working periods of working days."""
    assert working_time_between(a, b, CALENDAR, SHANGHAI) == expected


@pytest.mark.parametrize(
    ("day", "worked"),
    [
        pytest.param(date(2026, 9, 14), True, id="monday"),
        pytest.param(date(2026, 9, 19), False, id="saturday"),
        pytest.param(date(2026, 10, 1), False, id="holiday"),
        pytest.param(date(2026, 9, 27), True, id="tiaoxiu sunday"),
        pytest.param(date(2026, 10, 10), True, id="tiaoxiu saturday"),
    ],
)
def test_is_working_day(day: date, worked: bool) -> None:
    """调休 days are worked, holidays and weekends are not."""
    assert is_working_day(day, CALENDAR) is worked


def test_one_working_day_is_the_sum_of_the_periods() -> None:
    """A working day is 7 h for 09:00–12:00 + 13:30–17:30; 24 h round the clock."""
    assert working_day_length(CALENDAR) == 7 * H
    assert working_day_length(ROUND_THE_CLOCK) == 24 * H
    assert working_amount(3 * D + 2 * H, CALENDAR) == 23 * H


def test_a_month_of_holidays_is_not_mistaken_for_an_empty_calendar() -> None:
    """A long closure (every weekday of October a holiday) is skipped, not an error."""
    october = tuple(date(2026, 10, d) for d in range(1, 32) if date(2026, 10, d).weekday() < 5)
    closed = WorkingCalendar(holidays=october)
    assert add_working_time(local(9, 30, 17, 30), H, closed, SHANGHAI) == local(11, 2, 10)


def test_zero_working_time_is_the_start_itself() -> None:
    """Adding no working time at night returns the same instant, not the next morning."""
    assert add_working_time(local(9, 14, 23), timedelta(0), CALENDAR, SHANGHAI) == local(9, 14, 23)


def test_working_day_is_laid_out_in_the_site_zone() -> None:
    """The same calendar in another zone puts the working periods at that zone's 09:00."""
    london = site_zone("Europe/London")
    opened = datetime(2026, 9, 14, 9, tzinfo=london)
    assert due_at(opened, working(H), CALENDAR, london) == datetime(2026, 9, 14, 10, tzinfo=london)


def test_daylight_saving_day_keeps_its_wall_clock_hours() -> None:
    """On a DST change day (Berlin, Sun 29 Mar 2026, worked) the periods keep local times."""
    berlin = site_zone("Europe/Berlin")
    sunday_worked = WorkingCalendar(extra_workdays=(date(2026, 3, 29),))
    saturday = datetime(2026, 3, 28, tzinfo=berlin)
    monday = datetime(2026, 3, 30, tzinfo=berlin)
    assert working_time_between(saturday, monday, sunday_worked, berlin) == 7 * H
    sunday = datetime(2026, 3, 29, tzinfo=berlin)
    assert working_time_between(sunday, monday, ROUND_THE_CLOCK, berlin) == 23 * H


def _unchecked(**fields: object) -> WorkingCalendar:
    """A calendar that skipped config validation (the loader refuses these; sla.py must too)."""
    return WorkingCalendar.model_construct(**{**WorkingCalendar().model_dump(), **fields})


@pytest.mark.parametrize(
    ("calendar", "message"),
    [
        pytest.param(_unchecked(hours=()), "no working hours", id="no hours"),
        pytest.param(
            _unchecked(hours=((time(9), time(12)), (time(11), time(14)))),
            "overlap",
            id="overlap",
        ),
        pytest.param(_unchecked(hours=((time(12), time(9)),)), "ends before", id="reversed"),
        pytest.param(_unchecked(workdays=()), "no working day", id="no workdays"),
    ],
)
def test_unusable_calendar_raises(calendar: WorkingCalendar, message: str) -> None:
    """A calendar that cannot run a working clock says why instead of looping."""
    with pytest.raises(CalendarError, match=message):
        add_working_time(local(9, 14, 10), H, calendar, SHANGHAI)


def test_unknown_zone_names_the_fix() -> None:
    """A bad site.timezone asks for an IANA name."""
    with pytest.raises(CalendarError, match="IANA"):
        site_zone("Mars/Olympus")


@dataclass
class Clocked:
    """The fields of a work order that remaining() and is_overdue() read."""

    sla: SlaClock
    due_at: datetime
    sla_stopped_at: datetime | None = None


WORKING_4H = SlaClock(working(4 * H), CALENDAR, SHANGHAI)


@pytest.mark.parametrize(
    ("now", "stopped", "left", "overdue"),
    [
        pytest.param(local(9, 14, 10), None, 4 * H, False, id="fresh order has the whole limit"),
        pytest.param(local(9, 14, 13), None, 2 * H, False, id="lunch does not count down"),
        pytest.param(
            local(9, 14, 15, 30), None, timedelta(0), False, id="at the deadline not yet overdue"
        ),
        pytest.param(
            local(9, 15, 9, 30), None, -2.5 * H, True, id="overnight counts only working time"
        ),
        pytest.param(
            local(9, 16, 9), local(9, 14, 14), 1.5 * H, False, id="resolved in time stays on time"
        ),
        pytest.param(
            local(9, 14, 11), local(9, 14, 16), -0.5 * H, True, id="resolved late stays overdue"
        ),
    ],
)
def test_remaining_and_overdue(
    now: datetime, stopped: datetime | None, left: timedelta, overdue: bool
) -> None:
    """Remaining time runs in the order's clock and stops when the order is resolved."""
    order = Clocked(WORKING_4H, local(9, 14, 15, 30), stopped)
    assert remaining(order, now) == left
    assert is_overdue(order, now) is overdue


# -- properties ---------------------------------------------------------------------------

instants = st.datetimes(
    min_value=datetime(2026, 3, 1), max_value=datetime(2026, 11, 15), timezones=st.just(UTC)
)
# Shanghai has no DST; Berlin's spring and autumn changes fall inside the instants above.
zones = st.sampled_from([SHANGHAI, ZoneInfo("Europe/Berlin")])
amounts = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=10))
limits = st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=8))


@given(start=instants, amount=amounts, tz=zones)
def test_adding_then_measuring_gives_the_amount_back(
    start: datetime, amount: timedelta, tz: ZoneInfo
) -> None:
    """working_time_between(a, add_working_time(a, x)) == x."""
    end = add_working_time(start, amount, CALENDAR, tz)
    assert end >= start
    assert working_time_between(start, end, CALENDAR, tz) == amount


@given(a=instants, b=instants, c=instants, tz=zones)
def test_working_time_is_monotonic_and_additive(
    a: datetime, b: datetime, c: datetime, tz: ZoneInfo
) -> None:
    """Later ends never count less, and spans add up."""
    a, b, c = sorted((a, b, c))
    ab = working_time_between(a, b, CALENDAR, tz)
    ac = working_time_between(a, c, CALENDAR, tz)
    assert timedelta(0) <= ab <= ac
    assert ab + working_time_between(b, c, CALENDAR, tz) == ac


@given(opened=instants, limit=limits, clock=st.sampled_from(["natural", "working"]))
def test_due_at_is_never_before_opened_at(opened: datetime, limit: timedelta, clock: str) -> None:
    """No tier makes a work order due before it was opened."""
    tier = SlaTier(id="t", limit=limit, clock=clock)
    assert due_at(opened, tier, CALENDAR, SHANGHAI) >= opened


@pytest.mark.slow
@given(a=instants, b=instants, tz=zones)
def test_round_the_clock_calendar_is_natural_time(a: datetime, b: datetime, tz: ZoneInfo) -> None:
    """Working every hour of every day makes working time equal natural time, DST included."""
    assert working_time_between(a, b, ROUND_THE_CLOCK, tz) == b - a
