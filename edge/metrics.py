"""The edge agents' Prometheus metrics: the MQTT session and outbox every gateway shares,
and each camera's frames, in one registry per gateway process.

What the hot path pays: one histogram observation per processed frame (inference and
pipeline time) and per receipt (its round trip); everything else is read from the counters
the session, the outbox and the cameras keep anyway, when Prometheus scrapes. Labels are
the gateway (one per process), the outbox's message kinds and the camera (a handful per
gateway), never a device's or an alert's id on a per-message series.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from citywatch.metrics_server import Health, Probe, component_registry

if TYPE_CHECKING:
    from citywatch.edge.camera.agent import CameraGateway
    from citywatch.edge.session import EdgeSession

EDGE_HEALTH = Health()
EDGE_REGISTRY = component_registry(EDGE_HEALTH)

PUMP_SILENT_MAX_S = 60.0
"""A session whose pump thread has not gone round for this long is reported dead (it goes
round at least every ``pump_interval_s``, a second by default)."""

_FRAME_SECONDS = (0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0)

RECEIPT_ROUND_TRIP = Histogram(
    "citywatch_edge_receipt_round_trip_seconds",
    "From publishing a message to its receipt from the stream (stored, then answered).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
    registry=EDGE_REGISTRY,
)
INFERENCE_SECONDS = Histogram(
    "citywatch_camera_inference_seconds", "The detector's time on one frame.",
    buckets=_FRAME_SECONDS, registry=EDGE_REGISTRY,
)  # fmt: skip
PIPELINE_SECONDS = Histogram(
    "citywatch_camera_pipeline_seconds",
    "One frame through detector, tracker and rules (inference included).",
    buckets=_FRAME_SECONDS, registry=EDGE_REGISTRY,
)  # fmt: skip


def observe_frame(inference_s: float, pipeline_s: float) -> None:
    """One frame a camera processed."""
    INFERENCE_SECONDS.observe(inference_s)
    PIPELINE_SECONDS.observe(pipeline_s)


class SessionCollector(Collector):
    """Each watched session's counters, outbox depth and quarantine, at scrape time."""

    def __init__(self) -> None:
        self.sessions: dict[str, tuple[EdgeSession, str]] = {}

    def collect(self) -> Iterator[Metric]:
        g = ["gateway"]
        info = InfoMetricFamily("citywatch_edge_gateway", "The gateway this agent runs.")
        out = CounterMetricFamily(
            "citywatch_edge_messages_out", "Messages published to the MQTT broker.", labels=g
        )
        receipts = CounterMetricFamily(
            "citywatch_edge_messages_in",
            "Receipts that let a message go (stored) or quarantined it (rejected), by status.",
            labels=[*g, "status"],
        )
        errors = CounterMetricFamily(
            "citywatch_edge_publish_errors", "Publishes paho refused (retried).", labels=g
        )
        refused = CounterMetricFamily(
            "citywatch_edge_outbox_refused",
            "Alerts the outbox could not store (full, or its disk unwritable).", labels=g,
        )  # fmt: skip
        shed = CounterMetricFamily(
            "citywatch_edge_outbox_shed", "Messages dropped because the outbox was full.", labels=g
        )
        depth = GaugeMetricFamily(
            "citywatch_edge_outbox_depth", "Messages waiting in the outbox (unsent or unreceipted).",
            labels=[*g, "kind"],
        )  # fmt: skip
        quarantine = GaugeMetricFamily(
            "citywatch_edge_quarantine_size", "Rejected alerts held in the quarantine.", labels=g
        )
        connected = GaugeMetricFamily(
            "citywatch_edge_mqtt_connected", "1 while the MQTT session is up.", labels=g
        )
        connects = CounterMetricFamily(
            "citywatch_edge_mqtt_connects", "Successful connections to the broker.", labels=g
        )
        for gateway, (session, kind) in list(self.sessions.items()):
            stats, outbox = session.stats, session.outbox
            info.add_metric(["gateway", "kind"], {"gateway": gateway, "kind": kind})
            out.add_metric([gateway], stats.published)
            receipts.add_metric([gateway, "stored"], stats.receipts - stats.rejected)
            receipts.add_metric([gateway, "rejected"], stats.rejected)
            errors.add_metric([gateway], stats.publish_errors)
            refused.add_metric([gateway], stats.alerts_refused)
            shed.add_metric([gateway], outbox.shed_count)
            for message_kind, count in sorted(outbox.counts().items()):
                depth.add_metric([gateway, message_kind], count)
            quarantine.add_metric([gateway], outbox.health().quarantined)
            connected.add_metric([gateway], 1 if session.connected else 0)
            connects.add_metric([gateway], stats.connects)
        yield from (info, out, receipts, errors, refused, shed, depth, quarantine, connected)
        yield connects


