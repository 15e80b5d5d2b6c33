"""A model's figures on the scenario suite, for ``citywatch model backtest --suite``: the suite
config's cameras run the given weights through the live agent path
(:func:`~citywatch.edge.camera.evaluation.scenario_suite.run_live`, as ``edge suite``), and
the events are scored against the scenes' truth."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from citywatch.config import CitywatchConfig
from citywatch.config.camera import CameraConfig
from citywatch.models.backtest_scoring import SuiteScore

__all__ = ["suite_frames", "suite_score"]


def _with_weights(camera: CameraConfig, weights: Path, backend: str) -> CameraConfig:
    """The camera with every model detector running ``weights`` on ``backend``."""
    update = {"weights": weights.resolve(), "backend": backend}
    entries = tuple(
        e if e.backend == "classical" else e.model_copy(update=update) for e in camera.detector_list
    )
    if camera.detectors:
        return camera.model_copy(update={"detectors": entries})
    return camera.model_copy(update={"detector": entries[0]})


def _suite_config(config: CitywatchConfig, weights: Path, backend: str) -> CitywatchConfig:
    cameras = tuple(_with_weights(c, weights, backend) for c in config.devices.cameras)
    devices = config.devices.model_copy(update={"cameras": cameras})
    return config.model_copy(update={"devices": devices})


def suite_frames(config: CitywatchConfig, scenarios: Sequence[str]) -> int:
    """Frames one model runs on over the suite (for a progress bar's total)."""
    from citywatch.edge.camera.evaluation.scenario_suite import frames_due, suite_cases

    return sum(frames_due(case) for case in suite_cases(config, scenarios))


def suite_score(
    config: CitywatchConfig,
    weights: Path,
    backend: str,
    scenarios: Sequence[str] = (),
    on_frame: Callable[[], None] | None = None,
) -> SuiteScore:
    """TP/FP/FN over the suite's scenes with ``weights`` in every camera's model detectors."""
    from citywatch.edge.camera.evaluation.backtest import merge_reports
    from citywatch.edge.camera.evaluation.scenario_suite import run_live, suite_cases

    swapped = _suite_config(config, weights, backend)
    cases = suite_cases(swapped, scenarios)
    if not cases:
        raise ValueError("the suite config has no synthetic cameras (or none of the scenarios)")
    with tempfile.TemporaryDirectory(prefix="citywatch-model-suite-") as work:
        run = run_live(swapped, cases, evidence_dir=Path(work), on_frame=on_frame)
    total = merge_reports(run.reports).total
    return SuiteScore(tp=total.tp, fp=total.fp, fn=total.fn)
