"""The benchmark harness's arithmetic: what every benchmark's table and JSON are built from."""

from __future__ import annotations

import math

import pytest

from benchmarks.harness import Figure, percentile, ratio, spread


@pytest.mark.parametrize(
    ("q", "expected"), [(0, 1.0), (50, 50.0), (95, 95.0), (99, 99.0), (100, 100.0)]
)
def test_percentile_is_the_nearest_rank(q: float, expected: float) -> None:
    """Nearest rank over 1..100: the q-th percentile is the value q itself."""
    assert percentile([float(v) for v in range(100, 0, -1)], q) == expected


def test_no_values_have_no_percentile_and_an_empty_spread() -> None:
    """An empty sample is NaN, not 0 (a zero p99 would read as a pass)."""
    assert math.isnan(percentile([], 99))
    empty = spread([])
    assert empty["n"] == 0 and math.isnan(empty["p99"])


def test_spread_scales_seconds_to_milliseconds() -> None:
    """scale=1000 turns seconds into milliseconds for every figure, the mean included."""
    figures = spread([0.001, 0.002, 0.003, 0.004], scale=1000)
    assert figures["n"] == 4
    assert figures["p50"] == pytest.approx(2.0) and figures["max"] == pytest.approx(4.0)
    assert figures["mean"] == pytest.approx(2.5)


def test_a_ratio_needs_a_baseline() -> None:
    """A figure over its same-run baseline; none where the baseline is missing or zero."""
    assert ratio(3.0, 4.0) == 0.75
    assert ratio(3.0, None) is None and ratio(3.0, 0.0) is None and ratio(None, 2.0) is None


def test_a_figure_records_its_ratio_with_its_fields() -> None:
    """The JSON row of a figure carries the ratio the table shows."""
    figure = Figure("bridge", "msg/s", 600.0, "msg/s", baseline=1200.0, target="≥ 0.5", passed=True)
    assert figure.ratio == 0.5
    assert figure.record()["ratio"] == 0.5 and figure.record()["stage"] == "bridge"