class CameraCollector(Collector):
    """Each camera's frames, drops and errors, at scrape time. fps is
    ``rate(citywatch_camera_frames_total[1m])``, beside the configured detection rate."""

    def __init__(self) -> None:
        self.gateways: list[CameraGateway] = []
        self._behind: dict[str, int] = {}

    def behind(self, camera: str, decoded: int, processed: int) -> int:
        """Frames decoded but not processed, never less than reported before: a frame in
        flight counts for a moment, and a counter that went down would read as a reset."""
        value = max(self._behind.get(camera, 0), decoded - processed)
        self._behind[camera] = value
        return value

    def collect(self) -> Iterator[Metric]:
        c = ["camera"]
        frames = CounterMetricFamily(
            "citywatch_camera_frames", "Frames through the camera's pipeline.", labels=c
        )
        dropped = CounterMetricFamily(
            "citywatch_camera_dropped_frames",
            "Frames lost: 'behind' decoded but not processed, 'network' skipped by the"
            " stream's timestamps, 'clip' not recorded by a clip worker that was behind.",
            labels=[*c, "cause"],
        )
        errors = CounterMetricFamily(
            "citywatch_camera_errors", "Frames that failed, and source errors.", labels=c
        )
        alerts = CounterMetricFamily(
            "citywatch_camera_alerts", "Alert messages the camera's rules raised.", labels=c
        )
        target = GaugeMetricFamily(
            "citywatch_camera_detect_fps", "The configured detection rate (frames a second).",
            labels=c,
        )  # fmt: skip
        last_frame = GaugeMetricFamily(
            "citywatch_camera_last_frame_age_seconds", "Since the camera's last frame.", labels=c
        )
        now = time.monotonic()
        for gateway in list(self.gateways):
            for camera, worker in list(gateway.workers.items()):
                stats, source = worker.stats, worker.source.stats
                frames.add_metric([camera], stats.frames)
                behind = self.behind(camera, source.frames_decoded, stats.frames)
                dropped.add_metric([camera, "behind"], behind)
                dropped.add_metric([camera, "network"], source.frames_lost)
                clip = worker.pipeline.clip_frames_dropped if worker.pipeline else 0
                dropped.add_metric([camera, "clip"], clip)
                errors.add_metric([camera], stats.errors)
                alerts.add_metric([camera], stats.alerts)
                target.add_metric([camera], worker.camera.source.detect_fps)
                if stats.last_frame_at is not None:
                    last_frame.add_metric([camera], now - stats.last_frame_at)
        yield from (frames, dropped, errors, alerts, target, last_frame)


SESSIONS = SessionCollector()
CAMERAS = CameraCollector()
EDGE_REGISTRY.register(SESSIONS)
EDGE_REGISTRY.register(CAMERAS)


def session_probes(session: EdgeSession) -> tuple[Probe, Probe]:
    """The session's liveness (its pump thread goes round) and readiness (MQTT is up)."""

    def alive() -> str | None:
        silent = time.monotonic() - session.stats.pump_at
        if session.stats.pump_at and silent > PUMP_SILENT_MAX_S:
            return f"the outbox pump has not gone round for {silent:.0f} s"
        return None

    def ready() -> str | None:
        return None if session.connected else "not connected to the MQTT broker"

    return alive, ready


def watch_session(session: EdgeSession, kind: str) -> None:
    """Expose a gateway's session and outbox, and probe it for ``/healthz`` and ``/readyz``."""
    gateway = session.gateway.id
    SESSIONS.sessions[gateway] = (session, kind)
    alive, ready = session_probes(session)
    EDGE_HEALTH.liveness[f"session {gateway}"] = alive
    EDGE_HEALTH.readiness[f"mqtt {gateway}"] = ready


def watch_cameras(gateway: CameraGateway) -> None:
    """Expose a camera gateway's cameras."""
    CAMERAS.gateways = [g for g in CAMERAS.gateways if g.gateway_id != gateway.gateway_id]
    CAMERAS.gateways.append(gateway)
