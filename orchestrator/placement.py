"""Accounts spread across orchestrators: this host's side of the placement.

Each pass of the orchestrator's loop, :meth:`HostPlacement.restrict` beats this host's
heartbeat in ``worker_hosts``, reads the live hosts and ``account_placements``, applies
:func:`orchestrator.placement_policy.decide_placement`, claims what it should run (a
guarded upsert: only unplaced accounts or accounts of dead hosts) and hands back, once
their workers have exited, the accounts over its share. It returns the account statuses
with every active account this host is not to run marked :data:`PLACED_ELSEWHERE`, so the
supervisor stops (gracefully: SIGTERM, the worker finishes its message in flight) or
never starts their workers.

The heartbeat also beats from a task of its own (every ``host_dead_seconds / 5``), so a
pass that takes long (starting hundreds of workers) never makes the host look dead. A
host's first pass registers it, waits :data:`ANNOUNCE_SECONDS` and only then claims:
orchestrators started together see each other before they claim, instead of one taking
everything and handing half back a pass later (one started later gets its share
handed back).

A host that stops cleanly leaves (:meth:`HostPlacement.leave`): its placements go at once.
A host killed outright keeps its rows until its heartbeat is ``host_dead_seconds`` old;
then the survivors claim its accounts on their next pass. The account's advisory lock
still decides who sends, so a slow old worker and a new one never both send.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass

import psycopg

from mailer.config import Settings
from mailer.db import Database
from orchestrator.placement_policy import HostCap, PlacementDecision, decide_placement

log = logging.getLogger("mailer.orchestrator")

#: How often a host forgets hosts dead for an hour (see ``forget_dead_hosts``).
FORGET_DEAD_HOSTS_EVERY_SECONDS = 600.0

#: A stopping host gives up handing its accounts back after this long (database away).
LEAVE_TIMEOUT_SECONDS = 5.0

#: A starting host registers, waits this long for hosts started with it, then claims.
ANNOUNCE_SECONDS = 0.5

#: The status :meth:`HostPlacement.restrict` gives active accounts another host runs.
PLACED_ELSEWHERE = "placed on another host"


@dataclass(frozen=True)
class HostIdentity:
    """Who this orchestrator is among the hosts sharing the database."""

    host_id: str
    hostname: str
    pid: int
    max_accounts: int | None
    dead_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> HostIdentity:
        hostname = socket.gethostname()
        cap = settings.max_accounts_per_host
        return cls(
            host_id=settings.host_id or hostname,
            hostname=hostname,
            pid=os.getpid(),
            max_accounts=cap if cap > 0 else None,
            dead_seconds=settings.host_dead_seconds,
        )


class HostPlacement:
    """This host's placement manager (one per orchestrator)."""

    def __init__(self, identity: HostIdentity) -> None:
        self.me = identity
        self.last: PlacementDecision | None = None
        self._next_forget = 0.0
        self._beating: tuple[Database, asyncio.Task[None]] | None = None

    async def restrict(
        self, db: Database, statuses: Mapping[int, str], running: Collection[int]
    ) -> dict[int, str]:
        """``statuses`` (account id -> status) with the active accounts this host is not
        to run as :data:`PLACED_ELSEWHERE`; ``running``: accounts whose worker still runs."""
        active = {a for a, status in statuses.items() if status == "active"}
        if self.last is None:
            await self._step(db, active, running)  # registers this host
            await asyncio.sleep(ANNOUNCE_SECONDS)
        decision = await self._step(db, active, running)
        self._keep_beating(db)
        mine = decision.keep | await self._claim(db, decision.claim)
        return {
            a: PLACED_ELSEWHERE if status == "active" and a not in mine else status
            for a, status in statuses.items()
        }

    async def _step(
        self, db: Database, active: set[int], running: Collection[int]
    ) -> PlacementDecision:
        params = {"host_id": self.me.host_id, "dead_seconds": self.me.dead_seconds}
        await self._beat(db)
        if time.monotonic() >= self._next_forget:
            self._next_forget = time.monotonic() + FORGET_DEAD_HOSTS_EVERY_SECONDS
            await db.execute("forget_dead_hosts")
        hosts = [
            HostCap(r["host_id"], r["max_accounts"])
            for r in await db.fetch_all("live_hosts", params)
        ]
        placements = {
            r["account_id"]: r["host_id"] for r in await db.fetch_all("account_placements")
        }
        decision = decide_placement(
            self.me.host_id, active=active, placements=placements, live_hosts=hosts
        )
        if self.last is None or decision.share != self.last.share:
            log.info(
                "host %s: %d live hosts, %d active accounts, this host's share %d",
                self.me.host_id, len(hosts), len(active), decision.share,
            )  # fmt: skip
        self.last = decision
        done = sorted(decision.release - set(running))
        if done:
            await db.execute("release_placements", {**params, "ids": done})
            log.info("host %s handed back accounts %s", self.me.host_id, done)
        return decision

    async def _beat(self, db: Database) -> None:
        await db.execute(
            "host_heartbeat",
            {"host_id": self.me.host_id, "hostname": self.me.hostname, "pid": self.me.pid,
             "max_accounts": self.me.max_accounts},
        )  # fmt: skip

    def _keep_beating(self, db: Database) -> None:
        """Beat from a task of its own on ``db`` (restarted when the supervisor reconnects)."""
        if self._beating is not None:
            beating_db, task = self._beating
            if beating_db is db and not task.done():
                return
            task.cancel()
        self._beating = (db, asyncio.create_task(self._beat_forever(db)))

    async def _beat_forever(self, db: Database) -> None:
        try:
            while True:
                await asyncio.sleep(self.me.dead_seconds / 5)
                await self._beat(db)
        except (psycopg.Error, OSError) as exc:  # the supervisor reconnects and restarts it
            log.debug("host heartbeat stopped: %s", exc)

    async def _claim(self, db: Database, ids: tuple[int, ...]) -> frozenset[int]:
        if not ids:
            return frozenset()
        rows = await db.fetch_all(
            "claim_placements",
            {"host_id": self.me.host_id, "dead_seconds": self.me.dead_seconds, "ids": list(ids)},
        )
        won = frozenset(r["account_id"] for r in rows)
        if won:
            log.info("host %s took accounts %s", self.me.host_id, sorted(won))
        return won

    async def leave(self, url: str) -> None:
        """Hand back every account and unregister (a clean stop, workers already gone).
        Best effort: a host that cannot reach the database is taken over when it is
        seen dead."""
        if self._beating is not None:
            task = self._beating[1]
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._beating = None
        try:
            async with asyncio.timeout(LEAVE_TIMEOUT_SECONDS), Database(url) as db:
                await db.execute("leave_hosts", {"host_id": self.me.host_id, "pid": self.me.pid})
        except (psycopg.Error, OSError, TimeoutError) as exc:
            log.warning("host %s could not hand back its accounts: %s", self.me.host_id, exc)
