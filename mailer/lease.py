"""Leases and recovery: who may still send a leased row, and what a dead worker left.

A claimed row is leased to one worker id until ``locked_until``; the worker's heartbeat
renews it. What a dead worker leaves behind is settled here, in this order:

1. its outcome journal on this host (see :mod:`mailer.journal`) is replayed: outcomes
   whose 250 (or refusal) it received reach the database, so they are never re-sent, and
   the row it was preparing when it died counts one worker crash (a poison row fails
   once ``poison_threshold`` workers died on it);
2. rows it merely held go back to the queue untouched;
3. a row it had marked in flight waits for the lease to expire, then counts against the
   account's limits (an ``unknown`` send_logs row) and goes back to the queue.

The account's own worker recovers its account's rows (holding the account's lock); any
worker, and the orchestrator, recovers expired leases of accounts nobody runs. Both replay
this host's dead workers' journals of the accounts concerned first, and never settle rows
of a worker of this host that is still alive (one cut off from the database keeps their
outcomes).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from mailer.db import Database
from mailer.journal import DeadJournal, dead_journals, discard, live_worker_ids
from mailer.queue import write_results

log = logging.getLogger("mailer.lease")


@dataclass(frozen=True)
class Recovery:
    """Rows taken back from dead workers; ``in_flight_ids`` of them may have gone out."""

    requeued: int
    in_flight_ids: tuple[int, ...] = ()

    @property
    def in_flight(self) -> int:
        return len(self.in_flight_ids)


@dataclass(frozen=True)
class Replay:
    """What replaying dead workers' journals did."""

    journals: int = 0
    outcomes: int = 0
    poisoned: tuple[int, ...] = ()  # rows failed as poison rows


class LeaseKeeper:
    """Lease renewal and recovery for one worker (or the orchestrator)."""

    def __init__(self, db: Database, worker_id: str, home: Path, poison_threshold: int) -> None:
        self.db = db
        self.worker_id = worker_id
        self.home = home
        self.poison_threshold = poison_threshold

    async def renew(self, lease_seconds: float) -> int:
        return await self.db.execute(
            "renew_leases", {"worker_id": self.worker_id, "lease_seconds": lease_seconds}
        )

    async def replay_journals(self, account_id: int | None = None) -> Replay:
        """Replay this host's dead workers' journals (of one account, or all)."""
        total = Replay()
        with dead_journals(self.home, account_id) as journals:
            for journal in journals:
                done = await self._replay(journal)
                discard(journal)
                total = Replay(
                    total.journals + 1,
                    total.outcomes + done.outcomes,
                    total.poisoned + done.poisoned,
                )
        return total

    async def _replay(self, journal: DeadJournal) -> Replay:
        if journal.pending:
            await write_results(self.db, journal.worker_id, journal.account_id, journal.pending)
            log.warning(
                "replayed %d outcomes of dead worker %s from its journal",
                len(journal.pending),
                journal.worker_id,
            )
        poisoned: tuple[int, ...] = ()
        if journal.preparing is not None:
            poisoned = await self._note_crash(journal.worker_id, journal.preparing)
        return Replay(1, len(journal.pending), poisoned)

    async def _note_crash(self, worker_id: str, row_id: int) -> tuple[int, ...]:
        row = await self.db.fetch_one(
            "note_worker_crash",
            {"id": row_id, "worker_id": worker_id, "threshold": self.poison_threshold},
        )
        if row is None:
            return ()
        log.warning(
            "worker %s died while preparing row %s (%d worker deaths on it)%s",
            worker_id,
            row_id,
            row["worker_crashes"],
            "; failed as a poison row" if row["status"] == "failed" else "",
        )
        return (row_id,) if row["status"] == "failed" else ()

    async def recover_account_rows(self, account_id: int) -> Recovery:
        """Settle what other workers of this account left (call holding its lock)."""
        await self.replay_journals(account_id)
        rows = await self.db.fetch_all(
            "recover_account_rows", {"account_id": account_id, "worker_id": self.worker_id}
        )
        recovered = Recovery(len(rows), tuple(r["id"] for r in rows if r["in_flight"]))
        if recovered.requeued:
            log.warning(
                "requeued %d rows a previous worker of account %s left leased "
                "(%d in flight, counted as sent)",
                recovered.requeued,
                account_id,
                recovered.in_flight,
            )
        return recovered

    async def others_hold_rows(self, account_id: int) -> bool:
        """Whether another worker id still leases rows of the account (after
        :meth:`recover_account_rows`: rows a dead predecessor has in flight)."""
        row = await self.db.fetch_one(
            "account_rows_leased_by_others",
            {"account_id": account_id, "worker_id": self.worker_id},
        )
        return bool(row and row["leased"])

    async def recover_expired_leases(self) -> Recovery:
        """Requeue rows whose lease ran out and whose account nobody runs; first replay
        this host's dead workers' journals of accounts with such rows in flight (an
        outcome known only to a journal must reach the database before its row could be
        sent again)."""
        accounts = [r["account_id"] for r in await self.db.fetch_all("expired_in_flight_accounts")]
        for account_id in accounts:
            await self.replay_journals(account_id)
        rows = await self.db.fetch_all(
            "recover_expired_leases", {"live_workers": live_worker_ids(self.home, accounts)}
        )
        recovered = Recovery(len(rows), tuple(r["id"] for r in rows if r["in_flight"]))
        if recovered.requeued:
            log.warning(
                "requeued %d rows whose worker's lease expired (%d in flight)",
                recovered.requeued,
                recovered.in_flight,
            )
        return recovered
