"""Outcomes on their way to the database: journaled first, then written in batches.

Every outcome is appended to the worker's journal (:mod:`mailer.journal`) the moment it is
known, on its row's own path, and buffered. The journal survives a ``kill -9`` (the page
cache outlives the process), so the buffer need not reach PostgreSQL with every send: it
is written (one statement) right before a row's in-flight mark once it holds
``result_batch_size`` outcomes or its oldest is ``result_flush_seconds`` old, and when
the worker is about to wait or stop; most sends run only the small mark statement
(``mark_in_flight``). When a write fails the buffer
is kept, retried through an outage of up to ``db_outage_seconds``, and, past that, left
in the journal for the next worker of the account (or the host's orchestrator) to replay.
"""

from __future__ import annotations

import asyncio
import logging
import time

import psycopg

from mailer.journal import OutcomeJournal
from mailer.limits import Limits
from mailer.queue import AttemptResult, Mark, QueueManager

log = logging.getLogger("mailer.outcomes")

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
        return await self._write(self.due(), in_flight_id, limits)

    async def write(self) -> None:
        """Write every buffered outcome now."""
        if self.pending:
            await self._write(True)

    async def _write(
        self, with_outcomes: bool, in_flight_id: int | None = None, limits: Limits | None = None
    ) -> Mark:
        """The buffer (``with_outcomes``), then the mark (with ``in_flight_id``). Outcomes
        that could not be written stay pending (and journaled)."""
        batch, self.pending = (self.pending, []) if with_outcomes else ([], self.pending)
        seq = self.journal.seq
        try:
            mark = await self._write_with_retry(batch, in_flight_id, limits)
        except BaseException:
            self.pending = batch + self.pending
            raise
        if batch:
            self.journal.written(seq)
        return mark

    async def _write_with_retry(
        self, batch: list[AttemptResult], in_flight_id: int | None, limits: Limits | None
    ) -> Mark:
        """``record_results`` (outcomes, then the mark; writing outcomes twice is harmless),
        retried through a database outage (or a failover's read-only
        moment) of up to ``outage_seconds``."""
        deadline = time.monotonic() + self.outage_seconds
        delay = 0.25
        while True:
            try:
                return await self.queue.record_results(self.account_id, batch, in_flight_id, limits)
            except (psycopg.OperationalError, psycopg.errors.ReadOnlySqlTransaction) as exc:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning(
                    "writing %d results failed (%s); retrying in %ss", len(batch), exc, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, WRITE_RETRY_MAX_SECONDS)
