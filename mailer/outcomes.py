"""Outcomes on their way to the database: journaled first, then written in batches.

Every outcome is appended to the worker's journal (:mod:`mailer.journal`) the moment it is
known, on its row's own path, and buffered. The journal survives a ``kill -9`` (the page
cache outlives the process), so the buffer need not reach PostgreSQL with every send: it
is written (one statement) right before a row's in-flight mark once it holds
``result_batch_size`` outcomes or its oldest is ``result_flush_seconds`` old, and when
the worker is about to wait or stop; most sends run only the small mark statement
(``mark_in_flight``, of one row or of several marked ahead). When a write fails the buffer
is kept, retried through an outage of up to ``db_outage_seconds``, and, past that, left
in the journal for the next worker of the account (or the host's orchestrator) to replay.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import psycopg

from mailer.journal import OutcomeJournal
from mailer.limits import Limits
from mailer.queue import AttemptResult, Mark, QueueManager

log = logging.getLogger("mailer.outcomes")

T = TypeVar("T")

#: Longest pause between two tries to write outcomes while the database is away.
WRITE_RETRY_MAX_SECONDS = 2.0


class OutcomeRecorder:
    """The outcomes of one worker's attempts (see the module docstring)."""

    def __init__(
        self,
        queue: QueueManager,
        journal: OutcomeJournal,
        account_id: int,
        outage_seconds: float,
        *,
        batch_size: int = 1,
        flush_seconds: float = 0.0,
    ) -> None:
        self.queue = queue
        self.journal = journal
        self.account_id = account_id
        self.outage_seconds = outage_seconds
        self.batch_size = batch_size
        self.flush_seconds = flush_seconds
        self.pending: list[AttemptResult] = []
        self._oldest = 0.0  # monotonic time the oldest pending outcome was recorded

    def record(self, result: AttemptResult) -> None:
        """Journal ``result`` now; it reaches the database with a later write."""
        self.journal.outcome(result)
        if not self.pending:
            self._oldest = time.monotonic()
        self.pending.append(result)

    def due(self) -> bool:
        """The buffer is full or old enough to go with the next mark."""
        return bool(self.pending) and (
            len(self.pending) >= self.batch_size
            or time.monotonic() - self._oldest >= self.flush_seconds
        )

    async def mark(self, in_flight_id: int, limits: Limits) -> Mark:
        """Mark ``in_flight_id`` in flight under ``limits`` (see
        :class:`~mailer.queue.Mark`), writing the buffered outcomes first when they are
        :meth:`due`."""
        if await self.mark_many([in_flight_id], limits):
            return Mark(True)
        return await self._retrying(
            lambda: self.queue.why_unmarked(self.account_id, in_flight_id, limits)
        )

    async def mark_many(self, row_ids: Sequence[int], limits: Limits) -> tuple[int, ...]:
        """Mark ``row_ids`` in flight in one statement (the buffered outcomes first when
        :meth:`due`); returns those marked."""
        return await self._write(self.due(), row_ids, limits)

    async def write(self) -> None:
        """Write every buffered outcome now."""
        if self.pending:
            await self._write(True)

    async def _write(
        self, with_outcomes: bool, row_ids: Sequence[int] = (), limits: Limits | None = None
    ) -> tuple[int, ...]:
        """The buffer (``with_outcomes``), then the marks (of ``row_ids``). Outcomes that
        could not be written stay pending (and journaled)."""
        batch, self.pending = (self.pending, []) if with_outcomes else ([], self.pending)
        seq = self.journal.seq
        try:
            marked = await self._retrying(
                lambda: self.queue.record_results(self.account_id, batch, row_ids, limits)
            )
        except BaseException:
            self.pending = batch + self.pending
            raise
        if batch:
            self.journal.written(seq)
        return marked

    async def _retrying(self, write: Callable[[], Awaitable[T]]) -> T:
        """``write()`` (writing outcomes twice is harmless; a mark that did not commit
        marked nothing), retried through a database outage (or a failover's read-only
        moment) of up to ``outage_seconds``."""
        deadline = time.monotonic() + self.outage_seconds
        delay = 0.25
        while True:
            try:
                return await write()
            except (psycopg.OperationalError, psycopg.errors.ReadOnlySqlTransaction) as exc:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("writing to the database failed (%s); retrying in %ss", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, WRITE_RETRY_MAX_SECONDS)
