"""The worker's traffic shaping, persisted: :mod:`mailer.shaping`'s pure state machines
plus the ``send_rates`` rows that ``mailer status`` shows.

The worker calls, per account (see the commit that wires it for the exact places):
``load()`` once at start; ``pick(rows, limits)`` to choose the next row of a batch;
``pace(row, limits, sleep, stopping)`` right before marking it in flight (False: the
worker is stopping, give the row back); ``sent(row, limits)`` after a 250;
and ``error = await failed(row, error, limits)`` first thing on a DeliveryError (it may
return a different error: an account-level one for a server-wide storm, or a
destination throttle).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from mailer.db import Database
from mailer.errors import DeliveryError, DestinationThrottledError
from mailer.limits import Limits
from mailer.models import QueuedEmail
from mailer.shaping import ACCOUNT, Change, Shaper, StormDetector

log = logging.getLogger("mailer.traffic")


class Traffic:
    """Adaptive rates and storm detection for one account's worker."""

    def __init__(self, db: Database, account_id: int, shaper: Shaper | None = None) -> None:
        self.db = db
        self.account_id = account_id
        self.shaper = shaper or Shaper()
        self.storm = StormDetector()

    async def load(self) -> None:
        """Restore the rates a previous worker of this account left in force."""
        for row in await self.db.fetch_all("send_rates", {"account_id": self.account_id}):
            self.shaper.load(row["destination"], row["per_minute"], row["release_at"])

    def pick(self, rows: list[QueuedEmail], limits: Limits) -> int:
        """Index of the row to send next (see :meth:`Shaper.pick`)."""
        return self.shaper.pick([r.to_address for r in rows], limits, time.monotonic())

    async def pace(
        self,
        row: QueuedEmail,
        limits: Limits,
        sleep: Callable[[float], Awaitable[Any]],
        stopping: Callable[[], bool],
    ) -> bool:
        """Wait until the shaped rates allow a send to ``row``, then count it as started
        (True). False: ``stopping()`` became true first; do not send it."""
        while (wait := self.shaper.wait(row.to_address, limits, time.monotonic())) > 0:
            if stopping():
                return False
            await sleep(wait)
        if stopping():
            return False
        self.shaper.sent(row.to_address, time.monotonic())
        return True

    async def sent(self, row: QueuedEmail, limits: Limits) -> None:
        self.storm.succeeded()
        for change in self.shaper.succeeded(row.to_address, limits, time.monotonic()):
            await self._save(change)

    async def failed(self, row: QueuedEmail, error: DeliveryError, limits: Limits) -> DeliveryError:
        """Learn from a failure; return the error the row's fate should follow."""
        storm = self.storm.failed(row.id, row.to_address, error)
        if storm is not None:
            error = StormDetector.escalate(error, len(storm))
            earlier = storm[:-1]
            if earlier:  # their attempts were the server's fault too
                await self.db.execute("refund_attempts", {"ids": earlier})
            log.warning("account %s: %s", self.account_id, error)
        change = self.shaper.throttled(error, row.to_address, limits, time.monotonic())
        if change is None:
            return error
        await self._save(change)
        if change.destination == ACCOUNT:
            return error
        retry = 60.0 / (change.per_minute or 1.0)
        return DestinationThrottledError(
            f"{change.destination} asked to slow down: {error.message}",
            retry_seconds=retry,
            code=error.code,
            recipient=error.recipient,
            reached_provider=error.reached_provider,
            mail_from_at=error.mail_from_at,
            stage=error.stage,
        )

    async def _save(self, change: Change) -> None:
        params = {"account_id": self.account_id, "destination": change.destination}
        if change.per_minute is None:
            log.info(
                "account %s: sending rate to %s back to the configured limits",
                self.account_id,
                change.destination or "all destinations",
            )
            await self.db.execute("delete_send_rate", params)
            return
        log.info(
            "account %s: sending rate to %s now %.1f/min",
            self.account_id,
            change.destination or "all destinations",
            change.per_minute,
        )
        await self.db.execute(
            "save_send_rate",
            params
            | {
                "per_minute": change.per_minute,
                "release_at": change.release_at,
                "reason": change.reason,
            },
        )
