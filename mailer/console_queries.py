"""What the operator console reads and changes, on a synchronous connection: the overview
(queue, sends per minute, accounts against their limits, stranded rows, recent errors),
message search and detail, cancel and retry, and bounce reports. Account limits reuse
:mod:`mailer.status`'s reading of ``account_usage``. Queued and sending rows are counted
exactly on every view; rows in finished states come from the ``queue_counts`` snapshot
(:mod:`mailer.console_snapshots`), shown with its age."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from mailer.console_snapshots import Snapshot, SnapshotReader
from mailer.status import QUEUE_STATUSES, _account_report, _stranded
from mailer.sync_db import run, run_one

#: Most rows one bulk retry or cancel changes (the filter's newest first).
BULK_LIMIT = 10_000
#: Recent failed attempts on the overview.
RECENT_ERRORS = 20


@dataclass(frozen=True)
class Overview:
    queue: dict[str, int | None]
    sends_per_minute: list[tuple[datetime, int]]
    accounts: list[dict[str, Any]]
    stranded: list[Any]
    recent_errors: list[dict[str, Any]]
    live: dict[str, Any]
    counted: Snapshot

    @property
    def limited(self) -> list[dict[str, Any]]:
        """Accounts at a limit (with ``frees_at``) or within 10 % of one."""
        return [a for a in self.accounts if a["frees_at"] is not None or near_limit(a)]

    @property
    def held(self) -> list[dict[str, Any]]:
        """Paused, suspended or disabled accounts (their ``last_error`` says why)."""
        return [a for a in self.accounts if a["status"] != "active"]


@dataclass(frozen=True)
class MessageFilter:
    """A message search; every field optional."""

    to: str | None = None
    campaign: str | None = None
    status: str | None = None
    message_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def is_empty(self) -> bool:
        return not any(self.params().values())


@dataclass(frozen=True)
class MessageDetail:
    row: dict[str, Any]
    attempts: list[dict[str, Any]]
    events: list[dict[str, Any]]
    bounces: list[dict[str, Any]] = field(default_factory=list)


def near_limit(account: dict[str, Any]) -> bool:
    """Whether an account used 90 % or more of its daily or hourly limit."""
    if account["sent_last_day"] >= 0.9 * account["daily_limit"]:
        return True
    hourly = account["hourly_limit"]
    return hourly is not None and account["sent_last_hour"] >= 0.9 * hourly


def counted_at(snapshot: Snapshot) -> str:
    """When a snapshot was counted, as the console shows it."""
    if snapshot.refreshed_at is None:
        return "being counted"
    return f"{snapshot.refreshed_at:%Y-%m-%d %H:%M:%S} UTC"


def raw_text(raw: bytes | memoryview | None) -> str:
    """A stored report's bytes as text (undecodable bytes replaced)."""
    return bytes(raw or b"").decode("utf-8", "replace")


class ConsoleQueries:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def queue_counts(self, snapshots: SnapshotReader) -> tuple[dict[str, int | None], Snapshot]:
        """Rows by state: queued and sending exact, the others as of the snapshot (None
        before its first count); and the snapshot."""
        snapshot = snapshots.read("queue_counts")
        saved = snapshot.figures or {}
        counts: dict[str, int | None] = {
            s: None if snapshot.missing else int(saved.get(s, 0)) for s in QUEUE_STATUSES
        }
        active = run_one(self.conn, "console_active_counts") or {}
        return counts | {k: int(v) for k, v in active.items()}, snapshot

    def live(self, snapshots: SnapshotReader) -> dict[str, Any]:
        """The counters the overview polls, with when the finished states were counted."""
        counts, snapshot = self.queue_counts(snapshots)
        return counts | self.sends_counters() | {"counted_at": counted_at(snapshot)}

    def sends_counters(self) -> dict[str, int]:
        """Counted sends in the last minute and hour."""
        counters = run_one(self.conn, "console_live_counters") or {}
        return {k: int(v or 0) for k, v in counters.items()}

    def sends_per_minute(self) -> list[tuple[datetime, int]]:
        """(minute, counted sends) over the last 24 h; minutes without a send absent."""
        return [(r["minute"], r["sends"]) for r in run(self.conn, "console_sends_per_minute")]

    def accounts(
        self, *, cursor: int | None = None, limit: int | None = None, account_id: int | None = None
    ) -> list[dict[str, Any]]:
        """Accounts with their usage (``mailer status``'s report), by id: a page above
        ``cursor``, or every one (``limit`` None), or only ``account_id``."""
        params = {"cursor": cursor, "limit": limit, "id": account_id}
        return [_account_report(row) for row in run(self.conn, "console_account_usage", params)]

    def overview(self, snapshots: SnapshotReader) -> Overview:
        counts, snapshot = self.queue_counts(snapshots)
        return Overview(
            queue=counts,
            sends_per_minute=self.sends_per_minute(),
            accounts=self.accounts(),
            stranded=[_stranded(r) for r in run(self.conn, "stranded_rows")],
            recent_errors=run(self.conn, "console_recent_errors", {"limit": RECENT_ERRORS}),
            live=counts | self.sends_counters() | {"counted_at": counted_at(snapshot)},
            counted=snapshot,
        )

    def search(self, search: MessageFilter, cursor: int | None, limit: int) -> list[dict[str, Any]]:
        params = search.params() | {"cursor": cursor, "limit": limit}
        return run(self.conn, "console_search_messages", params)

    def message(self, queue_id: int) -> MessageDetail | None:
        row = run_one(self.conn, "console_message", {"id": queue_id})
        if row is None:
            return None
        events = run(self.conn, "api_email_events", {"id": queue_id})
        bounce_ids = [
            int(e["data"]["bounce_id"])
            for e in events
            if isinstance(e["data"], dict) and str(e["data"].get("bounce_id", "")).isdigit()
        ]
        bounces = run(self.conn, "console_message_bounces", {"ids": bounce_ids})
        for bounce in bounces:
            bounce["raw_text"] = raw_text(bounce.pop("raw"))
        attempts = run(self.conn, "console_message_attempts", {"id": queue_id})
        return MessageDetail(row, attempts, events, bounces)

    def preview_account(self, row: dict[str, Any]) -> dict[str, Any] | None:
        params = {
            "sent_by": row["sent_by_account_id"],
            "account_id": row["account_id"],
            "pool": row["pool"],
        }
        return run_one(self.conn, "console_message_account", params)

    def cancel(self, ids: list[int]) -> list[int]:
        """Cancel the queued rows among ``ids``; the ids changed."""
        params = {"ids": ids, "reason": "cancelled in the console"}
        return [r["id"] for r in run(self.conn, "console_cancel_messages", params)]

    def retry(self, ids: list[int]) -> list[int]:
        """Queue again the failed rows among ``ids``; the ids changed."""
        params = {"ids": ids, "reason": "retried in the console after: "}
        return [r["id"] for r in run(self.conn, "console_retry_messages", params)]

    def bounces(self, limit: int) -> list[dict[str, Any]]:
        return run(self.conn, "list_bounce_messages", {"limit": limit})

    def bounce(self, bounce_id: int) -> dict[str, Any] | None:
        row = run_one(self.conn, "console_bounce_raw", {"id": bounce_id})
        if row is not None:
            row["raw_text"] = raw_text(row.pop("raw"))
        return row
