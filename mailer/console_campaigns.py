"""Campaign lists and exports for the console: every campaign (any row with a
``campaign``, created through the API or not) with its rows by state, and who opened,
clicked, bounced, complained or unsubscribed (as CSV, bots left out). One campaign's
figures are :func:`mailer.campaign_stats.campaign_summary`; its state changes are
:class:`mailer.campaigns.CampaignManager`'s."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import psycopg

from mailer.sync_db import run

#: Event types whose recipients can be exported.
EXPORTABLE = ("open", "click", "bounce", "complaint", "unsubscribe")


class CampaignQueries:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def list(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest ``limit`` campaigns with their rows by state and settings' state."""
        return run(self.conn, "console_campaigns", {"limit": limit})

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
