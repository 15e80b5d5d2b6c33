"""The chaos table: every fault of issue 16 on the real embedded stack, one oracle for all.

Target: for every fault, every alert sent is stored exactly once, no work order is
duplicated (one per spot), every receipt comes back (the gateway's outbox drains, nothing
quarantined but the poison), with no hand restart.

Method: one private stack (``benchmarks/chaos_rig.py``: Mosquitto, Tansu, PostgreSQL kept
up by ``citywatch stack supervise``; the bridge and the worker as child processes; the
camera gateway's real session behind a TCP proxy), then each case of
``benchmarks/chaos_cases.py`` in turn: alerts flow, the fault is injected and ended, and
the oracle counts rows per alert id, work orders per spot, receipts and what is left in
the outbox. Recovery is the time from the end of the fault (the service back, the link
restored, the process restarted) to the outbox drained.

Baseline: the same oracle with no fault ("no fault" row, measured in the same run first),
so a recovery time reads against the pipeline's own drain time.

    .venv/bin/python -m benchmarks.chaos [--only CASE ...] [--quick] [--out FILE]

``--quick``: a 10 s partition and a 12 s database outage instead of 60 s and 35 s.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from functools import partial

from benchmarks.chaos_cases import CASES, partition, postgres_down_long
from benchmarks.chaos_rig import CaseResult, ChaosRig, publish_all, spot_alerts
from benchmarks.harness import console, fmt, mark, parser, reproduce, run_facts, save, say, table

COVERED_ELSEWHERE = {
    "kill -9 during an outbox append":
        "tests/unit/test_outbox_durability.py::test_kill_9_during_appends_loses_no_acknowledged_put",
    "bad YAML on hot reload":
        "tests/chaos/test_hot_reload.py::test_yaml_that_no_longer_parses_is_refused_and_the_old_config_kept",
    "a camera source killed mid-stream":
        "tests/unit/test_video_source.py::test_http_mjpeg_stream_reconnects_after_the_camera_returns",
}  # fmt: skip
"""The issue's cases that need no stack: tested where their code lives."""

COLUMNS = ("fault", "sent", "stored", "duplicated", "receipts", "in outbox", "orders",
           "recovery s", "pass")  # fmt: skip


def no_fault(rig: ChaosRig) -> CaseResult:
    """The baseline: 200 alerts, nothing goes wrong."""
    alerts = spot_alerts("baseline", 200, area=0)
    session = rig.gateway()
    session.start()
    assert session.wait_connected(15)
    started = time.monotonic()
    publish_all(session, alerts, 0.01)
    recovery = rig.wait_drained(session, started, 60, "baseline")
    try:
        return rig.judge("no fault (baseline, from first send)", alerts, session, recovery)
    finally:
        session.stop()
        session.outbox.close()


def chosen_cases(only: Sequence[str], quick: bool) -> dict[str, Callable[[ChaosRig], CaseResult]]:
    cases = dict(CASES)
    if quick:
        cases["partition"] = partial(partition, seconds=10.0)
        cases["pg-down"] = partial(postgres_down_long, seconds=12.0)
    return {name: cases[name] for name in (only or cases)}


def row(result: CaseResult) -> list[str]:
    return [
        result.fault, str(result.sent), str(result.stored), str(result.duplicated),
        str(result.receipts), str(result.left_in_outbox),
        f"{result.work_orders}/{result.orders_expected}", fmt(result.recovery_s),
        mark(result.passed),
    ]  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    args_parser = parser(__doc__ or "", "default: benchmarks/results/chaos-<time>.json")
    args_parser.add_argument("--only", nargs="*", default=[], choices=sorted(CASES))
    args_parser.add_argument("--quick", action="store_true", help="shorter outages")
    args = args_parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    argv_used = [
        *(["--only", *args.only] if args.only else []),
        *(["--quick"] if args.quick else []),
    ]
    results = run_facts("chaos", reproduce("chaos", argv_used))
    rows: list[CaseResult] = []
    with console.status("starting the chaos rig…"), ChaosRig() as rig:
        pass_started = time.monotonic()
        for name, case in {"baseline": no_fault, **chosen_cases(args.only, args.quick)}.items():
            console.log(f"case {name}…")
            started = time.monotonic()
            result = case(rig)
            result.notes.append(f"case took {time.monotonic() - started:.0f} s")
            rows.append(result)
            say(f"{name}: {'pass' if result.passed else 'FAIL'} {result.record()}")
        results["wall_s"] = time.monotonic() - pass_started
    console.print(table("chaos: nothing lost, whatever fails", COLUMNS, [row(r) for r in rows]))
    for result in rows:
        for note in result.notes:
            say(f"  {result.fault}: {note}")
    for fault, test in COVERED_ELSEWHERE.items():
        say(f"  {fault}: {test}")
    results["cases"] = [r.record() for r in rows]
    results["covered_elsewhere"] = COVERED_ELSEWHERE
    save(results, args.out, "chaos", stamped=True)
    return 0 if all(r.passed for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
