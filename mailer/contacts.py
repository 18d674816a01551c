"""Personal data held about one address: export it, or erase it (GDPR articles 15 and 17).

:meth:`ContactStore.export` gathers every queued row to the address with its send attempts,
its events, the address's suppressions, the stored bounce reports that name it and the
outbound webhook events about its rows. :meth:`ContactStore.erase`, in one transaction,
cancels the address's queued rows, strips every row of what is personal (address, name,
subject, bodies, variables, headers, metadata), drops IP addresses, user agents and raw
reports from its events, empties the bounce reports that name it, replaces the address
in logged replies and webhook payloads by ``[erased]``, deletes its suppressions and keeps
only SHA-256 of the address (``erased_contacts``), which the claim and the mark before
every send consult like a suppression: the address is never sent to again. Both record
who did it in ``contact_audit`` (the address's hash, never the address).

Used by ``mailer contacts export|erase`` and ``GET|DELETE /api/v1/contacts/{email}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from mailer.errors import MailerError
from mailer.sync_db import Row, run, run_one

#: Longest address accepted (RFC 5321's path limit, with room for a display form).
MAX_ADDRESS_LENGTH = 320


class ContactError(MailerError):
    """The address given cannot be an address (empty, too long, control characters)."""


def checked_address(raw: str) -> str:
    """``raw`` trimmed, if it can name an address held in the queue (rows with an invalid
    address may hold personal data too, so no syntax is required beyond an ``@``)."""
    address = raw.strip()
    if not address or "@" not in address:
        raise ContactError("give an email address")
    if len(address) > MAX_ADDRESS_LENGTH or any(ord(c) < 32 or ord(c) == 127 for c in address):
        raise ContactError(
            f"an address is at most {MAX_ADDRESS_LENGTH} characters, with no control characters"
        )
    return address


@dataclass(frozen=True)
class ContactData:
    """Everything held about one address, as plain JSON-ready values. Each of ``emails``
    carries its ``attempts`` and ``events``; ``unmatched_events`` are reports naming the
    address that matched none of its rows."""

    email: str
    emails: tuple[Row, ...]
    unmatched_events: tuple[Row, ...]
    suppressions: tuple[Row, ...]
    bounce_reports: tuple[Row, ...]
    webhook_deliveries: tuple[Row, ...]
    erased_at: datetime | None

    @property
    def event_ids(self) -> list[int]:
        linked = [ev["id"] for e in self.emails for ev in e["events"]]
        return linked + [ev["id"] for ev in self.unmatched_events]

    def counts(self) -> dict[str, int]:
        return {
            "emails": len(self.emails),
            "attempts": sum(len(e["attempts"]) for e in self.emails),
            "events": len(self.event_ids),
            "suppressions": len(self.suppressions),
            "bounce_reports": len(self.bounce_reports),
            "webhook_deliveries": len(self.webhook_deliveries),
        }

    def document(self) -> dict[str, Any]:
        """The export: what ``GET /contacts/{email}`` and ``mailer contacts export`` give."""
        return {
            "email": self.email,
            "exported_at": datetime.now(UTC),
            "erased_at": self.erased_at,
            "counts": self.counts(),
            "emails": list(self.emails),
            "unmatched_events": list(self.unmatched_events),
            "suppressions": list(self.suppressions),
            "bounce_reports": list(self.bounce_reports),
            "webhook_deliveries": list(self.webhook_deliveries),
        }


@dataclass(frozen=True)
class Erasure:
    """What one erasure found and changed (per table), and the address's hash."""

    email_hash: str
    counts: dict[str, int]


class ContactStore:
    """Export and erase one address's data on a synchronous connection; ``actor`` (an
    API key as ``api-key:<id>``, or ``cli:<user>``) goes to the audit table."""

    def __init__(self, conn: psycopg.Connection[Any], actor: str) -> None:
        self.conn = conn
        self.actor = actor

    def export(self, raw_address: str) -> ContactData:
        """Everything held about the address, recorded in ``contact_audit``."""
        address = checked_address(raw_address)
        with self.conn.transaction():
            data = self._gather(address)
            self._audit("export", address, data.counts())
        return data

    def erase(self, raw_address: str) -> Erasure:
        """Erase the address (see the module docstring), in one transaction."""
        address = checked_address(raw_address)
        with self.conn.transaction():
            run(self.conn, "contact_mark_erased", {"email": address})
            cancelled = len(run(self.conn, "contact_cancel_queued", {"email": address}))
            data = self._gather(address)
            params = {
                "email": address,
                "ids": [e["id"] for e in data.emails],
                "event_ids": data.event_ids,
                "report_ids": [r["id"] for r in data.bounce_reports],
                "delivery_ids": [d["id"] for d in data.webhook_deliveries],
            }
            for name in ERASE_STEPS:
                run(self.conn, name, params)
            counts = data.counts() | {"cancelled": cancelled}
            email_hash = self._audit("erase", address, counts)
        return Erasure(email_hash, counts)

    def _gather(self, address: str) -> ContactData:
        params: dict[str, Any] = {"email": address}
        emails = run(self.conn, "contact_emails", params)
        params["ids"] = [e["id"] for e in emails]
        attempts = _by_queue_id(run(self.conn, "contact_attempts", params))
        events = run(self.conn, "contact_events", params)
        linked = _by_queue_id(events)
        for row in emails:
            row["attempts"] = attempts.get(row["id"], [])
            row["events"] = linked.pop(row["id"], [])
        erased = run_one(self.conn, "contact_erased_at", params)
        return ContactData(
            email=address,
            emails=tuple(emails),
            unmatched_events=tuple(e for e in events if e["queue_id"] not in set(params["ids"])),
            suppressions=tuple(run(self.conn, "contact_suppressions", params)),
            bounce_reports=tuple(
                _report(r) for r in run(self.conn, "contact_bounce_reports", params)
            ),
            webhook_deliveries=tuple(run(self.conn, "contact_webhook_deliveries", params)),
            erased_at=erased["erased_at"] if erased else None,
        )

    def _audit(self, action: str, address: str, counts: dict[str, int]) -> str:
        """Record the operation; the address's hash."""
        params = {"action": action, "email": address, "actor": self.actor, "counts": Jsonb(counts)}
        row = run_one(self.conn, "contact_audit", params)
        assert row is not None
        return str(row["email_hash"])


#: The statements that strip what is personal, in order (see ``sql/queries.sql``).
ERASE_STEPS = (
    "contact_erase_rows",
    "contact_erase_attempts",
    "contact_erase_events",
    "contact_erase_bounce_reports",
    "contact_erase_webhook_deliveries",
    "contact_erase_suppressions",
)


def _by_queue_id(rows: list[Row]) -> dict[int, list[Row]]:
    grouped: dict[int, list[Row]] = {}
    for row in rows:
        if row["queue_id"] is not None:
            grouped.setdefault(row["queue_id"], []).append(row)
    return grouped


def _report(row: Row) -> Row:
    """A bounce report with its raw bytes as text (undecodable bytes replaced)."""
    raw = bytes(row.pop("raw") or b"")
    return row | {"raw": raw.decode("utf-8", errors="replace")}
