"""The webhook sender (``mailer webhooks run``): posts queued event deliveries, signed per
Standard Webhooks, and retries them with exponential backoff.

Where deliveries come from: the triggers of migration 0010 insert one ``webhook_deliveries``
row per subscribed endpoint in the transaction that changes a message (sent, failed) or
records an event about it (open, click, unsubscribe, bounce, complaint, delivery), so a
rolled-back change leaves none.

One batch is one transaction: claim up to ``webhook_batch_size`` due deliveries with
``FOR UPDATE SKIP LOCKED``, post them concurrently, record every attempt (status, latency,
response excerpt) and each delivery's next state, commit. The row locks last until that
commit, so a sender killed mid-batch loses nothing (its deliveries are due again and go out
a second time with the same ``webhook-id``), and several senders (several orchestrators)
share the work without sending one delivery twice at once.

A failed attempt (no 2xx answer, a timeout, a refused target) is retried after
``webhook_retry_base_seconds`` doubling up to ``webhook_retry_max_seconds``, until
``webhook_retry_hours`` after the event; then the delivery is ``failed``. An endpoint whose
attempts have all failed for ``webhook_disable_after_hours`` is disabled with the reason
(``mailer webhooks list`` shows it; ``mailer webhooks enable ID`` turns it back on).
Targets are checked against private addresses at send time (:mod:`mailer.webhook_targets`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
from psycopg.types.json import Jsonb

from mailer.config import Settings
from mailer.credentials import CredentialBox, SecretKeyError, secret_key
from mailer.db import Database, Row, connect_listener, wait_notifies
from mailer.retry import retry_delay
from mailer.sql_queries import query
from mailer.webhook_signing import signed_headers
from mailer.webhook_targets import TargetRefused, checked_target

log = logging.getLogger("mailer.webhooks")

#: Characters of a receiver's response body kept in ``webhook_attempts``.
EXCERPT_CHARS = 500
USER_AGENT = "Mailer-Webhooks/1"

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Attempt:
    """The outcome of posting one delivery once."""

    delivery_id: int
    endpoint_id: int
    status: str  # delivered | pending | failed
    status_code: int | None
    error: str | None
    latency_ms: int
    response_excerpt: str | None
    next_attempt_at: datetime | None

    @property
    def ok(self) -> bool:
        return self.status == "delivered"


@dataclass(frozen=True)
class BatchResult:
    """What one batch did."""

    delivered: int = 0
    failed: int = 0
    disabled: tuple[int, ...] = ()

    @property
    def attempted(self) -> int:
        return self.delivered + self.failed


class DeliveryPoster:
    """Posts one claimed delivery and decides its next state."""

    def __init__(self, settings: Settings, box: CredentialBox, client: httpx.AsyncClient) -> None:
        self.settings = settings
        self.box = box
        self.client = client

    async def post(self, row: Row, now: datetime) -> Attempt:
        started = time.perf_counter()
        code: int | None = None
        excerpt: str | None = None
        try:
            code, excerpt = await self._send(row)
            error = None if 200 <= code < 300 else f"HTTP {code}"
        except TargetRefused as exc:
            error = str(exc)
        except (httpx.HTTPError, SecretKeyError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # one bad delivery must not stop the sender (poison row)
            log.exception("webhook delivery %s: unexpected error", row["id"])
            error = f"{type(exc).__name__}: {exc}"
        latency_ms = round((time.perf_counter() - started) * 1000)
        status, next_at = self._next_state(row, now, error)
        return Attempt(
            row["id"],
            row["endpoint_id"],
            status,
            code,
            _clean(error),
            latency_ms,
            _clean(excerpt),
            next_at,
        )

    async def _send(self, row: Row) -> tuple[int, str]:
        """POST the delivery; its status code and the start of the answer (a receiver's
        body is never read past :data:`EXCERPT_CHARS` characters' worth)."""
        target = await checked_target(
            row["url"], allow_private=self.settings.webhooks_allow_private
        )
        secret = self.box.decrypt(row["secret_encrypted"])
        body = row["body"]
        headers = signed_headers(secret, row["webhook_id"], int(time.time()), body)
        async with self.client.stream(
            "POST",
            target.url,
            content=body.encode(),
            headers=headers | target.headers,
            extensions=target.extensions,
        ) as response:
            head = b""
            async for chunk in response.aiter_bytes():
                head += chunk
                if len(head) >= EXCERPT_CHARS * 4:
                    break
            return response.status_code, head.decode("utf-8", "replace")

    def _next_state(
        self, row: Row, now: datetime, error: str | None
    ) -> tuple[str, datetime | None]:
        if error is None:
            return "delivered", None
        s = self.settings
        delay = retry_delay(
            row["attempts"] + 1, base=s.webhook_retry_base_seconds, cap=s.webhook_retry_max_seconds
        )
        next_at = now + timedelta(seconds=delay)
        if next_at > row["created_at"] + timedelta(hours=s.webhook_retry_hours):
            return "failed", None
        return "pending", next_at


async def deliver_batch(
    db: Database, poster: DeliveryPoster, settings: Settings, now: datetime
) -> BatchResult:
    """Claim, post and record one batch of due deliveries (see the module docstring)."""
    async with db.transaction() as conn:
        cur = await conn.execute(
            query("claim_webhook_deliveries"), {"now": now, "limit": settings.webhook_batch_size}
        )
        rows = await cur.fetchall()
        if not rows:
            return BatchResult()
        attempts = await asyncio.gather(*(poster.post(r, now) for r in rows))
        await conn.execute(
            query("record_webhook_attempts"),
            {"now": now, "results": Jsonb([_as_json(a) for a in attempts])},
        )
        disabled = await _record_health(conn, attempts, settings, now)
    for a in attempts:
        if not a.ok:
            log.info(
                "webhook delivery %s to endpoint %s: %s", a.delivery_id, a.endpoint_id, a.error
            )
    ok = sum(a.ok for a in attempts)
    return BatchResult(ok, len(attempts) - ok, disabled)


def _clean(text: str | None) -> str | None:
    """At most :data:`EXCERPT_CHARS` characters, without NULs (which PostgreSQL text
    refuses: one receiver's odd answer must not block the batch's record)."""
    return None if text is None else text.replace("\x00", "")[:EXCERPT_CHARS]


def _as_json(attempt: Attempt) -> dict[str, Any]:
    data = asdict(attempt)
    if attempt.next_attempt_at is not None:
        data["next_attempt_at"] = attempt.next_attempt_at.isoformat()
    return data


async def _record_health(
    conn: psycopg.AsyncConnection[Row], attempts: list[Attempt], settings: Settings, now: datetime
) -> tuple[int, ...]:
    """Clear the failure run of endpoints that took a delivery; start or extend it for the
    others, disabling those failing for ``webhook_disable_after_hours``."""
    healthy = sorted({a.endpoint_id for a in attempts if a.ok})
    failures = {
        a.endpoint_id: a.error for a in attempts if not a.ok and a.endpoint_id not in healthy
    }
    if healthy:
        await conn.execute(
            query("webhook_endpoints_succeeded"), {"now": now, "endpoint_ids": healthy}
        )
    if not failures:
        return ()
    cur = await conn.execute(
        query("webhook_endpoints_failed"),
        {
            "now": now,
            "disable_before": now - timedelta(hours=settings.webhook_disable_after_hours),
            "failures": Jsonb([{"endpoint_id": k, "error": v} for k, v in failures.items()]),
        },
    )
    disabled = tuple(r["id"] for r in await cur.fetchall() if not r["enabled"])
    for endpoint_id in disabled:
        log.warning("webhook endpoint %s disabled after continuous failure", endpoint_id)
    return disabled


def http_client(settings: Settings) -> httpx.AsyncClient:
    """The client every delivery goes through: no proxies from the environment (the
    checked address must be the one connected to), no redirects followed."""
    connections = max(settings.webhook_batch_size, 1)
    return httpx.AsyncClient(
        timeout=settings.webhook_timeout_seconds,
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        follow_redirects=False,
        trust_env=False,
        headers={"user-agent": USER_AGENT},
    )


class WebhookSender:
    """``mailer webhooks run``: deliver due batches until stopped. Between batches it
    sleeps until the next retry falls due (at most ``webhook_poll_seconds``), woken at
    once by the NOTIFY (channel ``mailer_webhooks``) of a transaction queueing deliveries."""

    stop_timeout = 15.0
    #: The shortest sleep between two looks (deliveries due but locked by another sender).
    min_sleep_seconds = 0.2

    def __init__(self, settings: Settings, url: str, *, clock: Clock = utcnow) -> None:
        self.settings = settings
        self.url = url
        self.clock = clock
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()

    def request_stop(self, reason: str = "stop requested") -> None:
        log.info("webhook sender stopping: %s", reason)
        self._stop.set()

    async def run(self) -> int:
        box = CredentialBox(secret_key(self.settings))
        while not self._stop.is_set():
            try:
                async with (
                    Database(self.url) as db,
                    http_client(self.settings) as client,
                    self._listening(),
                ):
                    await self._loop(db, DeliveryPoster(self.settings, box, client))
            except (psycopg.Error, OSError) as exc:
                log.warning("webhook sender: database unavailable (%s); retrying", exc)
                await self._sleep(self.settings.webhook_poll_seconds)
        return 0

    @contextlib.asynccontextmanager
    async def _listening(self) -> AsyncIterator[None]:
        """LISTEN on a dedicated connection while the block runs; a NOTIFY sets the wake
        event. Losing that connection only costs promptness: the polls go on."""
        listener = await connect_listener(self.url, ["mailer_webhooks"])
        task = asyncio.create_task(self._listen(listener))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await listener.close()

    async def _listen(self, listener: psycopg.AsyncConnection[Row]) -> None:
        try:
            while True:  # wakes only when a notification arrives (see wait_notifies)
                if await wait_notifies(listener):
                    self._wake.set()
        except psycopg.OperationalError as exc:
            log.warning("webhook sender: lost its LISTEN connection (%s); polling only", exc)

    async def _loop(self, db: Database, poster: DeliveryPoster) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # a NOTIFY from now on means: look again after this batch
            result = await deliver_batch(db, poster, self.settings, self.clock())
            if result.attempted < self.settings.webhook_batch_size:
                await self._sleep(await self._idle_seconds(db))

    async def _idle_seconds(self, db: Database) -> float:
        """Until the next pending delivery falls due, within [min_sleep, poll]."""
        row = await db.fetch_one("webhook_next_due_seconds")
        poll = self.settings.webhook_poll_seconds
        due = row["seconds"] if row is not None else None
        return poll if due is None else max(min(poll, self.min_sleep_seconds), min(poll, due))

    async def _sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if a stop is requested or a NOTIFY arrives."""
        waits = [asyncio.create_task(self._stop.wait()), asyncio.create_task(self._wake.wait())]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
