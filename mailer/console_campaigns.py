"""Campaign figures for the console: progress by state, unique opens and clicks (people
apart from suspected bots), bounces, complaints, unsubscribes, top links, and who opened,
clicked or bounced (as CSV)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg

from mailer.sync_db import run, run_one

#: Event types whose recipients can be exported.
EXPORTABLE = ("open", "click", "bounce", "complaint", "unsubscribe")


@dataclass(frozen=True)
class CampaignReport:
    counts: dict[str, Any]
    engagement: dict[str, dict[str, int]]
    top_links: list[dict[str, Any]]

    @property
    def done_percent(self) -> float:
        total = self.counts["total"] or 1
        return round(100 * (self.counts["total"] - self.counts["pending"]) / total, 1)


class CampaignQueries:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def list(self, limit: int = 100) -> list[dict[str, Any]]:
        return run(self.conn, "console_campaigns", {"limit": limit, "campaign": None})

    def report(self, campaign: str) -> CampaignReport | None:
        params = {"limit": 1, "campaign": campaign}
        counts = run_one(self.conn, "console_campaigns", params)
        if counts is None:
            return None
        engagement = {
            r["type"]: {"people": r["people"], "bots": r["bots"]}
            for r in run(self.conn, "console_campaign_engagement", {"campaign": campaign})
        }
        links = run(self.conn, "console_campaign_top_links", {"campaign": campaign, "limit": 10})
        return CampaignReport(counts, engagement, links)

    def recipients_csv(self, campaign: str, kind: str) -> Iterator[str]:
        """Who had an event of ``kind`` (one of :data:`EXPORTABLE`), as CSV lines."""
        rows = run(self.conn, "console_campaign_recipients", {"campaign": campaign, "type": kind})
        yield csv_line(["email", "name", "queue_id", "first_at", "events"])
        for r in rows:
            yield csv_line(
                [r["email"], r["name"] or "", r["queue_id"], r["first_at"].isoformat(), r["events"]]
            )


def csv_line(cells: list[Any]) -> str:
    """One CSV record; cells starting with = + - @ are quoted as text (no formula
    injection when opened in a spreadsheet)."""
    out = io.StringIO()
    safe = [f"'{c}" if isinstance(c, str) and c[:1] in ("=", "+", "-", "@") else c for c in cells]
    csv.writer(out).writerow(safe)
    return out.getvalue()
