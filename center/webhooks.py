"""Outgoing webhooks: a new work order at or above a target's priority is posted to it, as
plain JSON or as a WeCom (企业微信) or DingTalk (钉钉) robot message.

The notifier is one more subscriber of the live feed's :class:`~.feed.Broadcaster`: it
takes each ``reported`` event (a new order) as it is announced, and hands it to a queue per
target; a sender task per target posts it with a timeout and retries with doubling waits.
Nothing here can hold the feed up: the reader only filters and enqueues, a full target
queue drops the oldest notice (logged), and the HTTP calls run in threads.

Every center process reads the feed, and behind a load balancer several run: before a
notice is posted, its (target, feed position) is claimed in the database
(:func:`claim_in`, table ``webhook_claims``), and only the process whose claim went in sends
it, so a duty chat hears of each order once. Should the database not answer the claim, the
notice is sent anyway: a duplicate in a chat is better than a fire nobody heard of.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from citywatch.center.feed import Broadcaster, FeedEvent
from citywatch.config.secrets import SecretError, resolve_secret
from citywatch.config.webhooks import WebhookTarget

log = logging.getLogger(__name__)

NEW_ORDER_EVENT = "reported"
CLAIMS_KEPT_DAYS = 30
"""Claims older than this are deleted when a center starts (they only guard against a
second sender of the same notice, which comes within seconds)."""
QUEUE_MAX = 1000
"""Notices waiting per target; past it the oldest is dropped (a receiver down for hours)."""
PRIORITY_NAMES = {1: "P1 紧急 urgent", 2: "P2 高 high", 3: "P3 中 normal", 4: "P4 低 low"}


def is_new_order(body: Mapping[str, Any], min_priority: int) -> bool:
    """Whether a feed event is a new order at or above ``min_priority`` (1 most urgent)."""
    priority = (body.get("work_order") or {}).get("priority")
    return (
        body.get("event") == NEW_ORDER_EVENT
        and isinstance(priority, int)
        and priority <= min_priority
    )


def _local(value: object, tz: tzinfo) -> str:
    if not isinstance(value, str):
        return "—"
    try:
        return datetime.fromisoformat(value).astimezone(tz).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return value


def markdown(order: Mapping[str, Any], tz: tzinfo) -> tuple[str, str]:
    """(title, markdown text) of a new order for a duty chat."""
    priority = PRIORITY_NAMES.get(order.get("priority") or 0, f"P{order.get('priority')}")
    category = " ".join(str(order.get(k) or "") for k in ("category_code", "category_name"))
    place = " / ".join(str(order[k]) for k in ("district", "street", "community") if order.get(k))
    title = f"{priority}: {category.strip() or order.get('kind')}"
    lines = [
        f"### 新工单 New work order · {title}",
        f"> 工单 Order: {order.get('number') or order.get('id')}",
        f"> 类别 Kind: {order.get('kind')}",
        f"> 部门 Department: {order.get('department') or '—'}",
        f"> 位置 Place: {place or '—'}",
        f"> 立案 Opened: {_local(order.get('opened_at'), tz)}",
        f"> 时限 Due: {_local(order.get('due_at'), tz)}",
    ]
    return title, "\n".join(lines)


def payload(target: WebhookTarget, body: Mapping[str, Any], tz: tzinfo) -> dict[str, Any]:
    """What is posted to ``target`` for the feed event ``body``."""
    order = body.get("work_order") or {}
    if target.format == "json":
        return {"event": "workorder.opened", "time": body.get("time"), "work_order": order}
    title, text = markdown(order, tz)
    if target.format == "wecom":
        return {"msgtype": "markdown", "markdown": {"content": text}}
    return {"msgtype": "markdown", "markdown": {"title": title, "text": text}}


def dingtalk_signed(url: str, secret: str, timestamp_ms: int) -> str:
    """DingTalk's signed robot URL: ``timestamp`` and ``sign``, the Base64 HMAC-SHA256 of
    ``"{timestamp}\\n{secret}"`` under the secret, URL-encoded."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256)
    sign = quote_plus(base64.b64encode(digest.digest()).decode())
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}timestamp={timestamp_ms}&sign={sign}"


class Rejected(Exception):
    """The receiver answered that it will not take the notice (no retry helps)."""


def post(url: str, data: dict[str, Any], timeout_s: float) -> None:
    """One POST (blocking: called in a thread). Raises :class:`Rejected` for a robot's
    ``errcode`` other than 0, OSError (URLError, HTTPError, timeouts) to retry."""
    body = json.dumps(data, ensure_ascii=False).encode()
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json; charset=utf-8"}
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        answer = response.read(64 * 1024)
    try:
        parsed = json.loads(answer) if answer else None
    except ValueError:
        return
    if isinstance(parsed, dict) and parsed.get("errcode") not in (None, 0):
        raise Rejected(f"errcode {parsed.get('errcode')}: {parsed.get('errmsg')}")


