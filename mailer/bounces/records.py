"""Applying a bounce or complaint report to the database, once; reading them back.

:meth:`BounceManager.apply` runs in one transaction: it matches the report to the queue
rows sent with its original Message-ID, or, when none is ours, to the rows its genuine
VERP return paths name (:mod:`mailer.verp`; none either: not ours, nothing is written),
decides per
recipient, and claims the report's key in ``bounce_messages`` (a key seen before: applied
already, nothing is written again). Then it records one ``bounce`` or ``complaint`` event
per recipient (``data``: kind, status, action, diagnostic, recipient, message_id and
``bounce_id``, the ``bounce_messages`` row keeping the raw report) and the suppressions:

- ``hard_bounce`` (5.x.x, except 5.7.x policy refusals) and ``complaint``: permanent;
- ``soft_bounce`` (4.x.x, ``Action: delayed``): an event only, until the address has
  ``bounce_soft_threshold`` of them within ``bounce_soft_window_hours``; then a
  ``soft_bounce`` suppression expiring after ``soft_bounce_suppression_hours``;
- ``policy_block`` (5.7.x): an event only, never a suppression.

After a hard bounce or a complaint the reputation guard judges the sending accounts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Self

import psycopg
from psycopg.types.json import Jsonb

from mailer.bounces.parse import COMPLAINT, RecipientStatus, Report, bounce_kind
from mailer.config import Settings
from mailer.credentials import secret_key
from mailer.db import Database, Row
from mailer.reputation import Thresholds, enforce
from mailer.sql_queries import query
from mailer.verp import VerpCodec

PERMANENT = ("hard_bounce", "complaint")


@dataclass(frozen=True)
class Decision:
    """What was done about one recipient of a report."""

    address: str  # the address suppressed or judged (the row's, when matched)
    recipient: str  # the address as the report names it
    kind: str  # hard_bounce | soft_bounce | policy_block | complaint
    action: str
    status: str | None
    diagnostic: str | None
    queue_id: int | None
    suppression: str | None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Applied:
    """The outcome of applying one report."""

    outcome: str  # applied | duplicate | not_ours
    bounce_id: int | None = None
    decisions: tuple[Decision, ...] = ()
    paused_accounts: tuple[int, ...] = ()


@dataclass(frozen=True)
class BounceLine:
    """One recipient decision of a stored report (``mailer bounces list``)."""

    id: int
    received_at: datetime
    account_id: int | None
    account_email: str | None
    kind: str
    address: str | None
    status: str | None
    decision: str | None
    queue_id: int | None

    @classmethod
    def from_row(cls, row: Row) -> Self:
        return cls(**{k: row[k] for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class BounceRecord:
    """A stored report with what was decided (``mailer bounces show ID``)."""

    id: int
    report_key: str
    account_id: int | None
    account_email: str | None
    mailbox_ref: str | None
    kind: str
    subject: str | None
    decisions: tuple[dict[str, Any], ...]
    raw: bytes
    received_at: datetime

    @classmethod
    def from_row(cls, row: Row) -> Self:
        values = {k: row[k] for k in cls.__dataclass_fields__}
        values["decisions"] = tuple(row["decisions"])
        values["raw"] = bytes(row["raw"])
        return cls(**values)


class BounceManager:
    """Domain operations on ``bounce_messages`` and what a report changes."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self._verp: VerpCodec | None = None

    async def apply(
        self, report: Report, raw: bytes, *, account_id: int | None, mailbox_ref: str | None
    ) -> Applied:
        """Apply ``report`` once (see the module docstring)."""
        async with self.db.transaction() as conn:
            rows = await self._rows(conn, report)
            if not rows:
                return Applied("not_ours")
            decisions = [await self._decide(conn, r, rows) for r in _recipients(report, rows)]
            claimed = await _run(
                conn,
                "claim_bounce_message",
                {
                    "report_key": report.report_key,
                    "account_id": account_id,
                    "mailbox_ref": mailbox_ref,
                    "kind": report.kind,
                    "subject": report.subject,
                    "decisions": Jsonb([d.as_json() for d in decisions]),
                    "raw": raw,
                },
            )
            if not claimed:
                return Applied("duplicate")
            bounce_id = int(claimed[0]["id"])
            await self._record(conn, report, rows, decisions, bounce_id)
        paused = await self._judge(rows, decisions)
        return Applied("applied", bounce_id, tuple(decisions), paused)

    async def _rows(self, conn: psycopg.AsyncConnection[Row], report: Report) -> list[Row]:
        """The queue rows ``report`` is about: by original Message-ID, else by VERP."""
        ids = list(report.original_message_ids)
        rows = await _run(conn, "queue_rows_by_message_id", {"message_ids": ids})
        if rows or not report.return_paths:
            return rows
        if self._verp is None:
            self._verp = VerpCodec(secret_key(self.settings))
        queue_ids = self._verp.queue_ids(report.return_paths)
        return await _run(conn, "queue_rows_by_id", {"ids": queue_ids}) if queue_ids else []

    async def _decide(
        self, conn: psycopg.AsyncConnection[Row], recipient: RecipientStatus, rows: list[Row]
    ) -> Decision:
        row = match_row(recipient.address, rows)
        address = row["to_address"].strip() if row else recipient.address
        kind = bounce_kind(recipient)
        suppression = kind if kind in PERMANENT else None
        if kind == "soft_bounce" and await self._soft_bounces(conn, address) + 1 >= max(
            1, self.settings.bounce_soft_threshold
        ):
            suppression = "soft_bounce"
        return Decision(
            address,
            recipient.address,
            kind,
            recipient.action,
            recipient.status,
            recipient.diagnostic,
            row["id"] if row else None,
            suppression,
        )

    async def _soft_bounces(self, conn: psycopg.AsyncConnection[Row], address: str) -> int:
        window = self.settings.bounce_soft_window_hours * 3600
        found = await _run(
            conn, "soft_bounces_in_window", {"email": address, "window_seconds": window}
        )
        return int(found[0]["n"])

    async def _record(
        self,
        conn: psycopg.AsyncConnection[Row],
        report: Report,
        rows: list[Row],
        decisions: list[Decision],
        bounce_id: int,
    ) -> None:
        message_id = rows[0]["message_id"]
        events = [_event(report, d, message_id, bounce_id) for d in decisions]
        if events:
            await _run(
                conn,
                "insert_events",
                {"events": Jsonb(events), "burst_seconds": self.settings.scanner_burst_seconds},
            )
        suppress = [self._suppression(d, bounce_id) for d in decisions if d.suppression]
        if suppress:
            await _run(conn, "upsert_suppressions", {"rows": Jsonb(suppress)})

    def _suppression(self, decision: Decision, bounce_id: int) -> dict[str, Any]:
        expires = None
        if decision.suppression == "soft_bounce":
            hours = self.settings.soft_bounce_suppression_hours
            expires = (datetime.now(UTC) + timedelta(hours=hours)).isoformat()
        return {
            "email": decision.address,
            "reason": decision.suppression,
            "source": f"bounce mail #{bounce_id}",
            "expires_at": expires,
        }

    async def _judge(self, rows: list[Row], decisions: list[Decision]) -> tuple[int, ...]:
        if not any(d.kind in PERMANENT for d in decisions):
            return ()
        thresholds = Thresholds.from_settings(self.settings)
        accounts = sorted({r["sent_by_account_id"] for r in rows if r["sent_by_account_id"]})
        return tuple([a for a in accounts if await enforce(self.db, a, thresholds)])

    async def list(self, limit: int = 50) -> list[BounceLine]:
        """The ``limit`` most recent reports, one line per recipient decision."""
        rows = await self.db.fetch_all("list_bounce_messages", {"limit": limit})
        return [BounceLine.from_row(r) for r in rows]

    async def get(self, bounce_id: int) -> BounceRecord | None:
        row = await self.db.fetch_one("get_bounce_message", {"bounce_id": bounce_id})
        return None if row is None else BounceRecord.from_row(row)


