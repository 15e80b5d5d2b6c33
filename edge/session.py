"""The MQTT session every edge agent shares: auth, TLS, last will, birth, receipts, outbox.

A broker's PUBACK is not proof of delivery (Mosquitto persists periodically, paho keeps its
session in memory, the embedded Kafka keeps nothing on restart): an alert stays in the
on-disk outbox until the stream's receipt, sent after the database commit, comes back, and
is resent with the same id when the receipt is overdue. Alerts of one device go out one at
a time, each after the previous one's receipt, so the center sees them in order even when
one is lost and resent. A "rejected" receipt moves the alert to the outbox's quarantine
(never a silent delete); the quarantine count and the last reason, and an outbox whose
disk cannot be written, are reported in the retained status.

The session runs two threads: the network thread (connect, paho's loop, reconnect with
capped, jittered backoff; a refused login is logged once, then retried at the cap, never
in a tight loop) and the pump thread (publishes what the outbox says is due, woken by new
messages, receipts and connects). The gateway's clock skew against the center, estimated
from receipts (:mod:`citywatch.edge.clock`), is reported in its retained status.
The session is an I/O shell; what to publish is decided by the agents' pure cores.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from citywatch.contracts import (
    Alert,
    Channel,
    ContractError,
    DeviceKind,
    DeviceRef,
    Receipt,
    ReceiptStatus,
    Status,
    Telemetry,
    decode,
    encode,
)
from citywatch.contracts.messages import DeviceState, Evidence
from citywatch.edge.backoff import Backoff
from citywatch.edge.clock import ClockSkew
from citywatch.edge.evidence_upload_worker import EvidenceUploader
from citywatch.edge.metrics import RECEIPT_ROUND_TRIP
from citywatch.edge.outbox import Outbox, PutResult
from citywatch.edge.outbox_entries import outbox_entry
from citywatch.edge.outbox_messages import OutboxHealth
from citywatch.mqtt_client import BrokerSettings, make_client, refused

log = logging.getLogger(__name__)

STABLE_CONNECTION_S = 10.0
"""A connection that lasted this long resets the backoff; one dropped sooner (a broker
that accepts and then kicks the client) keeps growing it."""
_SENT_TRACKED = 10_000
"""Send times kept for clock-skew samples (receipts of older ones are not sampled)."""


@dataclass
class SessionStats:
    """Counters for logs, status and tests; written by the session's threads only."""

    connects: int = 0
    connect_failures: int = 0
    refusals: int = 0
    disconnects: int = 0
    published: int = 0
    publish_errors: int = 0
    receipts: int = 0
    rejected: int = 0
    alerts_refused: int = 0
    """Alerts the outbox could not store (full of alerts, or its disk unwritable and its
    memory queue full): each was logged as an error."""
    quarantined: int = 0
    """Rejected alerts moved to the quarantine by this session."""
    status_updates: int = 0
    pump_at: float = 0.0
    """``time.monotonic()`` when the pump thread last went round (its liveness)."""


