"""Outcomes on their way to the database: journaled first, then written in batches.

Every outcome is appended to the worker's journal (:mod:`mailer.journal`) the moment it is
known, on its row's own path, and buffered. The buffer reaches PostgreSQL in one statement
together with the next row's in-flight mark (or when the worker is about to wait), so a
send costs one statement; when that write fails the buffer is kept, retried through an
outage of up to ``db_outage_seconds``, and, past that, left in the journal for the next
worker of the account (or the host's orchestrator) to replay.
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
        self, queue: QueueManager, journal: OutcomeJournal, account_id: int, outage_seconds: float
    ) -> None:
        self.queue = queue
        self.journal = journal
        self.account_id = account_id
        self.outage_seconds = outage_seconds
        self.pending: list[AttemptResult] = []

    def record(self, result: AttemptResult) -> None:
        """Journal ``result`` now; it reaches the database with the next write."""
        self.journal.outcome(result)
        self.pending.append(result)

    async def write(self, in_flight_id: int | None = None, limits: Limits | None = None) -> Mark:
        """Write pending outcomes and, with ``in_flight_id``, mark that row in flight under
        ``limits`` in the same statement (see :class:`~mailer.queue.Mark`). Outcomes that
        could not be written stay pending (and journaled)."""
        if not self.pending and in_flight_id is None:
            return Mark(False)
        batch, self.pending = self.pending, []
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
        """``record_results``, retried through a database outage (or a failover's read-only
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
