"""The orchestrator's lock session: every account lock of its workers, on one connection.

A worker started by ``mailer run`` does not hold its account's advisory lock itself (that
would cost one server session per account, idle or not): the orchestrator takes the same
lock (``try_account_lock``, so a standalone ``mailer worker`` and an orchestrator still
exclude each other) on this one session before it starts the worker, and releases it only
after it has reaped the worker. If the session is lost, the locks are gone: the
orchestrator kills every worker before taking any lock again (see
:meth:`orchestrator.supervisor.Orchestrator`); a worker whose orchestrator dies gets
SIGKILL from the kernel (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import logging

import psycopg
from psycopg.rows import dict_row

from mailer.sql_queries import query

log = logging.getLogger("mailer.orchestrator")


class AccountLocks:
    """Account advisory locks held on one dedicated session (connected on first use)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn: psycopg.AsyncConnection | None = None
        self.held: set[int] = set()

    async def take(self, account_ids: list[int]) -> set[int]:
        """Those of ``account_ids`` whose lock this session now holds (the others: someone
        else does), in one statement. Raises OperationalError when the session is lost."""
        wanted = [a for a in account_ids if a not in self.held]
        if wanted:
            conn = await self._connection()
            cur = await conn.execute(query("try_account_locks"), {"account_ids": wanted})
            self.held.update(row["account_id"] for row in await cur.fetchall() if row["locked"])
        return {a for a in account_ids if a in self.held}

    async def release(self, account_id: int) -> None:
        """Release ``account_id``'s lock (its worker has been reaped)."""
        if account_id not in self.held or self.conn is None:
            return
        await self.conn.execute(query("release_account_lock"), {"account_id": account_id})
        self.held.discard(account_id)

    async def check(self) -> None:
        """Raise OperationalError if the session holding locks was lost."""
        if self.conn is not None and self.held:
            await self.conn.execute(query("db_now"))

    async def close(self) -> None:
        """Close the session: every lock it held is released."""
        conn, self.conn = self.conn, None
        self.held.clear()
        if conn is not None:
            await conn.close()

    async def _connection(self) -> psycopg.AsyncConnection:
        if self.conn is None or self.conn.closed:
            self.held.clear()
            self.conn = await psycopg.AsyncConnection.connect(
                self.url, autocommit=True, row_factory=dict_row
            )
        return self.conn