class EdgeSession:
    """One gateway's MQTT connection, publishing through a durable outbox."""

    def __init__(
        self,
        *,
        site: str,
        gateway_id: str,
        devices: Sequence[DeviceRef],
        broker: BrokerSettings,
        outbox: Outbox,
        software: str,
        on_receipt: Callable[[Receipt], None] | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        pump_interval_s: float = 1.0,
        pump_batch: int = 500,
        alerts_in_flight: int = 1,
        skew_report_ms: float = 500.0,
        evidence_uploader: EvidenceUploader | None = None,
    ) -> None:
        self.gateway = DeviceRef(site=site, kind=DeviceKind.GATEWAY, id=gateway_id)
        self.devices = tuple(devices)
        self.broker = broker
        self.outbox = outbox
        self.software = software
        self.evidence_uploader = evidence_uploader
        """Uploads the files alerts and evidence notices reference (None: they stay here)."""
        self.stats = SessionStats()
        self.skew = ClockSkew()
        self.backoff = Backoff(broker.reconnect_min_s, broker.reconnect_max_s, rng)
        self.backoff_delays: deque[float] = deque(maxlen=100)
        """The reconnect delays waited so far, newest last (for tests and diagnosis)."""
        self._on_receipt = on_receipt
        self._clock = clock
        self._pump_interval_s = pump_interval_s
        self._pump_batch = pump_batch
        self._alerts_in_flight = alerts_in_flight
        self._skew_report_ms = skew_report_ms
        self._reported_skew_ms: float | None = None
        self._connected = threading.Event()
        self._stop = threading.Event()
        self._stopping = False
        self._wake = threading.Event()
        self._pump_lock = threading.Lock()
        self._sent_at: OrderedDict[str, tuple[float, int]] = OrderedDict()
        self._sent_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._connected_since: float | None = None
        self._last_problem: str | None = None
        self._reported_health: OutboxHealth | None = None
        self._client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        client = make_client(f"citywatch-edge-{self.gateway.id}", self.broker)
        client.will_set(
            self._status_topic(),
            encode(self._status(DeviceState.OFFLINE, "connection lost")),
            qos=1,
            retain=True,
        )
        client.on_connect = self._handle_connect
        client.on_disconnect = self._handle_disconnect
        client.on_message = self._handle_message
        return client

    @property
    def receipts(self) -> int:
        """Receipts that released a pending message from the outbox."""
        return self.stats.receipts

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background; publishing works offline (into the outbox) meanwhile."""
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self.broker.session_expiry_s
        # Records where to connect; the network thread makes every attempt itself.
        self._client.connect_async(
            self.broker.host,
            self.broker.port,
            self.broker.keepalive_s,
            clean_start=False,
            properties=properties,
        )
        for name, target in (
            ("mqtt-network", self._network_main),
            ("outbox-pump", self._pump_main),
        ):
            thread = threading.Thread(target=target, name=f"{name}-{self.gateway.id}", daemon=True)
            thread.start()
            self._threads.append(thread)
        if self.evidence_uploader is not None:
            self.evidence_uploader.start()

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def stop(self) -> None:
        """Say offline (retained) and disconnect; pending alerts stay in the outbox."""
        self._stopping = True
        if self._connected.is_set():
            info = self._client.publish(
                self._status_topic(),
                encode(self._status(DeviceState.OFFLINE, "stopped")),
                qos=1,
                retain=True,
            )
            try:
                info.wait_for_publish(timeout=5)
            except RuntimeError as exc:  # the connection dropped meanwhile
                log.warning("could not say offline before stopping: %s", exc)
        self._client.disconnect()
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()
        self._connected.clear()
        if self.evidence_uploader is not None:
            self.evidence_uploader.stop()

    # -- the network thread ------------------------------------------------------------------
    def _network_main(self) -> None:
        while not self._stop.is_set():
            try:
                self._client.reconnect()
            except OSError as exc:  # refused, unreachable, timed out, TLS handshake failed
                self.stats.connect_failures += 1
                self._problem(
                    f"cannot reach the broker at {self.broker.host}:{self.broker.port}: {exc}"
                )
                self._wait_backoff()
                continue
            rc = mqtt.MQTT_ERR_SUCCESS
            while rc == mqtt.MQTT_ERR_SUCCESS and not self._stop.is_set():
                rc = self._client.loop(timeout=0.5)
            if self._stop.is_set():
                # Flush the DISCONNECT stop() queued, then leave.
                for _ in range(4):
                    if self._client.loop(timeout=0.1) != mqtt.MQTT_ERR_SUCCESS:
                        break
                break
            self._connected.clear()
            since = self._connected_since
            if since is not None and time.monotonic() - since >= STABLE_CONNECTION_S:
                self.backoff.reset()
            self._connected_since = None
            self._wait_backoff()

    def _wait_backoff(self) -> None:
        delay = self.backoff.next_delay()
        self.backoff_delays.append(delay)
        log.debug("reconnecting in %.2fs (attempt %d)", delay, self.backoff.attempts)
        self._stop.wait(delay)

    def _problem(self, message: str) -> None:
        """Log a connection problem once until it changes or a connection succeeds."""
        if message != self._last_problem:
            log.error(
                "%s; retrying with backoff (at most %ss)", message, self.broker.reconnect_max_s
            )
            self._last_problem = message
        else:
            log.debug("%s (attempt %d)", message, self.backoff.attempts)

    # -- publishing --------------------------------------------------------------------------
    def publish_alert(self, alert: Alert) -> None:
        self.publish_many([alert])

    def publish_telemetry(self, telemetry: Telemetry) -> None:
        self.publish_many([telemetry])

    def publish_many(self, messages: Sequence[Alert | Telemetry | Evidence | Status]) -> PutResult:
        """Store messages in the outbox in one transaction; the pump sends them.

        An alert the outbox cannot store (full of alerts, or its disk unwritable and its
        memory queue full) is logged as an error and counted in ``stats.alerts_refused``;
        it is never dropped silently.
        """
        batch = [outbox_entry(m) for m in messages]
        devices = {m.message_id: m.device_id for m in batch}
        result = self.outbox.put_many(batch, self._clock())
        for message_id in result.refused:
            self.stats.alerts_refused += 1
            log.error(
                "outbox %s could not take alert %s (%s): restore the uplink, free disk space"
                " or raise the outbox size",
                self.outbox.path, message_id, self.outbox.fault or "full of alerts",
                extra={"device": devices.get(message_id), "message_id": message_id},
            )  # fmt: skip
        self._wake.set()
        if self.evidence_uploader is not None:
            self.evidence_uploader.enqueue_from(messages)
        return result

    def pump(self) -> int:
        """Send what is due from the outbox (new items, and alerts whose receipt is overdue)."""
        if not self._connected.is_set():
            return 0
        sent = 0
        with self._pump_lock:
            items = self.outbox.due(
                self._clock(), limit=self._pump_batch, alerts_window=self._alerts_in_flight
            )
            published = []
            for item in items:
                info = self._client.publish(item.topic, item.payload, qos=item.qos)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    self.stats.publish_errors += 1
                    log.warning(
                        "publish failed (rc=%s); will retry",
                        info.rc,
                        extra={"message_id": item.message_id},
                    )
                    break
                published.append(item)
                if item.qos > 0:
                    self._remember_sent(item.message_id, item.attempts + 1)
            self.outbox.record_published(published, self._clock())
            sent = len(published)
            self.stats.published += sent
        if sent == self._pump_batch:
            self._wake.set()  # more may be due: go round again at once
        return sent

    def _pump_main(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._pump_interval_s)
            self._wake.clear()
            self.stats.pump_at = time.monotonic()
            if self._stop.is_set():
                break
            try:
                self.outbox.flush(self._clock())
                self.outbox.resync()
                self._report_health()
                self.pump()
            except sqlite3.Error as exc:
                log.error("outbox %s: %s; retrying", self.outbox.path, exc)
                self._stop.wait(1.0)

    def _remember_sent(self, message_id: str, attempt: int) -> None:
        with self._sent_lock:
            self._sent_at[message_id] = (time.time(), attempt)
            self._sent_at.move_to_end(message_id)
            while len(self._sent_at) > _SENT_TRACKED:
                self._sent_at.popitem(last=False)

    # -- callbacks (paho's network thread) ----------------------------------------------------
    def _handle_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: object,
        reason: object,
        properties: object,
    ) -> None:
        if refused(reason):
            self.stats.refusals += 1
            self._problem(
                f"broker refused the connection as {self.broker.username!r}: {reason}"
                " (check the gateway's credentials and the broker's ACL)"
            )
            return
        self.stats.connects += 1
        self._last_problem = None
        self._connected_since = time.monotonic()
        client.publish(
            self._status_topic(), encode(self._status(DeviceState.ONLINE, None)), qos=1, retain=True
        )
        for device in self.devices:
            client.subscribe(device.address(Channel.RECEIPTS).topic, qos=1)
        try:
            self.outbox.resend_now()  # what the broker may have lost goes first, in order
        except sqlite3.Error as exc:
            log.error(
                "outbox %s: %s; unreceipted messages wait for resend_after", self.outbox.path, exc
            )
        self._connected.set()
        log.info(
            "connected to mqtt://%s:%s as %s",
            self.broker.host,
            self.broker.port,
            self.broker.username,
        )
        self._wake.set()

    def _handle_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: object,
        reason: object,
        properties: object,
    ) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        if was_connected and not self._stopping:
            self.stats.disconnects += 1
            log.warning("disconnected from the broker (%s); reconnecting with backoff", reason)

    def _handle_message(
        self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage
    ) -> None:
        arrived = time.time()
        try:
            receipt = decode(bytes(message.payload), Receipt)
        except ContractError as exc:
            log.error("ignoring an unreadable receipt on %s: %s", message.topic, exc)
            return
        if receipt.status is ReceiptStatus.REJECTED:
            self._quarantine(receipt)
        elif self.outbox.acknowledge(receipt.message_id):
            self.stats.receipts += 1
            self._wake.set()
        with self._sent_lock:
            sent = self._sent_at.pop(receipt.message_id, None)
        if sent is not None:
            RECEIPT_ROUND_TRIP.observe(max(0.0, arrived - sent[0]))
        if sent is not None and sent[1] == 1:
            self.skew.observe(sent[0], receipt.received_at.timestamp(), arrived)
            self._maybe_report_skew(client)
        if self._on_receipt is not None:
            self._on_receipt(receipt)

    def _quarantine(self, receipt: Receipt) -> None:
        """Keep a rejected alert, with the reason, where the operator will find it."""
        at = receipt.received_at.timestamp()
        if not self.outbox.quarantine(receipt.message_id, receipt.reason, at, self._clock()):
            return  # a copy already quarantined, or not ours
        self.stats.receipts += 1
        self.stats.rejected += 1
        self.stats.quarantined += 1
        log.error(
            "the center rejected alert %s of %s: %s; it is quarantined in %s"
            " (`citywatch edge quarantine list --gateway %s`)",
            receipt.message_id, receipt.device.id, receipt.reason, self.outbox.path, self.gateway.id,
            extra={"device": receipt.device.id, "message_id": receipt.message_id,
                   "reason": receipt.reason},
        )  # fmt: skip
        self._report_health()
        self._wake.set()

    def _report_health(self) -> None:
        """Republish the retained status when the outbox's health changed."""
        health = self.outbox.health()
        if health == self._reported_health or not self._connected.is_set():
            return
        self._reported_health = health
        self._publish_status()

    def _maybe_report_skew(self, client: mqtt.Client) -> None:
        skew = self.skew.skew_ms
        if skew is None:
            return
        reported = self._reported_skew_ms
        if reported is not None and abs(skew - reported) < self._skew_report_ms:
            return
        self._reported_skew_ms = skew
        self._publish_status()

    def _publish_status(self) -> None:
        """Republish the retained online status (paho's publish is thread-safe)."""
        self.stats.status_updates += 1
        self._client.publish(
            self._status_topic(), encode(self._status(DeviceState.ONLINE, None)), qos=1, retain=True
        )

    # -- status ------------------------------------------------------------------------------
    def _status_topic(self) -> str:
        return self.gateway.address(Channel.STATUS).topic

    def _status(self, state: DeviceState, detail: str | None) -> Status:
        error = self.skew.error_ms
        notes = [detail] if detail else []
        if error is not None:
            notes.append(f"clock skew ±{error:g} ms")
        notes += self.outbox.health().notes()
        return Status(
            device=self.gateway,
            state=state,
            event_time=datetime.now(UTC),
            software=self.software,
            clock_skew_ms=self.skew.skew_ms,
            detail="; ".join(notes) or None,
        )
