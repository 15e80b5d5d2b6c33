"""`citywatch stream replay --shuffle SEED --delay DEVICE:MINUTES`: the same alerts in another
arrival order give the same work orders (issue 18)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from citywatch.config import CitywatchConfig
from citywatch.contracts import Alert, AlertKind, Phase, encode
from citywatch.stream.replay import (
    OrderCheck,
    arrival_order,
    check_order,
    main,
    order_check_line,
    parse_delay,
)
from tests.unit.test_replay import (
    DEMO_CONFIG,
    UNDERPASS,
    day_of_alerts,
    message,
    write_jsonl,
)

SPOT = (31.4312, 119.4821)  # the underpass sensor's own position
CAM_102 = ("camera", "cam-renmin-102")


def outage_day() -> list[Alert]:
    """The scenario day, plus a camera watching the underpass flood live while the sensor's
    gateway was down: its backlog (an episode refreshed every 10 min) arrives late."""
    water = AlertKind.WATERLOGGING
    live = [
        message(f"cam.wl.{i}", "cam.wl", Phase.START if i == 0 else Phase.UPDATE,
                9000 + 600 * i, CAM_102, water, SPOT)
        for i in range(4)
    ]  # fmt: skip
    backlog = [
        message(f"wl9.{i}", "wl9", Phase.START if i == 0 else Phase.UPDATE,
                3000 + 600 * i, UNDERPASS, water, SPOT)
        for i in range(10)
    ]  # fmt: skip
    return sorted(day_of_alerts() + live + backlog, key=lambda a: a.event_time)


@pytest.mark.parametrize("minutes", [0, 10, 45, 180])
def test_a_gateway_back_from_an_outage_gives_the_same_work_orders(
    demo_config: CitywatchConfig, minutes: int
) -> None:
    """The sensor's alerts delayed by up to three hours: the event-time order's work orders."""
    delays = {UNDERPASS[1]: timedelta(minutes=minutes)}
    check = check_order(demo_config, outage_day(), delays=delays)
    assert check.same, check
    assert check.in_order == check.perturbed == 6


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_any_shuffle_within_the_lateness_gives_the_same_work_orders(
    demo_config: CitywatchConfig, seed: int
) -> None:
    """Every arrival order in which no alert is later than the lateness: same work orders."""
    check = check_order(demo_config, outage_day(), seed=seed)
    assert check.same, check


def test_arrival_order_keeps_each_delayed_devices_own_order() -> None:
    """A delayed gateway's alerts come after the others', in their own order."""
    alerts = outage_day()
    arrived = arrival_order(alerts, delays={UNDERPASS[1]: timedelta(hours=6)})
    sensor = [a for a in alerts if a.device.id == UNDERPASS[1]]
    assert arrived[-len(sensor) :] == sensor
    assert sorted(a.id for a in arrived) == sorted(a.id for a in alerts)


@pytest.mark.parametrize("text", ["wl-1", "wl-1:", ":5", "wl-1:-3", "wl-1:soon"])
def test_a_bad_delay_is_refused_with_the_form_to_use(text: str) -> None:
    """--delay takes DEVICE:MINUTES; anything else names the expected form."""
    with pytest.raises(ValueError, match="DEVICE:MINUTES"):
        parse_delay(text)


def test_a_delay_parses_to_the_device_and_its_minutes() -> None:
    """``wl-underpass-01:45`` is that device, 45 minutes late."""
    assert parse_delay("wl-underpass-01:45") == ("wl-underpass-01", timedelta(minutes=45))


def test_the_report_says_what_differs() -> None:
    """A differing partition is named with how many orders split and joined."""
    line = order_check_line(OrderCheck(5, 6, 1, 0), 7, {"cam-1": timedelta(minutes=45)})
    assert "shuffle seed 7, cam-1 45 min late" in line
    assert "DIFFERENT work orders (1 split, 0 joined)" in line


def test_main_checks_the_arrival_order_and_says_it_is_the_same(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--shuffle`` and ``--delay`` add one line to the summary; exit 0 when the same."""
    alerts = write_jsonl(tmp_path / "in.jsonl", [encode(a) for a in outage_day()])
    argv = ["--config", str(DEMO_CONFIG), "--alerts", str(alerts), "--out", str(tmp_path / "o")]
    code = main([*argv, "--shuffle", "3", "--delay", f"{UNDERPASS[1]}:45"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"order check (shuffle seed 3, {UNDERPASS[1]} 45 min late): 6 work orders" in out
    assert "same work orders" in out
    assert main([*argv, "--delay", "nope"]) == 2
