"""The worker's heartbeat: it proves the worker alive and keeps what it holds.

Every beat: stop if the orchestrator that started the worker is gone, fsync the outcome
journal on its interval, renew the leases of claimed rows, touch the ``workers`` row,
judge the account's reputation on its cadence and re-read the account (an admin's
UPDATE; NOTIFY usually brings it sooner). Every fifth beat: resync the database clock,
settle what dead workers of this account left (feeding the limit gate; every beat in the
worker's first lease period, when its start found rows of theirs still in flight) and
requeue expired leases of accounts nobody runs.

A worker holding rows beats every ``heartbeat_seconds``; an idle one every
:data:`IDLE_HEARTBEAT_SECONDS` on average (30 to 90 s, see :func:`spread`; a quarter of
the lease in its first lease period), woken at once when it claims rows. Under
``mailer run`` an idle worker past its first lease period beats only every
:data:`PARENT_IDLE_SECONDS` on average: its orchestrator proves it alive
(:mod:`orchestrator.idle_workers`) and relays account changes as they happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import psycopg

from mailer.account_session import AccountSession
from mailer.config import Settings
from mailer.journal import OutcomeJournal
from mailer.lease import LeaseKeeper
from mailer.reputation import Thresholds
from mailer.reputation import enforce as enforce_reputation

log = logging.getLogger("mailer.worker")

#: Heartbeat of a worker holding no rows: it only proves liveness and re-reads the
#: account as a fallback, NOTIFY does the rest. A claim wakes it (:meth:`Heartbeat.nudge`)
#: so leases are renewed on the busy interval from the start. On a host of 1,000 idle
#: accounts this interval is most of their CPU: one beat costs a few queries.
IDLE_HEARTBEAT_SECONDS = 60.0
#: Heartbeat (and idle poll) of an idle worker whose orchestrator holds its lock, proves
#: it alive and wakes it when rows become due: a safety net only, so an idle host costs
#: PostgreSQL nearly nothing. Its orchestrator's death kills it at once (PDEATHSIG).
PARENT_IDLE_SECONDS = 600.0


def spread(seconds: float, rand: float) -> float:
    """``seconds`` scaled by 0.5 to 1.5 (``rand`` in [0, 1)), the same on average: idle
    workers started together then do not beat, and open their query connection, in step.
    """
    return seconds * (0.5 + rand)


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
    #: Run by ``mailer run`` (``Settings.lock_held_by_parent``): idle beats are rare.
    under_parent: bool = False
    rand: Callable[[], float] = random.random
    next_reputation_check: float = 0.0
    started: float = field(default_factory=time.monotonic)
    #: False when the worker's start left nothing of a predecessor to settle (see
    #: :meth:`settling`): its first lease period needs no short beats.
    predecessor_rows: bool = True
    _nudged: asyncio.Event = field(default_factory=asyncio.Event)
    _idle_wait: bool = False

    def nudge(self) -> None:
        """The worker just claimed rows: beat now if the idle interval was running."""
        if self._idle_wait:
            self._nudged.set()

    async def run(self) -> None:
        """Beat until the worker stops; a failed beat is logged and the next one tried."""
        ticks = 0
        while not self.stopping():
            self._nudged.clear()
            self._idle_wait = not self.holding()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._nudged.wait(), self.interval())
            self._idle_wait = False
            try:
                await self.beat(ticks)
            except psycopg.OperationalError as exc:
                log.warning("heartbeat failed: %s", exc)
            except Exception:
                log.exception("heartbeat failed")
            ticks += 1

    def settling(self) -> bool:
        """Whether rows a dead predecessor left in flight may still be leased: until a
        lease has run out since this worker started (none can be added after: it holds
        the account's lock), the idle heartbeat stays short and recovers them. Under
        ``mailer run`` a worker whose start found none left (``predecessor_rows`` False)
        has nothing to wait for (its orchestrator recovers other accounts' expired
        leases): in a fleet's long start its beats would each open a connection for
        nothing. A standalone worker keeps them: it is what recovers its pool's."""
        return (
            self.predecessor_rows or not self.under_parent
        ) and time.monotonic() < self.started + self.settings.lease_seconds * 1.5

    def interval(self) -> float:
        if self.holding():
            return self.settings.heartbeat_seconds
        idle = spread(self.idle_seconds(), self.rand())
        if self.settling():
            idle = min(IDLE_HEARTBEAT_SECONDS, self.settings.lease_seconds / 4)
        return max(self.settings.heartbeat_seconds, idle)

    def idle_seconds(self) -> float:
        """The idle beat's mean interval (see :data:`PARENT_IDLE_SECONDS`)."""
        return PARENT_IDLE_SECONDS if self.under_parent else IDLE_HEARTBEAT_SECONDS

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
        if ticks % 5 == 0 or self.settling():
            await self.recover_own_rows()
        if ticks % 5 == 0:
            await self.session.sync_clock()
            await self.leases.recover_expired_leases()

    async def recover_own_rows(self) -> None:
        """Requeue what a previous worker of this account left leased; its in-flight rows
        count against the limits (unless the gate counted them already)."""
        recovered = await self.leases.recover_account_rows(self.session.account_id)
        self.session.gate.record_recovered(recovered.in_flight_ids)
