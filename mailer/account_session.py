"""The account as its worker sees it: the ``sender_accounts`` row as last read, the limit
gate applied to it, backoff and suspension, and the database's clock.

The worker re-reads the account when a NOTIFY says it changed (and with its heartbeat);
every limit it applies goes through :class:`~mailer.gate.LimitGate`, started from what
the database counts (see the ``account_window`` query).
"""

from __future__ import annotations

import logging
import time

from mailer.accounts import AccountManager
from mailer.config import Settings
from mailer.db import Database
from mailer.errors import AccountError
from mailer.gate import LimitGate, WindowEntry
from mailer.models import SenderAccount

log = logging.getLogger("mailer.worker")

#: Rows a worker holds while waiting for a slot; beyond this it gives them back.
HOLD_SECONDS = 10.0
#: A clock reading refused for its slow round trip raises the bar by this factor.
CLOCK_TRIP_AGING = 1.5


class AccountSession:
    """One account, for the worker that holds its lock."""

    def __init__(self, db: Database, account_id: int, settings: Settings) -> None:
        self.db = db
        self.account_id = account_id
        self.settings = settings
        self.accounts = AccountManager(db)
        self.clock_offset = 0.0
        self._clock_trip: float | None = None  # round trip of the reading in use
        self.account: SenderAccount
        self.gate: LimitGate

    async def open(self, worker_id: str) -> str | None:
        """Read the account and start its gate; the reason not to run, if any."""
        account = await self.accounts.find(self.account_id)
        if account is None or account.status != "active":
            return "does not exist" if account is None else f"is {account.status}"
        self.account = account
        await self.sync_clock(samples=3)
        self.gate = LimitGate(account.limits, db_now=self.now, mono=time.monotonic)
        return None

    async def load_gate(self, worker_id: str) -> None:
        """Count every attempt the database counts, including rows a previous worker left
        in flight that nobody has recovered yet."""
        rows = await self.db.fetch_all(
            "account_window", {"account_id": self.account_id, "worker_id": worker_id}
        )
        self.gate.load(WindowEntry(r["at"].timestamp(), r["in_flight_id"]) for r in rows)

    async def refresh(self) -> str | None:
        """Re-read the account (an admin's UPDATE) and apply its limits; the reason to
        stop, if it is no longer active."""
        account = await self.accounts.find(self.account_id)
        if account is None:
            return "account deleted"
        if account != self.account:  # the same record keeps its identity (lookahead)
            self.account = account
        if self.gate.apply(account.limits):
            log.info("account %s limits now %s", account.id, account.limits)
        return None if account.status == "active" else f"account is {account.status}"

    async def sync_clock(self, samples: int = 1) -> None:
        """Measure the database clock against this host's: its ``now()`` is taken to be
        the midpoint of the round trip that read it, and of ``samples`` round trips the
        shortest counts (the error is at most half of it); a later reading replaces it
        only when its trip is no longer than that of the reading in use (whose bar rises
        by :data:`CLOCK_TRIP_AGING` with each reading refused). Two workers of one account
        (a restart, a take-over by another host) stamp sends and space them by this."""
        best: tuple[float, float] | None = None
        for _ in range(samples):
            before = time.time()
            row = await self.db.fetch_one("db_now")
            after = time.time()
            assert row is not None
            if best is None or after - before < best[0]:
                best = (after - before, row["now"].timestamp() - (before + after) / 2)
        assert best is not None
        trip, offset = best
        if self._clock_trip is not None and trip > self._clock_trip:
            # A slower trip is a worse reading: keep the offset (a jump would move the
            # stamps of consecutive sends), but accept a typical trip again before long.
            self._clock_trip *= CLOCK_TRIP_AGING
            return
        self._clock_trip, self.clock_offset = trip, offset

    def now(self) -> float:
        """Seconds since the epoch on the database's clock."""
        return time.time() + self.clock_offset

    def db_time_of(self, mono_at: float | None) -> float:
        """The database-clock time of a ``time.monotonic()`` reading (None: now)."""
        return self.gate.db_time_of(mono_at)

    def seconds_until_sendable(self) -> float:
        """Until the account's backoff ends and its limits allow a send."""
        now = self.now()
        backoff = self.account.backoff_until
        if backoff is not None and backoff.timestamp() > now:
            return backoff.timestamp() - now
        return self.gate.wait()

    def holds_too_long(self, wait: float) -> bool:
        """Whether leased rows should go back rather than wait ``wait`` seconds."""
        return wait > max(HOLD_SECONDS, self.gate.limits.min_delay_ms / 1000)

    def claim_size(self) -> int:
        """Rows worth leasing now: what the limits allow within HOLD_SECONDS."""
        limits = self.gate.limits
        size = min(self.settings.batch_size, self.gate.remaining())
        if limits.min_delay_ms > 0:
            size = min(size, int(HOLD_SECONDS * 1000 / limits.min_delay_ms) + 1)
        return max(size, 1)

    async def failed(self, exc: AccountError) -> bool:
        """Suspend (auth, config: True, the worker stops) or back off the account."""
        if exc.kind in ("auth", "config"):
            reason = f"suspended: {exc}"
            log.error("account %s %s", self.account_id, reason)
            await self.accounts.suspend(self.account_id, reason)
            return True
        until = await self.accounts.back_off(
            self.account_id,
            f"backing off: {exc}",
            base_seconds=self.settings.account_backoff_base_seconds,
            max_seconds=self.settings.account_backoff_max_seconds,
            until=exc.until,
        )
        log.warning("account %s backing off until %s: %s", self.account_id, until.isoformat(), exc)
        if exc.scope == "project":
            others = await self.accounts.back_off_project(
                self.account_id, f"backing off: project quota of account {self.account_id}", until
            )
            log.warning("accounts %s of the same Gmail project back off too", others)
        self.account = await self.accounts.get(self.account_id)
        return False

    async def succeeded(self) -> None:
        """A send went through: any backoff is over."""
        if self.account.backoff_until is not None:
            await self.accounts.clear_backoff(self.account_id)
            self.account = await self.accounts.get(self.account_id)
