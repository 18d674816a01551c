"""One database connection, opened when a query needs it and closed after it sat unused.

A worker's queries run one at a time, so it needs no pool, and an idle worker under
``mailer run`` must not wake up at all: ``psycopg_pool``'s pool wakes every ``max_idle``
seconds to look for a connection to close, even when it holds none (1,000 idle workers:
200 process wake-ups a second). Here the only timer is the close of a connection that
is open: with no connection there is nothing scheduled.

Same contract as the pool's ``connection()``: one caller at a time (the others wait
their turn), a connection that comes back broken or inside a transaction is closed
rather than reused, and a failed connect is retried until ``connect_timeout`` seconds
have passed (a PostgreSQL restart is waited out), then raises ``OperationalError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row

#: First and longest wait between two connection attempts.
RETRY_FIRST_SECONDS = 0.1
RETRY_MAX_SECONDS = 2.0


class OnDemandConnection:
    """The part of ``AsyncConnectionPool`` that :class:`mailer.db.Database` uses."""

    def __init__(
        self,
        url: str,
        *,
        idle_seconds: float,
        connect_timeout: float = 30.0,
        prepare_threshold: int | None = 5,
    ) -> None:
        """``prepare_threshold``: psycopg's (None: never prepare, for PgBouncer)."""
        self.url = url
        self.idle_seconds = idle_seconds
        self.prepare_threshold = prepare_threshold
        self.connect_timeout = connect_timeout
        self.conn: psycopg.AsyncConnection[dict[str, Any]] | None = None
        self._turn = asyncio.Lock()
        self._expiry: asyncio.TimerHandle | None = None
        self._closing: asyncio.Task[None] | None = None
        self._closed = False

    async def open(self, wait: bool = False, timeout: float = 0.0) -> None:
        """Nothing to open: the connection opens on first use (signature of the pool's)."""
        self._closed = False

    async def close(self) -> None:
        """Close the connection, if open; the object can be opened again."""
        self._closed = True
        self._cancel_expiry()
        async with self._turn:
            await self._drop()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[dict[str, Any]]]:
        """The connection, for this caller alone until the block ends."""
        if self._closed:
            raise psycopg.OperationalError("the connection was closed")
        async with self._turn:
            self._cancel_expiry()
            conn = await self._connected()
            try:
                yield conn
            finally:
                if conn.closed or conn.info.transaction_status != TransactionStatus.IDLE:
                    await self._drop()  # broken, or left mid-transaction or mid-query
                self._schedule_expiry()

    async def _connected(self) -> psycopg.AsyncConnection[dict[str, Any]]:
        if self.conn is not None and not self.conn.closed:
            return self.conn
        deadline = time.monotonic() + self.connect_timeout
        delay = RETRY_FIRST_SECONDS
        while True:
            try:
                self.conn = await psycopg.AsyncConnection.connect(
                    self.url,
                    autocommit=True,
                    row_factory=dict_row,
                    prepare_threshold=self.prepare_threshold,
                )
                return self.conn
            except psycopg.OperationalError:
                if time.monotonic() + delay > deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_SECONDS)

    def _schedule_expiry(self) -> None:
        """Close the connection ``idle_seconds`` from now unless it is used before (the
        next caller cancels this)."""
        if self.conn is None or self._closed:
            return
        self._cancel_expiry()
        loop = asyncio.get_running_loop()
        self._expiry = loop.call_later(self.idle_seconds, self._expire)

    def _cancel_expiry(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None

    def _expire(self) -> None:
        self._expiry = None
        if not self._turn.locked():
            self._closing = asyncio.get_running_loop().create_task(self._close_unused())

    async def _close_unused(self) -> None:
        async with self._turn:
            if self._expiry is None:  # not used again meanwhile
                await self._drop()
        self._closing = None

    async def _drop(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                await conn.close()
