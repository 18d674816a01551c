"""The campaign manager: create a campaign, add its recipients from a CSV stream, read
and list campaigns, and pause, resume or cancel them.

A campaign is the ``email_queue`` rows sharing a ``campaign`` value; its
``campaign_settings`` row (migration 0013) holds its state and the message every
recipient gets. Pausing never touches the rows' statuses: the claim skips the rows of a
paused or cancelled campaign, and the in-flight mark re-checks the state, so a row
claimed before the pause goes back to the queue instead of out. Cancelling also moves
every queued row to ``cancelled`` in one UPDATE (rows in flight finish). Figures are in
:mod:`mailer.campaign_stats`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from mailer.api_keys import ApiKey
from mailer.campaign_csv import CsvProblem, read_recipients
from mailer.errors import MailerError
from mailer.sql_queries import query
from mailer.sync_db import run, run_one

#: States of a campaign; the claim sends only the rows of active ones.
STATES = ("active", "paused", "cancelled")
#: The most rows one listing page returns.
MAX_PAGE = 200
#: How many bad CSV lines a report names (all are counted).
MAX_REPORTED_PROBLEMS = 100


class CampaignNotFound(MailerError):
    """No such campaign (or not one this key may see)."""


class CampaignConflict(MailerError):
    """The campaign's state (or existence) forbids this."""


@dataclass(frozen=True)
class Campaign:
    """A campaign's settings row (``id`` None: only SQL ever queued its rows)."""

    id: int | None
    name: str
    state: str
    state_changed_at: datetime | None
    track_opens: bool | None
    track_clicks: bool | None
    message: dict[str, Any] | None
    created_at: datetime | None


@dataclass(frozen=True)
class CampaignPage:
    items: list[Campaign]
    next_cursor: int | None


@dataclass(frozen=True)
class CsvReport:
    """What a CSV upload did: data lines read, rows queued, lines refused (the first
    :data:`MAX_REPORTED_PROBLEMS` with their reason), addresses skipped as suppressed or
    already in the campaign (or earlier in the file)."""

    lines: int
    queued: int
    invalid: int
    suppressed: int
    duplicates: int
    problems: tuple[CsvProblem, ...]


class CsvRejected(MailerError):
    """A strict upload had bad lines: nothing was queued."""

    def __init__(self, report: CsvReport) -> None:
        super().__init__(f"{report.invalid} of {report.lines} lines are invalid")
        self.report = report


