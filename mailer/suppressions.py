"""Suppressions: the addresses Mailer never sends to, and their CSV form.

Bounces, complaints and unsubscribes add them automatically; admins manage them with
``mailer suppress add|remove|list|import|export``. A permanent suppression (no
``expires_at``) is never replaced by another; a temporary one (a soft bounce) gives way
to a permanent or a longer one (see the ``upsert_suppressions`` query).

CSV: a header row naming the columns (``email`` required; ``reason``, ``source``,
``expires_at`` optional, any order), or no header and the columns in the order
``email,reason,source,expires_at``. Export writes
``email,reason,source,created_at,expires_at`` with ISO 8601 times.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from email_validator import EmailNotValidError
from psycopg.types.json import Jsonb

from mailer.addresses import parse_syntax
from mailer.db import Database

REASONS = ("hard_bounce", "soft_bounce", "complaint", "unsubscribe", "manual")
IMPORT_COLUMNS = ("email", "reason", "source", "expires_at")
EXPORT_COLUMNS = ("email", "reason", "source", "created_at", "expires_at")
MAX_SOURCE = 200
#: Rows per upsert statement when importing.
IMPORT_BATCH = 1000


@dataclass(frozen=True)
class SuppressionEntry:
    """One address to suppress."""

    email: str
    reason: str = "manual"
    source: str | None = None
    expires_at: datetime | None = None


def checked_email(raw: str) -> str:
    """``raw`` stripped, if it is an email address; ValueError saying why not."""
    email = raw.strip()
    try:
        parse_syntax(email)
    except EmailNotValidError as exc:
        raise ValueError(f"{email!r} is not an email address: {exc}") from None
    return email


def checked_reason(raw: str) -> str:
    reason = raw.strip().lower()
    if reason not in REASONS:
        raise ValueError(f"reason {raw!r} is not one of {', '.join(REASONS)}")
    return reason


def parse_csv(
    text: str, *, reason: str = "manual", source: str | None = None
) -> tuple[list[SuppressionEntry], list[str]]:
    """Entries of a CSV document and one message per bad line. Missing reason and
    source cells take ``reason`` and ``source``."""
    entries, errors = [], []
    for item in iter_csv(io.StringIO(text), reason=reason, source=source):
        if isinstance(item, SuppressionEntry):
            entries.append(item)
        else:
            errors.append(item)
    return entries, errors


def iter_csv(
    lines: Iterable[str], *, reason: str = "manual", source: str | None = None
) -> Iterator[SuppressionEntry | str]:
    """Each line of a CSV stream as an entry, or a message saying why it is bad; reads
    one line at a time, so a document of any size streams through."""
    columns = list(IMPORT_COLUMNS)
    number, first = 0, True
    for cells in _records(lines):
        number += 1
        if cells is None:
            yield f"line {number}: not CSV; the rest of the document was skipped"
            return
        if not any(cell.strip() for cell in cells):
            continue
        if first and cells[0].strip().lower() == "email":
            first = False
            columns = [c.strip().lower() for c in cells]
            continue
        first = False
        record = dict(zip(columns, (c.strip() for c in cells), strict=False))
        try:
            yield SuppressionEntry(
                email=checked_email(record.get("email", "")),
                reason=checked_reason(record.get("reason") or reason),
                source=_source(record.get("source")) or source,
                expires_at=_time(record.get("expires_at")),
            )
        except ValueError as exc:
            yield f"line {number}: {exc}"


def _records(lines: Iterable[str]) -> Iterator[list[str] | None]:
    """The CSV records of ``lines``, then None if the rest is not CSV."""
    try:
        yield from csv.reader(lines)
    except csv.Error:
        yield None


def _source(raw: str | None) -> str | None:
    if raw and ("\0" in raw or len(raw) > MAX_SOURCE):
        raise ValueError(f"source must be at most {MAX_SOURCE} characters, without NUL")
    return raw


def to_csv(rows: Iterable[dict[str, Any]]) -> str:
    """Suppression rows as CSV with a header (:data:`EXPORT_COLUMNS`)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for row in rows:
        writer.writerow(
            [
                ""
                if row.get(c) is None
                else row[c].isoformat()
                if isinstance(row[c], datetime)
                else row[c]
                for c in EXPORT_COLUMNS
            ]
        )
    return out.getvalue()


def _time(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"expires_at {raw!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise ValueError(f"expires_at {raw!r} has no time zone")
    return moment


class SuppressionManager:
    """Domain operations on ``suppressions``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, entries: list[SuppressionEntry]) -> list[dict[str, Any]]:
        """Suppress ``entries``; return the suppressions added or changed (an address
        already permanently suppressed is left as it is)."""
        changed: list[dict[str, Any]] = []
        for start in range(0, len(entries), IMPORT_BATCH):
            batch = [
                asdict(e) | {"expires_at": e.expires_at.isoformat() if e.expires_at else None}
                for e in entries[start : start + IMPORT_BATCH]
            ]
            changed += await self.db.fetch_all("upsert_suppressions", {"rows": Jsonb(batch)})
        return changed

    async def remove(self, emails: list[str]) -> list[str]:
        """Lift the suppressions of ``emails`` (any case); return those that existed."""
        rows = await self.db.fetch_all(
            "delete_suppressions", {"emails": [e.strip().lower() for e in emails]}
        )
        return [r["email"] for r in rows]

    async def list(
        self, *, reason: str | None = None, include_expired: bool = False
    ) -> list[dict[str, Any]]:
        """Suppressions in force (or all), by address."""
        return await self.db.fetch_all(
            "list_suppressions", {"reason": reason, "include_expired": include_expired}
        )