def match_row(address: str, rows: list[Row]) -> Row | None:
    """The row sent to ``address`` among ``rows`` (those with the original Message-ID);
    a single row matches whatever address the report names (forwarding, aliases)."""
    for row in rows:
        if row["to_address"].strip().lower() == address.strip().lower():
            return row
    return rows[0] if len(rows) == 1 else None


def _recipients(report: Report, rows: list[Row]) -> tuple[RecipientStatus, ...]:
    """The report's recipients; a complaint with the address redacted names the rows'."""
    if report.recipients or report.kind != COMPLAINT:
        return report.recipients
    return tuple(
        RecipientStatus(r["to_address"].strip(), "complaint", None, None, True) for r in rows
    )


def _event(report: Report, decision: Decision, message_id: str, bounce_id: int) -> dict[str, Any]:
    data = {
        "kind": decision.kind,
        "status": decision.status,
        "action": decision.action,
        "diagnostic": decision.diagnostic,
        "recipient": decision.address,
        "reported_recipient": decision.recipient,
        "message_id": message_id,
        "report": report.kind,
        "feedback_type": report.feedback_type,
        "bounce_id": bounce_id,
        "source": "bounce_mail",
    }
    return {
        "queue_id": decision.queue_id,
        "type": "complaint" if decision.kind == "complaint" else "bounce",
        "data": {k: v for k, v in data.items() if v is not None},
        "suspected_bot": False,
        "created_at": None,
    }


async def _run(conn: psycopg.AsyncConnection[Row], name: str, params: dict[str, Any]) -> list[Row]:
    cur = await conn.execute(query(name), params)
    return await cur.fetchall() if cur.description else []
