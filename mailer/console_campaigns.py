"""Campaign lists and exports for the console: every campaign (any row with a
``campaign``, created through the API or not) with its rows by state (finished states as
of the ``campaigns`` snapshot of :mod:`mailer.console_snapshots`, queued and sending rows
and the campaign's state exact), and who opened,
clicked, bounced, complained or unsubscribed (as CSV, bots left out). One campaign's
figures are :func:`mailer.campaign_stats.campaign_summary`; its state changes are
:class:`mailer.campaigns.CampaignManager`'s."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import psycopg

from mailer.console_snapshots import Snapshot, SnapshotReader
from mailer.sync_db import run

#: Event types whose recipients can be exported.
EXPORTABLE = ("open", "click", "bounce", "complaint", "unsubscribe")


class CampaignQueries:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def list(
        self, snapshots: SnapshotReader, limit: int = 100
    ) -> tuple[list[dict[str, Any]], Snapshot]:
        """The newest ``limit`` campaigns of the snapshot, each with its pending rows and
        state read now; and the snapshot."""
        snapshot = snapshots.read("campaigns")
        saved = (snapshot.figures or [])[:limit]
        names = [c["campaign"] for c in saved]
        live = {
            r["campaign"]: r for r in run(self.conn, "console_campaigns_live", {"names": names})
        }
        return [campaign_row(c, live[c["campaign"]]) for c in saved], snapshot

    def recipients_csv(self, campaign: str, kind: str) -> Iterator[str]:
        """Who had an event of ``kind`` (one of :data:`EXPORTABLE`), as CSV lines."""
        rows = run(self.conn, "console_campaign_recipients", {"campaign": campaign, "type": kind})
        yield csv_line(["email", "name", "queue_id", "first_at", "events"])
        for r in rows:
            yield csv_line(
                [r["email"], r["name"] or "", r["queue_id"], r["first_at"].isoformat(), r["events"]]
            )


def campaign_row(saved: dict[str, Any], live: dict[str, Any]) -> dict[str, Any]:
    """A campaign's line: finished rows as saved, pending rows and state as read now (the
    total is their sum)."""
    finished = {k: int(saved[k]) for k in ("sent", "failed", "suppressed", "cancelled")}
    last = saved.get("last_sent_at")
    return finished | {
        "campaign": saved["campaign"],
        "pending": int(live["pending"]),
        "state": live["state"],
        "total": sum(finished.values()) + int(live["pending"]),
        "last_sent_at": datetime.fromisoformat(last) if last else None,
    }


def csv_line(cells: list[Any]) -> str:
    """One CSV record; cells starting with = + - @ are quoted as text (no formula
    injection when opened in a spreadsheet)."""
    out = io.StringIO()
    safe = [f"'{c}" if isinstance(c, str) and c[:1] in ("=", "+", "-", "@") else c for c in cells]
    csv.writer(out).writerow(safe)
    return out.getvalue()