class CampaignManager:
    """Campaigns on one synchronous connection, as ``key`` may see them (a key restricted
    to pools sees only the campaigns it created and the rows it queued; None: all)."""

    def __init__(self, conn: psycopg.Connection[Any], key: ApiKey | None = None) -> None:
        self.conn = conn
        self.key = key

    @property
    def owner(self) -> int | None:
        return self.key.owner_filter if self.key else None

    def create(
        self,
        name: str,
        message: dict[str, Any],
        *,
        track_opens: bool | None = None,
        track_clicks: bool | None = None,
    ) -> Campaign:
        """A new campaign whose recipients get ``message`` (resolved ``email_queue``
        columns); CampaignConflict when the name is taken."""
        row = run_one(
            self.conn,
            "campaign_create",
            {
                "name": name,
                "message": Jsonb(message),
                "track_opens": track_opens,
                "track_clicks": track_clicks,
                "api_key_id": self.key.id if self.key else None,
            },
        )
        if row is None:
            raise CampaignConflict(f"campaign {name!r} exists")
        return Campaign(**row)

    def get(self, name: str) -> Campaign | None:
        row = run_one(self.conn, "campaign_get", {"name": name, "api_key_id": self.owner})
        return Campaign(**row) if row else None

    def list(self, *, cursor: int | None = None, limit: int = 50) -> CampaignPage:
        """Campaigns with a settings row, newest first (keyset pagination)."""
        limit = max(1, min(limit, MAX_PAGE))
        rows = run(
            self.conn,
            "campaign_list",
            {"cursor": cursor, "limit": limit + 1, "api_key_id": self.owner},
        )
        items = [Campaign(**r) for r in rows[:limit]]
        return CampaignPage(items, items[-1].id if len(rows) > limit else None)

    def pause(self, name: str) -> Campaign:
        """Stop sending (its rows stay queued); pausing a paused campaign changes nothing."""
        return self._change(name, "paused")

    def resume(self, name: str) -> Campaign:
        """Make its rows claimable again and wake idle workers."""
        campaign = self._change(name, "active")
        run(self.conn, "wake_idle_workers")
        return campaign

    def cancel(self, name: str) -> tuple[Campaign, int]:
        """Cancel the campaign and every queued row of it (again on a cancelled campaign:
        rows queued since are cancelled too); the number of rows cancelled."""
        campaign = self._change(name, "cancelled")
        cancelled = self.conn.execute(
            query("campaign_cancel_rows"), {"name": name, "api_key_id": self.owner}
        ).rowcount
        return campaign, cancelled

    def _change(self, name: str, state: str) -> Campaign:
        current = self.get(name)
        if current is None:
            raise CampaignNotFound(f"no campaign {name!r}")
        if current.state == state:
            return current
        if current.state == "cancelled":
            raise CampaignConflict(f"campaign {name!r} is cancelled")
        changed = run_one(
            self.conn,
            "campaign_set_state",
            {"name": name, "state": state, "from_states": [current.state]},
        )
        if changed is None:
            raise CampaignConflict(f"campaign {name!r} changed meanwhile; retry")
        found = self.get(name)
        assert found is not None
        return found

    def add_csv(
        self,
        name: str,
        lines: Iterable[str],
        *,
        reject_special_use: bool,
        strict: bool = False,
        timeout_seconds: float = 900.0,
    ) -> CsvReport:
        """Queue the recipients of a CSV stream (see :mod:`mailer.campaign_csv`): COPY into
        a temporary table, then one INSERT ... SELECT; CsvRejected (nothing queued) when
        ``strict`` and any line is bad. Runs in its own transaction (or savepoint)."""
        campaign = self.get(name)
        if campaign is None:
            raise CampaignNotFound(f"no campaign {name!r}")
        if campaign.message is None or campaign.state == "cancelled":
            why = "is cancelled" if campaign.state == "cancelled" else "was not created here"
            raise CampaignConflict(f"campaign {name!r} {why}: no recipients can be added")
        with self.conn.transaction():
            run(self.conn, "campaign_upload_timeout", {"milliseconds": int(timeout_seconds * 1000)})
            run(self.conn, "campaign_staging_create")
            staged, problems, invalid = self._stage(lines, reject_special_use)
            report = CsvReport(staged + invalid, 0, invalid, 0, 0, tuple(problems))
            if strict and invalid:
                raise CsvRejected(report)
            counts = run_one(
                self.conn,
                "campaign_staging_insert",
                {"name": name, "api_key_id": self.key.id if self.key else None},
            )
        assert counts is not None
        return CsvReport(
            report.lines,
            counts["queued"],
            invalid,
            counts["suppressed"],
            counts["duplicates"],
            report.problems,
        )

    def _stage(
        self, lines: Iterable[str], reject_special_use: bool
    ) -> tuple[int, list[CsvProblem], int]:
        """COPY the good lines into the staging table; (staged, first problems, invalid)."""
        staged = invalid = 0
        problems: list[CsvProblem] = []
        with self.conn.cursor() as cur, cur.copy(query("campaign_staging_copy")) as copy:
            for item in read_recipients(lines, reject_special_use=reject_special_use):
                if isinstance(item, CsvProblem):
                    invalid += 1
                    if len(problems) < MAX_REPORTED_PROBLEMS:
                        problems.append(item)
                    continue
                copy.write_row((item.line, item.email, item.name, json.dumps(item.variables)))
                staged += 1
        return staged, problems, invalid
