"""The queue manager: claiming ``email_queue`` rows and recording their outcomes.

A batch of 100 rows costs one claim, small in-flight marks (one per row when sends are
slow, one per several rows marked ahead when they are fast: see :mod:`mailer.lookahead`)
and a few outcome writes of many rows each.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from mailer.db import Database
from mailer.limits import Limits
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
    #: Identifies the attempt, so a replayed journal never logs it twice.
    attempt_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def as_json(self) -> dict[str, Any]:
        """Every field, ``attempted_at`` in ISO 8601: what the journal and
        ``record_results`` take (faster than :func:`dataclasses.asdict`, which deep-copies)."""
        data = {name: getattr(self, name) for name in _RESULT_FIELDS}
        data["attempted_at"] = self.attempted_at.isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AttemptResult:
        """The inverse of :meth:`as_json`."""
        return cls(**(data | {"attempted_at": datetime.fromisoformat(data["attempted_at"])}))


_RESULT_FIELDS = tuple(f.name for f in fields(AttemptResult))


@dataclass(frozen=True)
class Mark:
    """Whether the row about to be sent was marked in flight. Unmarked: it was suppressed
    since the claim (``suppression_reason``), the account changed (paused, or an admin
    changed its limits: ``account_changed``; re-read it and ask the limits again), its
    campaign was paused or cancelled (``campaign_held``; give the row back with
    :meth:`QueueManager.release_held`), or the lease was lost; in every case, no send."""

    marked: bool
    suppression_reason: str | None = None
    account_changed: bool = False
    campaign_held: bool = False


class QueueManager:
    """Claiming and recording ``email_queue`` rows for one worker (leases and recovery
    live in :mod:`mailer.lease`)."""

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
        self,
        account_id: int,
        results: list[AttemptResult],
        in_flight_ids: Sequence[int] = (),
        limits: Limits | None = None,
    ) -> tuple[int, ...]:
        """Write a batch of outcomes (one statement) and then, when ``in_flight_ids`` are
        given, mark those rows in flight under ``limits``: see :meth:`mark`."""
        if results:
            await write_results(self.db, self.worker_id, account_id, results)
        if not in_flight_ids or limits is None:
            return ()
        return await self.mark(account_id, in_flight_ids, limits)

    async def mark(
        self, account_id: int, row_ids: Sequence[int], limits: Limits
    ) -> tuple[int, ...]:
        """Mark ``row_ids`` in flight (one attempt used each) before they are sent, in one
        statement; returns the ids marked: those this worker still leases, whose address
        is not suppressed, and only while the account is still active with exactly
        ``limits``. A row not marked must not be sent (:meth:`why_unmarked` says why)."""
        params = self._mark_params(account_id, limits) | {"in_flight_ids": list(row_ids)}
        return tuple(r["id"] for r in await self.db.fetch_all("mark_in_flight", params))

    async def why_unmarked(self, account_id: int, row_id: int, limits: Limits) -> Mark:
        """Why :meth:`mark` did not mark ``row_id`` (see :class:`Mark`)."""
        params = self._mark_params(account_id, limits) | {"in_flight_id": row_id}
        why = await self.db.fetch_one("unmarked_reason", params)
        assert why is not None
        return Mark(
            False,
            why["suppression_reason"],
            bool(why["account_changed"]),
            bool(why["campaign_held"]),
        )

    def _mark_params(self, account_id: int, limits: Limits) -> dict[str, Any]:
        return {
            "worker_id": self.worker_id,
            "account_id": account_id,
            "daily_limit": limits.daily_limit,
            "hourly_limit": limits.hourly_limit,
            "min_delay_ms": limits.min_delay_ms,
        }

    async def release(self, ids: list[int]) -> int:
        """Return leased rows that were never tried to the queue, untouched; idle workers
        are woken to take those of the pool."""
        if not ids:
            return 0
        rows = await self.db.fetch_all("release_rows", {"ids": ids, "worker_id": self.worker_id})
        await self._wake_idle_workers(rows)
        return len(rows)

    async def release_held(self, row_id: int) -> int:
        """Give back a leased row whose campaign was paused (queued again: resuming the
        campaign makes it claimable) or cancelled (cancelled with it) since the claim."""
        return await self.db.execute(
            "release_campaign_held_row", {"id": row_id, "worker_id": self.worker_id}
        )

    async def unmark(self, row_ids: Sequence[int]) -> int:
        """Take back the in-flight marks of leased rows that will not be sent now (each
        one's attempt is given back; they stay leased); see :mod:`mailer.lookahead`."""
        if not row_ids:
            return 0
        return await self.db.execute(
            "unmark_in_flight", {"ids": list(row_ids), "worker_id": self.worker_id}
        )

    async def release_all(self, keep: list[int] | None = None) -> int:
        """Return every row this worker still leases, except the ids in ``keep``; idle
        workers are woken to take those of the pool."""
        rows = await self.db.fetch_all(
            "release_worker_rows_except", {"worker_id": self.worker_id, "keep": keep or []}
        )
        await self._wake_idle_workers(rows)
        return len(rows)

    async def _wake_idle_workers(self, released: list[dict[str, Any]]) -> None:
        """Rows of the pool given back: other accounts' idle workers may take them now
        (rows pinned to this account wait for it)."""
        if any(row["pooled"] for row in released):
            await self.db.execute("wake_idle_workers")

    async def next_due_at(self, account_id: int, pool: str) -> datetime | None:
        row = await self.db.fetch_one("next_due_at", {"account_id": account_id, "pool": pool})
        return row["due_at"] if row else None


async def write_results(
    db: Database, worker_id: str, account_id: int, results: list[AttemptResult]
) -> int:
    """``record_results`` on behalf of ``worker_id`` (a live worker, or a dead one whose
    journal is replayed); returns how many rows changed state."""
    row = await db.fetch_one(
        "record_results",
        {
            "results": Jsonb([r.as_json() for r in results]),
            "account_id": account_id,
            "worker_id": worker_id,
        },
    )
    return int(row["updated"]) if row else 0
