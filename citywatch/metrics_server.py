"""Prometheus metrics and an orchestrator's health checks on a port of their own, for every
long-running citywatch process (stream worker, bridge, center, edge agents).

Why a port of its own, and not a route of each component's server: the worker and the edge
agents have no HTTP server at all, the center's API sits behind its authentication gate,
and a scraper or a kubelet should reach all of them the same way. One small threaded WSGI
server per process serves:

- ``/metrics``: the process's own registry (:func:`component_registry`) in Prometheus's
  text format, written by ``prometheus_client`` (never by hand);
- ``/healthz``: liveness, 200 when every liveness probe passes (the process's loop still
  turns: see :class:`Heartbeat`), else 503: restart me;
- ``/readyz``: readiness, 200 when every readiness probe passes (the worker has its
  partitions and its database, the bridge its MQTT and Kafka links, …), else 503: send me
  no work yet. Both answer JSON that names each probe and why it fails.

A probe is a function returning ``None`` when all is well, or the reason it is not; it runs
on the server's thread at each request, so it only reads state the component keeps anyway
(a flag, a timestamp), never I/O.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    disable_created_metrics,
    make_wsgi_app,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = [
    "Health",
    "Heartbeat",
    "MetricsPortError",
    "MetricsServer",
    "Probe",
    "component_registry",
    "serve",
]

log = logging.getLogger(__name__)

disable_created_metrics()  # no ``*_created`` series: a scrape shows what the panels use

Probe = Callable[[], str | None]
"""``None`` when the probed part is fine, else why it is not (one line, for a person)."""

StartResponse = Callable[[str, list[tuple[str, str]]], object]


class Heartbeat:
    """When a loop last went round: its liveness. The loop calls :meth:`beat`; the probe
    fails once it has been silent longer than ``max_silence_s`` (stuck, deadlocked, or its
    thread gone)."""

    def __init__(self, max_silence_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_silence_s = max_silence_s
        self.clock = clock
        self.last = clock()

    def beat(self) -> None:
        self.last = self.clock()

    def probe(self) -> str | None:
        silent = self.clock() - self.last
        if silent > self.max_silence_s:
            return f"no heartbeat for {silent:.0f} s (limit {self.max_silence_s:g} s)"
        return None

    async def keep_beating(self, every_s: float) -> None:
        """Beat from an event loop until cancelled: proves that loop still runs its tasks."""
        while True:
            self.beat()
            await asyncio.sleep(every_s)


@dataclass
class Health:
    """The liveness and readiness probes of one process, by name (a probe added again under
    its name replaces the old one: a component rebuilt in the same process).

    ``starting`` names the readiness probe that says "not yet" until the component puts its
    own probe under that name: the port may open before the component is built, and no
    probe at all would read as ready."""

    starting: str | None = None
    liveness: dict[str, Probe] = field(default_factory=dict)
    readiness: dict[str, Probe] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.starting is not None:
            self.readiness[self.starting] = lambda: "starting"

    def report(self, probes: dict[str, Probe]) -> tuple[bool, dict[str, Any]]:
        """Whether every probe passes, and the JSON answer naming each one's state. A probe
        that raises fails with the exception as its reason."""
        checks: dict[str, Any] = {}
        for name, probe in list(probes.items()):
            try:
                reason = probe()
            except Exception as exc:  # a broken probe must say so, not take the server down
                reason = f"probe failed: {type(exc).__name__}: {exc}"
            checks[name] = {"ok": reason is None, "reason": reason}
        ok = all(check["ok"] for check in checks.values())
        return ok, {"status": "ok" if ok else "failing", "checks": checks}


class HealthCollector(Collector):
    """The probes' states as a gauge, so Prometheus (and an alert) sees what ``/healthz``
    and ``/readyz`` answer: ``citywatch_health_check{probe, kind}`` is 1 or 0."""

    def __init__(self, health: Health) -> None:
        self.health = health

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "citywatch_health_check",
            "1 while a liveness or readiness probe of this process passes, else 0.",
            labels=["probe", "kind"],
        )
        for kind, probes in (
            ("liveness", self.health.liveness),
            ("readiness", self.health.readiness),
        ):
            _, answer = self.health.report(probes)
            for name, check in answer["checks"].items():
                family.add_metric([name, kind], 1 if check["ok"] else 0)
        yield family


def component_registry(health: Health | None = None) -> CollectorRegistry:
    """A registry for one component's metrics, with the process's CPU, memory, file
    descriptors and garbage collector beside them (what ``prometheus_client`` puts in its
    global registry; each component keeps its own so a process shows only its metrics), and
    the states of ``health``'s probes."""
    registry = CollectorRegistry()
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    if health is not None:
        registry.register(HealthCollector(health))
    return registry


class MetricsPortError(OSError):
    """The metrics port cannot be bound (taken, or a privileged port)."""


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _ThreadingServer6(_ThreadingServer):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    """Request lines at DEBUG, not on stderr: a scrape every 15 s is not news."""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("metrics %s " + format, self.address_string(), *args)


def health_app(
    registry: CollectorRegistry, health: Health
) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """The WSGI app of the metrics port: ``/metrics``, ``/healthz``, ``/readyz``."""
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path in ("/healthz", "/readyz"):
            ok, body = health.report(health.liveness if path == "/healthz" else health.readiness)
            text = json.dumps(body, ensure_ascii=False).encode()
            status = "200 OK" if ok else "503 Service Unavailable"
            start_response(
                status, [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
            )
            return [text]
        if path == "/metrics":
            return metrics(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"citywatch metrics port: /metrics, /healthz, /readyz\n"]

    return app


@dataclass
class MetricsServer:
    """A running metrics port; :meth:`close` stops it (the process's exit does as well)."""

    host: str
    port: int
    server: WSGIServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve(registry: CollectorRegistry, health: Health, host: str, port: int) -> MetricsServer:
    """Serve ``registry`` and ``health`` on ``host:port`` (port 0: any free one) from a
    daemon thread; raises :class:`MetricsPortError` when the port cannot be bound."""
    server_class = _ThreadingServer6 if ":" in host else _ThreadingServer
    try:
        server = make_server(
            host, port, health_app(registry, health), server_class, handler_class=_QuietHandler
        )
    except OSError as exc:
        raise MetricsPortError(
            exc.errno, f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}"
            " (choose another --metrics-port, or leave it off)",
        ) from exc  # fmt: skip
    bound = int(server.server_address[1])
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.5}, name="metrics", daemon=True
    )
    thread.start()
    log.info("metrics on http://%s:%d/metrics (health: /healthz, /readyz)", host, bound)
    return MetricsServer(host, bound, server, thread)
