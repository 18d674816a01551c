"""Marking the next rows while the current message is on the wire.

A send waits for the SMTP server's replies, and the next row's in-flight mark waits for
PostgreSQL. When nothing can hold the next rows back (no pacing delay, room in the limits
for all of them, no shaped rate, no backoff, nothing known against their recipients), the
worker notes them in the journal, renders them and marks them in flight while the current
message is on the wire, so that database round trip hides behind the SMTP ones.

How many rows are marked at once follows the pace of sending: as many as go out in about
:data:`AHEAD_SECONDS` at the recent rate (at most :data:`MAX_AHEAD`). A fast local relay
gets several per statement and per commit, which is what lets sending outrun
PostgreSQL's per-commit cost; a server slower than :data:`SLOW_SEND_SECONDS` a message
gets none (the mark's round trip is noise beside its replies). A row goes on the wire at
most :data:`MAX_MARK_AGE` after its mark was sent: an older mark is taken back and made
again, so an admin's change or a suppression committed in between binds it (a change
that NOTIFYs binds at once, see below).

The mark is the same statement as ever (every guard in its own WHERE); it only comes a
few milliseconds earlier. The worker sends a marked row only if nothing changed in
between: same account record (no admin change, no backoff), same limits, still active,
not stopping, no shaped rate, nothing learnt against its recipient, and it is the row the
worker picks next. Otherwise every mark still ahead is taken back (``unmark_in_flight``:
the attempts are given back, the leases kept) and the rows take the ordinary path. A
crash in between leaves the rows marked: they count against the limits, as in-flight
rows always do, but only the one on the wire can have gone out.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from mailer.account_session import AccountSession
from mailer.journal import OutcomeJournal
from mailer.limits import Limits
from mailer.models import QueuedEmail, SenderAccount
from mailer.outcomes import OutcomeRecorder
from mailer.queue import QueueManager
from mailer.render import RenderedMessage, Renderer

#: Rows marked ahead are those sent within about this long at the recent pace.
AHEAD_SECONDS = 0.05
#: At most this many rows are marked ahead in one statement.
MAX_AHEAD = 16
#: A row marked ahead is sent on that mark only this soon after it (seconds).
MAX_MARK_AGE = 0.25
#: Sends slower than this (recent mean) mark nothing ahead.
SLOW_SEND_SECONDS = MAX_MARK_AGE / 2
#: Weight of the latest send in the running mean of send durations.
PACE_WEIGHT = 0.2


@dataclass(frozen=True)
class Ahead:
    """A row marked in flight ahead of its turn, and what it was marked under."""

    row_id: int
    message: RenderedMessage
    account: SenderAccount  # the account record (by identity) it was rendered for
    limits: Limits
    marked_at: float  # monotonic time the mark statement was sent


def ahead_count(send_seconds: float | None, remaining: int, usable: int) -> int:
    """How many rows to mark ahead: those sent within :data:`AHEAD_SECONDS` at a send
    every ``send_seconds`` (one while the pace is unknown; none when sends are slower
    than :data:`SLOW_SEND_SECONDS`), at most :data:`MAX_AHEAD`, leaving room in the
    limits (``remaining``) for the row on the wire, and no more than the ``usable`` rows
    next in line."""
    if send_seconds is None:
        wanted = 1
    elif send_seconds > SLOW_SEND_SECONDS:
        wanted = 0
    else:
        wanted = max(int(AHEAD_SECONDS / max(send_seconds, 1e-6)), 1)
    return max(0, min(wanted, MAX_AHEAD, remaining - 1, usable))


class Lookahead:
    """The next rows' preparation and mark, overlapped with the current send."""

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
        self._task: asyncio.Task[list[Ahead]] | None = None
        self._ahead: deque[Ahead] = deque()
        self._send_seconds: float | None = None

    def sent_in(self, seconds: float) -> None:
        """One send took ``seconds`` (the pace that sizes the next marks)."""
        if self._send_seconds is None:
            self._send_seconds = seconds
        else:
            self._send_seconds += PACE_WEIGHT * (seconds - self._send_seconds)

    def start(self, pending: list[QueuedEmail], usable: Callable[[QueuedEmail], bool]) -> None:
        """Prepare and mark the rows the worker will pick next (the head of ``pending``)
        in the background, when :meth:`_eligible`. Call :meth:`join` before any other
        database write."""
        if self._task is not None or self._ahead or not pending or not self._eligible():
            return
        prefix = 0
        while prefix < min(len(pending), MAX_AHEAD) and usable(pending[prefix]):
            prefix += 1
        count = ahead_count(self._send_seconds, self.session.gate.remaining(), prefix)
        if count:
            account, limits = self.session.account, self.session.gate.limits
            self._task = asyncio.create_task(self._prepare(pending[:count], account, limits))

    def _eligible(self) -> bool:
        """Nothing but the current send stands between now and the next rows' sends."""
        account = self.session.account
        return (
            account.status == "active"
            and account.backoff_until is None
            and self.session.gate.limits.min_delay_ms == 0
        )

    async def _prepare(
        self, rows: list[QueuedEmail], account: SenderAccount, limits: Limits
    ) -> list[Ahead]:
        messages: dict[int, RenderedMessage] = {}
        for row in rows:
            self.journal.preparing(row.id)
            try:
                messages[row.id] = self.renderer.render(row, account)
            except Exception:  # the ordinary path renders it again and records why
                break
        if not messages:
            return []
        marked_at = time.monotonic()
        marked = set(await self.outcomes.mark_many(list(messages), limits))
        ahead = []
        for row_id, message in messages.items():
            if row_id not in marked:  # the ordinary path marks it again and learns why
                break
            ahead.append(Ahead(row_id, message, account, limits, marked_at))
        stray = marked - {a.row_id for a in ahead}
        if stray:  # marked behind a row that was not: taken back, in line order
            await self.queue.unmark(sorted(stray))
        return ahead

    async def join(self) -> None:
        """Wait for the background marks (their errors are the caller's)."""
        task, self._task = self._task, None
        if task is not None:
            self._ahead.extend(await task)

    def cancel(self) -> None:
        """Stop the background work (the worker is being cancelled); marks it made are
        released with the worker's other rows."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()

    async def take(self, row: QueuedEmail, sendable: bool) -> RenderedMessage | None:
        """The message of ``row`` if it was marked ahead and may be sent on that mark
        (``sendable``: the worker is not stopping, no rate is shaped, nothing is known
        against its recipient; and the mark is younger than :data:`MAX_MARK_AGE`);
        otherwise every mark still ahead is taken back."""
        await self.join()
        if not self._ahead:
            return None
        ahead = self._ahead[0]
        if (
            sendable
            and ahead.row_id == row.id
            and time.monotonic() - ahead.marked_at <= MAX_MARK_AGE
            and ahead.account is self.session.account
            and ahead.limits == self.session.gate.limits
            and self.session.account.status == "active"
        ):
            self._ahead.popleft()
            return ahead.message
        await self.drop()
        return None

    async def drop(self) -> None:
        """Take back the marks that will not be used (the batch ends)."""
        await self.join()
        ahead, self._ahead = self._ahead, deque()
        if ahead:
            await self.queue.unmark([a.row_id for a in ahead])