Claim = Callable[[str, int], Awaitable[bool]]
"""Whether this process is the one to send the notice of feed position N to a target."""


def claim_in(pool: AsyncConnectionPool) -> Claim:
    """The claim on ``webhook_claims`` through ``pool``: True when this process's insert of
    (target, feed position) went in; True as well when the database does not answer (sent
    anyway, logged)."""

    async def claim(target: str, feed_id: int) -> bool:
        try:
            async with pool.connection() as conn:
                cursor = await conn.execute(
                    "INSERT INTO webhook_claims (target, feed_id) VALUES (%s, %s)"
                    " ON CONFLICT DO NOTHING",
                    (target, feed_id),
                )
                return cursor.rowcount == 1
        except (psycopg.Error, PoolTimeout) as error:
            log.warning("webhooks: cannot claim notice %d for %s (%s); sending it anyway",
                        feed_id, target, error)  # fmt: skip
            return True

    return claim


async def forget_old_claims(pool: AsyncConnectionPool) -> None:
    """Delete claims older than :data:`CLAIMS_KEPT_DAYS`."""
    async with pool.connection() as conn:
        await conn.execute(
            "DELETE FROM webhook_claims WHERE claimed_at < now() - make_interval(days => %s)",
            (CLAIMS_KEPT_DAYS,),
        )


class Webhooks:
    """Sends new-order notices to the configured targets (:meth:`start` / :meth:`stop`);
    with ``claim``, only the notices this process claimed (several center processes)."""

    def __init__(
        self,
        targets: tuple[WebhookTarget, ...],
        feed: Broadcaster,
        tz: tzinfo,
        secrets_dir: Path | None,
        claim: Claim | None = None,
    ) -> None:
        self.targets, self.feed, self.tz, self.secrets_dir = targets, feed, tz, secrets_dir
        self.claim = claim
        self.sent = [0] * len(targets)
        self.failed = [0] * len(targets)
        self.left_to_others = [0] * len(targets)
        self._queues: list[asyncio.Queue[tuple[int, dict[str, Any]]]] = [
            asyncio.Queue(QUEUE_MAX) for _ in targets
        ]
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        if not self.targets:
            return
        self._tasks.append(asyncio.create_task(self._read(), name="webhooks-reader"))
        for index in range(len(self.targets)):
            self._tasks.append(asyncio.create_task(self._send(index), name=f"webhook-{index}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _read(self) -> None:
        while True:
            subscription = self.feed.subscribe()
            try:
                while not subscription.cut_off:
                    event = await subscription.queue.get()
                    if event.feed_id >= 0:
                        self._route(event)
            finally:
                self.feed.unsubscribe(subscription)
            log.warning("webhooks: the live feed cut the notifier off; new orders announced"
                        " meanwhile may not have been sent")  # fmt: skip
            await asyncio.sleep(1.0)

    def _route(self, event: FeedEvent) -> None:
        body = json.loads(event.data)
        for index, target in enumerate(self.targets):
            if not is_new_order(body, target.min_priority):
                continue
            queue = self._queues[index]
            if queue.full():
                _, dropped = queue.get_nowait()
                log.error("webhook %s: %d notices waiting; the oldest (order %s) is dropped",
                          target.url, QUEUE_MAX, dropped.get("work_order", {}).get("id"))  # fmt: skip
            queue.put_nowait((event.feed_id, body))

    def _url(self, target: WebhookTarget) -> str:
        if target.format != "dingtalk" or target.secret is None:
            return target.url
        secret = resolve_secret(target.secret, self.secrets_dir)
        return dingtalk_signed(target.url, secret, int(time.time() * 1000))

    async def _send(self, index: int) -> None:
        target, queue = self.targets[index], self._queues[index]
        while True:
            feed_id, body = await queue.get()
            order_id = (body.get("work_order") or {}).get("id")
            if self.claim is not None and not await self.claim(target.url, feed_id):
                self.left_to_others[index] += 1  # another center process sends this one
                continue
            data = payload(target, body, self.tz)
            wait_s = target.retry_s
            for attempt in range(1, target.attempts + 1):
                try:
                    url = self._url(target)  # signed anew each try: DingTalk allows 1 hour
                    await asyncio.to_thread(post, url, data, target.timeout_s)
                except (Rejected, SecretError) as error:
                    self.failed[index] += 1
                    log.error("webhook %s refused order %s: %s", target.url, order_id, error)
                    break
                except (OSError, ValueError) as error:
                    if attempt == target.attempts:
                        self.failed[index] += 1
                        log.error("webhook %s: order %s not delivered after %d tries: %s",
                                  target.url, order_id, attempt, error)  # fmt: skip
                        break
                    log.warning("webhook %s: order %s, try %d failed (%s); again in %g s",
                                target.url, order_id, attempt, error, wait_s)  # fmt: skip
                    await asyncio.sleep(wait_s)
                    wait_s *= 2
                else:
                    self.sent[index] += 1
                    log.info("webhook %s: order %s sent", target.url, order_id)
                    break
