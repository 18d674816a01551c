"""What the orchestrator does for its idle workers, so that they cost PostgreSQL nothing.

An idle worker under ``mailer run`` neither beats nor polls (see
:data:`mailer.heartbeat.PARENT_IDLE_SECONDS`): every :data:`ALIVE_EVERY_SECONDS` its
orchestrator refreshes ``workers.heartbeat_at`` of all its running children in one UPDATE
(it reaps them: a running child is alive; the liveness the console and
``forget_stale_workers`` read), and every half ``poll_seconds`` one query finds which of
its accounts have a row they could claim now (a retry, a scheduled row or a requeued row
becomes due without a NOTIFY) and wakes their workers with SIGUSR1. Nothing here recovers
rows: leases, journals and locks stay the workers' and :mod:`mailer.lease`'s.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from mailer.db import Database

#: How often the orchestrator proves its workers alive (the console counts a worker live
#: for 30 s after its last heartbeat).
ALIVE_EVERY_SECONDS = 10.0


@dataclass
class IdleWorkerDuties:
    """The two timed duties; ``run`` does whichever is due."""

    hostname: str
    due_every_seconds: float
    clock: Callable[[], float]
    signal_accounts: Callable[[Iterable[int], int], None]
    next_alive: float = 0.0
    next_due: float = 0.0

    async def run(self, db: Database, running_now: Callable[[], Mapping[int, int]]) -> None:
        """``running_now()``: account id -> pid of every running worker (asked only when
        a duty is due: a tick of the orchestrator's loop costs nothing per worker)."""
        now = self.clock()
        if now < self.next_alive and now < self.next_due:
            return
        running = running_now()
        if not running:
            return
        if now >= self.next_alive:
            self.next_alive = now + ALIVE_EVERY_SECONDS
            await db.execute(
                "orchestrator_workers_alive",
                {"hostname": self.hostname, "pids": list(running.values())},
            )
        if now >= self.next_due:
            self.next_due = now + self.due_every_seconds
            rows = await db.fetch_all("orchestrator_due_accounts", {"account_ids": list(running)})
            self.signal_accounts([r["account_id"] for r in rows], signal.SIGUSR1)
