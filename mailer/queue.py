"""The queue manager: claiming, leasing, recording and recovering ``email_queue`` rows.

Each method is one statement, so a batch of 100 rows costs one claim and a handful of
result writes, never a transaction per row.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime

from psycopg.types.json import Jsonb

from mailer.db import Database
from mailer.models import QueuedEmail

log = logging.getLogger("mailer.queue")


@dataclass(frozen=True)
class AttemptResult:
    """The outcome of one row's attempt, as ``record_results`` writes it."""

    id: int
    status: str  # sent | queued | failed | suppressed
    attempted_at: datetime
    to_address: str
    outcome: str | None = None  # send_logs.outcome; None writes no log row
    counted: bool = False
    code: int | None = None
    response: str | None = None
    error: str | None = None
    retry_seconds: float | None = None
    duration_ms: int | None = None
    refund: bool = False  # give back the attempt its in-flight mark used (account errors)
    suppress_reason: str | None = None


@dataclass(frozen=True)
class Mark:
    """Whether the row about to be sent was marked in flight. Unmarked: it was suppressed
    since the claim (``suppression_reason``), or its lease was lost; either way, no send."""

    marked: bool
    suppression_reason: str | None


@dataclass(frozen=True)
class Recovery:
    """Rows taken back from a dead worker; ``in_flight`` of them may have gone out."""

    requeued: int
    in_flight: int


class QueueManager:
    """Domain operations on ``email_queue`` for one worker."""

    def __init__(self, db: Database, worker_id: str) -> None:
        self.db = db
        self.worker_id = worker_id

    async def claim_batch(
        self, *, account_id: int, pool: str, domain: str, limit: int, lease_seconds: float
    ) -> list[QueuedEmail]:
        """Lease up to ``limit`` due rows, in send order (priority, then due time)."""
        rows = await self.db.fetch_all(
            "claim_batch",
            {
                "account_id": account_id,
                "pool": pool,
                "domain": domain,
                "limit": limit,
                "worker_id": self.worker_id,
                "lease_seconds": lease_seconds,
            },
        )
        emails = [QueuedEmail.from_row(r) for r in rows]
        emails.sort(key=lambda e: (-e.priority, e.due_at, e.id))
        return emails

    async def record_results(
        self, account_id: int, results: list[AttemptResult], in_flight_id: int | None = None
    ) -> Mark:
        """Write a batch of outcomes in one statement and, when ``in_flight_id`` is given,
        mark that row in flight (one attempt used) before it is sent; see :class:`Mark`."""
        if not results and in_flight_id is None:
            return Mark(False, None)
        payload = [asdict(r) | {"attempted_at": r.attempted_at.isoformat()} for r in results]
        row = await self.db.fetch_one(
            "record_results",
            {
                "results": Jsonb(payload),
                "account_id": account_id,
                "worker_id": self.worker_id,
                "in_flight_id": in_flight_id,
            },
        )
        if row is None:
            return Mark(False, None)
        return Mark(bool(row["marked"]), row["suppression_reason"])

    async def release(self, ids: list[int]) -> int:
        """Return leased rows that were never tried to the queue, untouched."""
        if not ids:
            return 0
        return await self.db.execute("release_rows", {"ids": ids, "worker_id": self.worker_id})

    async def release_all(self, keep: list[int] | None = None) -> int:
        """Return every row this worker still leases, except the ids in ``keep``."""
        rows = await self.db.fetch_all(
            "release_worker_rows_except", {"worker_id": self.worker_id, "keep": keep or []}
        )
        return len(rows)

    async def renew_leases(self, lease_seconds: float) -> int:
        return await self.db.execute(
            "renew_leases", {"worker_id": self.worker_id, "lease_seconds": lease_seconds}
        )

    async def recover_account_rows(self, account_id: int) -> Recovery:
        """Requeue rows other workers of this account left leased (call holding its lock)."""
        row = await self.db.fetch_one(
            "recover_account_rows", {"account_id": account_id, "worker_id": self.worker_id}
        )
        return Recovery(row["requeued"], row["in_flight"]) if row else Recovery(0, 0)

    async def recover_expired_leases(self) -> Recovery:
        """Requeue rows of any account whose lease ran out (logged when there were any)."""
        row = await self.db.fetch_one("recover_expired_leases")
        recovered = Recovery(row["requeued"], row["in_flight"]) if row else Recovery(0, 0)
        if recovered.requeued:
            log.warning(
                "requeued %d rows whose worker's lease expired (%d in flight)",
                recovered.requeued,
                recovered.in_flight,
            )
        return recovered

    async def next_due_at(self, account_id: int, pool: str) -> datetime | None:
        row = await self.db.fetch_one("next_due_at", {"account_id": account_id, "pool": pool})
        return row["due_at"] if row else None

    async def account_window(self, account_id: int) -> list[datetime]:
        """Start times of the account's counted attempts in the last 24 hours."""
        rows = await self.db.fetch_all("account_window", {"account_id": account_id})
        return [r["created_at"] for r in rows]
