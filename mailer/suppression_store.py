"""Suppressions for the API, on a synchronous connection: pages, search, add, remove, and
CSV import and export that stream (a document of any size, a bounded amount of memory)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from mailer.sql_queries import query
from mailer.suppressions import IMPORT_BATCH, SuppressionEntry, iter_csv, to_csv
from mailer.sync_db import run, run_one

#: Bad lines reported back from one import (the count is always complete).
MAX_REPORTED_ERRORS = 100
#: Rows fetched per round trip while exporting.
EXPORT_CHUNK = 1000


@dataclass(frozen=True)
class ImportReport:
    lines: int
    changed: int
    invalid: int
    errors: tuple[str, ...]


class SuppressionStore:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def page(
        self, *, search: str | None, reason: str | None, cursor: int | None, limit: int
    ) -> list[dict[str, Any]]:
        params = {"search": search, "reason": reason, "cursor": cursor, "limit": limit}
        return run(self.conn, "api_list_suppressions", params)

    def get(self, email: str) -> dict[str, Any] | None:
        return run_one(self.conn, "api_get_suppression", {"email": email})

    def add(self, entries: list[SuppressionEntry]) -> int:
        """Upsert ``entries`` (see ``upsert_suppressions``); the number added or changed."""
        rows = [
            asdict(e) | {"expires_at": e.expires_at.isoformat() if e.expires_at else None}
            for e in entries
        ]
        return len(run(self.conn, "upsert_suppressions", {"rows": Jsonb(rows)})) if rows else 0

    def remove(self, email: str) -> bool:
        return bool(run(self.conn, "delete_suppressions", {"emails": [email.strip().lower()]}))

    def import_csv(self, lines: Iterable[str], *, reason: str, source: str) -> ImportReport:
        """Upsert every good line of a CSV stream, :data:`IMPORT_BATCH` at a time."""
        batch: list[SuppressionEntry] = []
        errors: list[str] = []
        changed = invalid = total = 0
        for item in iter_csv(lines, reason=reason, source=source):
            total += 1
            if isinstance(item, str):
                invalid += 1
                if len(errors) < MAX_REPORTED_ERRORS:
                    errors.append(item)
                continue
            batch.append(item)
            if len(batch) >= IMPORT_BATCH:
                changed += self.add(batch)
                batch = []
        changed += self.add(batch)
        return ImportReport(total, changed, invalid, tuple(errors))

    def export_csv(self) -> Iterator[str]:
        """The CSV export (``mailer suppress export``'s format), a chunk of rows at a time,
        read through a server-side cursor inside one transaction."""
        with self.conn.transaction(), self.conn.cursor(name="suppressions_export") as cursor:
            cursor.execute(query("list_suppressions"), {"reason": None, "include_expired": True})
            yield to_csv([])
            while rows := cursor.fetchmany(EXPORT_CHUNK):
                yield to_csv(rows).split("\n", 1)[1]
