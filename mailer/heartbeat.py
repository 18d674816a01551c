"""The worker's heartbeat: it proves the worker alive and keeps what it holds.

Every beat: stop if the orchestrator that started the worker is gone, fsync the outcome
journal on its interval, renew the leases of claimed rows, touch the ``workers`` row,
judge the account's reputation on its cadence and re-read the account (an admin's
UPDATE; NOTIFY usually brings it sooner). Every fifth beat: resync the database clock,
settle what dead workers of this account left (feeding the limit gate) and requeue
expired leases of accounts nobody runs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import psycopg

from mailer.account_session import AccountSession
from mailer.config import Settings
from mailer.journal import OutcomeJournal
from mailer.lease import LeaseKeeper
from mailer.reputation import Thresholds
from mailer.reputation import enforce as enforce_reputation

log = logging.getLogger("mailer.worker")

#: Heartbeat of a worker holding no rows (capped at a quarter of the lease): it only
#: proves liveness and re-reads the account as a fallback, NOTIFY does the rest.
IDLE_HEARTBEAT_SECONDS = 10.0


@dataclass
class Heartbeat:
    """One worker's heartbeat; ``holding()`` says whether it leases rows now."""

    settings: Settings
    worker_id: str
    session: AccountSession
    leases: LeaseKeeper
    journal: OutcomeJournal
    holding: Callable[[], bool]
    refresh_account: Callable[[], Awaitable[None]]
    stop: Callable[[str], None]
    stopping: Callable[[], bool]
    parent_pid: int = 0
    next_reputation_check: float = 0.0

    async def run(self) -> None:
        """Beat until the worker stops; a failed beat is logged and the next one tried."""
        ticks = 0
        while not self.stopping():
            await asyncio.sleep(self.interval())
            try:
                await self.beat(ticks)
            except psycopg.OperationalError as exc:
                log.warning("heartbeat failed: %s", exc)
            except Exception:
                log.exception("heartbeat failed")
            ticks += 1

    def interval(self) -> float:
        if self.holding():
            return self.settings.heartbeat_seconds
        return max(
            self.settings.heartbeat_seconds,
            min(IDLE_HEARTBEAT_SECONDS, self.settings.lease_seconds / 4),
        )

    async def beat(self, ticks: int) -> None:
        if self.parent_pid and os.getppid() != self.parent_pid:
            self.stop("parent process exited")
        self.journal.sync()
        db = self.session.db
        if self.holding():
            await self.leases.renew(self.settings.lease_seconds)
        await db.execute("worker_heartbeat", {"worker_id": self.worker_id})
        if time.monotonic() >= self.next_reputation_check:
            self.next_reputation_check = time.monotonic() + self.settings.reputation_check_seconds
            await enforce_reputation(
                db, self.session.account_id, Thresholds.from_settings(self.settings)
            )
        await self.refresh_account()
        if ticks % 5 == 0:
            await self.session.sync_clock()
            await self.recover_own_rows()
            await self.leases.recover_expired_leases()

    async def recover_own_rows(self) -> None:
        """Requeue what a previous worker of this account left leased; its in-flight rows
        count against the limits (unless the gate counted them already)."""
        recovered = await self.leases.recover_account_rows(self.session.account_id)
        self.session.gate.record_recovered(recovered.in_flight_ids)
