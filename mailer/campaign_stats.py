"""A campaign's figures (``GET /api/v1/campaigns/{name}``, and the operator console):
its rows by status, progress and send rate, engagement by unique recipient with suspected
bots counted apart (see :mod:`tracking.scanners`), problems, and its most clicked links.

:func:`campaign_summary` reads them in one statement (``campaign_stats`` in
``sql/queries.sql``: counts from an index-only scan, addresses read only for the people's
opens and clicks) and returns frozen dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from mailer.sync_db import run_one

#: How many links ``top_links`` holds.
TOP_LINKS = 10
#: Statuses whose rows are finished (progress counts them as done).
DONE_STATUSES = ("sent", "failed", "suppressed", "cancelled")


@dataclass(frozen=True)
class StatusCounts:
    """The campaign's rows by ``email_queue.status``."""

    queued: int
    sending: int
    sent: int
    failed: int
    suppressed: int
    cancelled: int

    @property
    def total(self) -> int:
        return self.queued + self.sending + self.done

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.suppressed + self.cancelled


@dataclass(frozen=True)
class Engagement:
    """Opens or clicks: unique recipients and events of people, events of suspected bots."""

    unique: int
    total: int
    bots: int


@dataclass(frozen=True)
class LinkClicks:
    url: str
    unique_clicks: int
    clicks: int


@dataclass(frozen=True)
class SendRate:
    """Messages sent per minute, averaged over the last 5 and 60 minutes."""

    last_5_minutes: float
    last_60_minutes: float


@dataclass(frozen=True)
class CampaignSummary:
    name: str
    counts: StatusCounts
    opens: Engagement
    clicks: Engagement
    bounces: int
    complaints: int
    unsubscribes: int
    top_links: tuple[LinkClicks, ...]
    send_rate: SendRate
    first_sent_at: datetime | None
    last_sent_at: datetime | None

    @property
    def progress(self) -> float:
        """The share of rows finished, 0 to 1 (1 for an empty campaign)."""
        total = self.counts.total
        return self.counts.done / total if total else 1.0


def campaign_summary(
    conn: psycopg.Connection[Any], name: str, *, api_key_id: int | None = None
) -> CampaignSummary:
    """The figures of campaign ``name`` (only the rows of ``api_key_id`` when given)."""
    params = {"name": name, "api_key_id": api_key_id, "limit": TOP_LINKS}
    row = run_one(conn, "campaign_stats", params)
    assert row is not None  # aggregates always return a row
    links = row["top_links"]
    return CampaignSummary(
        name=name,
        counts=StatusCounts(*(row[s] for s in ("queued", "sending", *DONE_STATUSES))),
        opens=Engagement(row["unique_opens"], row["opens"], row["bot_opens"]),
        clicks=Engagement(row["unique_clicks"], row["clicks"], row["bot_clicks"]),
        bounces=row["bounces"],
        complaints=row["complaints"],
        unsubscribes=row["unsubscribes"],
        top_links=tuple(LinkClicks(r["url"], r["unique_clicks"], r["clicks"]) for r in links),
        send_rate=SendRate(row["sent_last_5_minutes"] / 5, row["sent_last_60_minutes"] / 60),
        first_sent_at=row["first_sent_at"],
        last_sent_at=row["last_sent_at"],
    )
