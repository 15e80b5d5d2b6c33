"""The detectors one camera runs, loaded from its config and checked against its rules.

Shared by the live gateway (models pooled across its cameras), ``citywatch edge replay``
and ``citywatch edge detect``, so the three load the same entries and refuse the same
camera for the same reason: a rule asking for a class that none of the camera's detectors
reports after its class map.
"""

from __future__ import annotations

from citywatch.config.camera import CameraConfig, StreetVendingRule
from citywatch.models.detections import Detector
from citywatch.models.detector_factory import UnknownClass
from citywatch.models.detector_set import ModelPool, combine

__all__ = ["camera_detector", "load_camera_detectors", "rule_classes"]


def rule_classes(camera: CameraConfig) -> set[str]:
    """The detector classes the camera's rules ask for."""
    wanted: set[str] = set()
    for rule in camera.rules:
        wanted |= set(rule.classes)
        if isinstance(rule, StreetVendingRule) and rule.require_person:
            wanted |= set(rule.person_classes)
    return wanted


def load_camera_detectors(
    camera: CameraConfig, pool: ModelPool | None = None
) -> tuple[Detector, ...]:
    """One detector per entry of ``camera.detector_list`` (models from ``pool``, loaded
    there once); :class:`UnknownClass` if a rule asks for a class none of them reports,
    :class:`~citywatch.models.detector_factory.DetectorError` if one cannot load."""
    pool = pool if pool is not None else ModelPool()
    detectors = tuple(pool.detector(config) for config in camera.detector_list)
    available = tuple(dict.fromkeys(n for d in detectors for n in d.classes))
    missing = [name for name in sorted(rule_classes(camera)) if name not in available]
    if missing:
        raise UnknownClass(missing, available, f"camera {camera.id}")
    return detectors


def camera_detector(camera: CameraConfig, pool: ModelPool | None = None) -> Detector:
    """The camera's detectors as one, each at its cadence, for a tool running them
    outside a pipeline (``citywatch edge detect``)."""
    from citywatch.models.smoke_change import corroborated

    detectors = load_camera_detectors(camera, pool)
    return combine(
        [
            (config, corroborated(detector, config))
            for config, detector in zip(camera.detector_list, detectors, strict=True)
        ]
    )
