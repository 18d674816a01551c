"""Marking the next row while the current message is on the wire.

A send waits for the SMTP server's replies, and the next row's in-flight mark waits for
PostgreSQL. When nothing can hold the next row back (no pacing delay, room in the limits
for both rows, no shaped rate, no backoff, nothing known against its recipient), the
worker notes it in the journal, renders it and marks it in flight while the current
message is on the wire, so that database round trip hides behind the SMTP ones.

The mark is the same statement as ever (every guard in its own WHERE); it only comes a
few milliseconds earlier. The worker sends the marked row only if nothing changed in
between: same account record (no admin change, no backoff), same limits, still active,
not stopping, no shaped rate, and it is the row the worker picks next. Otherwise the
mark is taken back (``unmark_in_flight``: the attempt is given back, the lease kept) and
the row takes the ordinary path. A crash in between leaves two rows marked: both count
against the limits, as in-flight rows always do, but only the one on the wire can have
gone out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from mailer.account_session import AccountSession
from mailer.journal import OutcomeJournal
from mailer.limits import Limits
from mailer.models import QueuedEmail, SenderAccount
from mailer.outcomes import OutcomeRecorder
from mailer.queue import QueueManager
from mailer.render import RenderedMessage, Renderer


@dataclass(frozen=True)
class Ahead:
    """A row marked in flight ahead of its turn, and what it was marked under."""

    row_id: int
    message: RenderedMessage
    account: SenderAccount  # the account record (by identity) it was rendered for
    limits: Limits


class Lookahead:
    """The next row's preparation and mark, overlapped with the current send."""

    def __init__(
        self,
        session: AccountSession,
        journal: OutcomeJournal,
        renderer: Renderer,
        outcomes: OutcomeRecorder,
        queue: QueueManager,
    ) -> None:
        self.session = session
        self.journal = journal
        self.renderer = renderer
        self.outcomes = outcomes
        self.queue = queue
        self._task: asyncio.Task[Ahead | None] | None = None
        self._ahead: Ahead | None = None

    def start(self, row: QueuedEmail | None, usable: Callable[[QueuedEmail], bool]) -> None:
        """Prepare and mark ``row`` (the row the worker will pick next) in the background,
        when :meth:`_eligible`. Call :meth:`join` before any other database write."""
        if self._task is not None or self._ahead is not None or row is None:
            return
        if usable(row) and self._eligible():
            account, limits = self.session.account, self.session.gate.limits
            self._task = asyncio.create_task(self._prepare(row, account, limits))

    def _eligible(self) -> bool:
        """Nothing but the current send stands between now and the next row's send."""
        account = self.session.account
        limits = self.session.gate.limits
        return (
            account.status == "active"
            and account.backoff_until is None
            and limits.min_delay_ms == 0
            and self.session.gate.remaining() >= 2
        )

    async def _prepare(
        self, row: QueuedEmail, account: SenderAccount, limits: Limits
    ) -> Ahead | None:
        self.journal.preparing(row.id)
        try:
            message = self.renderer.render(row, account)
        except Exception:  # the ordinary path renders it again and records why
            return None
        mark = await self.outcomes.mark(row.id, limits)
        # Not marked: the ordinary path marks it again and learns why.
        return Ahead(row.id, message, account, limits) if mark.marked else None

    async def join(self) -> None:
        """Wait for the background mark (its errors are the caller's)."""
        task, self._task = self._task, None
        if task is not None:
            self._ahead = await task

    def cancel(self) -> None:
        """Stop the background work (the worker is being cancelled); a mark it made is
        released with the worker's other rows."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()

    async def take(self, row: QueuedEmail, sendable: bool) -> RenderedMessage | None:
        """The message of ``row`` if it was marked ahead and may be sent on that mark
        (``sendable``: the worker is not stopping and no rate is shaped); a mark that
        may not be used is taken back."""
        await self.join()
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return None
        if (
            sendable
            and ahead.row_id == row.id
            and ahead.account is self.session.account
            and ahead.limits == self.session.gate.limits
            and self.session.account.status == "active"
        ):
            return ahead.message
        await self.queue.unmark(ahead.row_id)
        return None

    async def drop(self) -> None:
        """Take back a mark that will not be used (the batch ends)."""
        await self.join()
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            await self.queue.unmark(ahead.row_id)
