"""Outbound webhook endpoints: add, list, get, remove and re-enable them.

What ``mailer webhooks add|list|remove|enable`` calls (:class:`WebhookManager`, async)
and what the HTTP API's ``/webhooks`` routes call (:class:`SyncWebhookManager`, the same
operations over the web app's synchronous store).
An endpoint subscribes to some of :data:`EVENTS`; the database triggers of migration 0010
queue one delivery per subscribed endpoint in the transaction of the change that caused
the event, and :mod:`mailer.webhook_sender` posts them. The signing secret is returned
once, by :meth:`WebhookManager.add`, and stored only encrypted (:class:`CredentialBox`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import httpx

from mailer.credentials import CredentialBox
from mailer.db import Database
from mailer.errors import MailerError
from mailer.webhook_signing import new_secret

#: Event names an endpoint may subscribe to (payload ``type`` is ``email.<event>``).
EVENTS = (
    "sent",
    "failed",
    "delivered",
    "bounced",
    "complained",
    "opened",
    "clicked",
    "unsubscribed",
    "suppressed",
    "cancelled",
)


class WebhookError(MailerError):
    """Bad endpoint input: an unusable URL or an unknown event name."""


@dataclass(frozen=True)
class WebhookEndpoint:
    """An endpoint as stored, without its secret."""

    id: int
    url: str
    events: tuple[str, ...]
    enabled: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    failing_since: datetime | None
    created_at: datetime
    pending: int = 0


@dataclass(frozen=True)
class CreatedWebhook:
    """A new endpoint and its signing secret (the only time the secret is shown)."""

    endpoint: WebhookEndpoint
    secret: str


def parse_events(events: str | Iterable[str]) -> tuple[str, ...]:
    """Validated, de-duplicated event names (a comma-separated string or an iterable)."""
    names = events.split(",") if isinstance(events, str) else list(events)
    chosen = tuple(dict.fromkeys(n.strip().lower() for n in names if n.strip()))
    unknown = [n for n in chosen if n not in EVENTS]
    if unknown:
        raise WebhookError(f"unknown event(s) {', '.join(unknown)}; known: {', '.join(EVENTS)}")
    if not chosen:
        raise WebhookError("at least one event is needed")
    return chosen


def check_url(url: str) -> str:
    """``url`` if it is an absolute http(s) URL with a host and no credentials."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise WebhookError(f"invalid URL {url!r}: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise WebhookError(f"the URL must be http:// or https:// with a host, not {url!r}")
    if parsed.userinfo:
        raise WebhookError("the URL must not carry credentials")
    return url


def _endpoint(row: dict[str, Any]) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=row["id"],
        url=row["url"],
        events=tuple(row["events"]),
        enabled=row["enabled"],
        disabled_reason=row["disabled_reason"],
        disabled_at=row["disabled_at"],
        failing_since=row["failing_since"],
        created_at=row["created_at"],
        pending=row.get("pending", 0),
    )


def _new_endpoint(
    box: CredentialBox, url: str, events: str | Iterable[str]
) -> tuple[dict[str, Any], str]:
    """The insert parameters of a new endpoint (secret encrypted) and its plain secret."""
    secret = new_secret()
    params = {
        "url": check_url(url),
        "events": list(parse_events(events)),
        "secret_encrypted": box.encrypt(secret),
    }
    return params, secret


class QueryRunner(Protocol):
    """A synchronous runner of named queries (the web app's ``tracking.store.Store``)."""

    def fetch_all(self, name: str, params: dict[str, Any] | None = None) -> list[Any]: ...


class WebhookManager:
    """Domain operations on ``webhook_endpoints`` (async, over :class:`Database`: the CLI)."""

    def __init__(self, db: Database, box: CredentialBox) -> None:
        self.db = db
        self.box = box

    async def add(self, url: str, events: str | Iterable[str]) -> CreatedWebhook:
        """Create an endpoint; the returned secret is never readable again."""
        params, secret = _new_endpoint(self.box, url, events)
        (row,) = await self.db.fetch_all("insert_webhook_endpoint", params)
        return CreatedWebhook(_endpoint(row), secret)

    async def list(self) -> list[WebhookEndpoint]:
        """Every endpoint, oldest first."""
        rows = await self.db.fetch_all("list_webhook_endpoints", {"endpoint_id": None})
        return [_endpoint(r) for r in rows]

    async def get(self, endpoint_id: int) -> WebhookEndpoint | None:
        """One endpoint, or None."""
        rows = await self.db.fetch_all("list_webhook_endpoints", {"endpoint_id": endpoint_id})
        return _endpoint(rows[0]) if rows else None

    async def remove(self, endpoint_id: int) -> bool:
        """Delete an endpoint with its pending deliveries; False if there was none."""
        return bool(
            await self.db.fetch_all("delete_webhook_endpoint", {"endpoint_id": endpoint_id})
        )

    async def enable(self, endpoint_id: int) -> bool:
        """Re-enable an (automatically) disabled endpoint; False if there is none."""
        return bool(
            await self.db.fetch_all("enable_webhook_endpoint", {"endpoint_id": endpoint_id})
        )


class SyncWebhookManager:
    """The same operations, synchronous, over a :class:`QueryRunner` (the Flask API's
    ``/webhooks`` routes, which run on the web app's ``Store``)."""

    def __init__(self, store: QueryRunner, box: CredentialBox) -> None:
        self.store = store
        self.box = box

    def add(self, url: str, events: str | Iterable[str]) -> CreatedWebhook:
        """See :meth:`WebhookManager.add`."""
        params, secret = _new_endpoint(self.box, url, events)
        (row,) = self.store.fetch_all("insert_webhook_endpoint", params)
        return CreatedWebhook(_endpoint(row), secret)

    def list(self) -> list[WebhookEndpoint]:
        """See :meth:`WebhookManager.list`."""
        return [
            _endpoint(r)
            for r in self.store.fetch_all("list_webhook_endpoints", {"endpoint_id": None})
        ]

    def get(self, endpoint_id: int) -> WebhookEndpoint | None:
        """See :meth:`WebhookManager.get`."""
        rows = self.store.fetch_all("list_webhook_endpoints", {"endpoint_id": endpoint_id})
        return _endpoint(rows[0]) if rows else None

    def remove(self, endpoint_id: int) -> bool:
        """See :meth:`WebhookManager.remove`."""
        return bool(self.store.fetch_all("delete_webhook_endpoint", {"endpoint_id": endpoint_id}))

    def enable(self, endpoint_id: int) -> bool:
        """See :meth:`WebhookManager.enable`."""
        return bool(self.store.fetch_all("enable_webhook_endpoint", {"endpoint_id": endpoint_id}))
