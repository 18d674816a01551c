"""The recurring-send scheduler (``mailer recurring run``, a companion of ``mailer run``):
queues each occurrence of every enabled schedule exactly once.

Election: one scheduler per database leads, the one holding a session advisory lock on a
dedicated connection. The others stand by, waiting on that lock in the server (in rounds
of ``recurring_standby_seconds``, to notice a stop of their own): when the leader stops or
dies its session ends, and the server hands the lock to a standby at once (measured:
about 10 ms). Two hosts never both fire, and even if they did (a leader that lost
its session but not yet noticed) nothing is queued twice:

- each due schedule fires in ONE transaction: ``recurring_advance`` moves ``next_run_at``
  only if it still holds the value read (the guard is in that UPDATE's own WHERE, so a
  concurrent scheduler blocks on the row, then finds it moved and does nothing), then the
  occurrence is recorded in ``recurring_runs``, whose primary key (schedule, occurrence)
  refuses a second one, and its row is inserted into ``email_queue`` pointing at it (a
  campaign schedule creates the occurrence's campaign and inserts each recipient's row);
- after downtime only the latest missed occurrence is queued, once
  (:func:`mailer.recurrence.plan_due`), and ``next_run_at`` moves past ``now``.

An occurrence whose row cannot be inserted (its template or account was deleted, its
campaign's name is taken) is skipped with the reason in ``last_error``. Between ticks the
leader sleeps until the earliest ``next_run_at`` (at most ``recurring_max_sleep_seconds``)
or until a NOTIFY on ``mailer_recurring`` says a schedule changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from mailer.config import Settings
from mailer.db import Database, Row, wait_notifies
from mailer.errors import MailerError
from mailer.recurrence import (
    DuePlan,
    Recurrence,
    RecurrenceError,
    next_occurrence,
    occurrence_label,
    plan_due,
)
from mailer.sql_queries import query

log = logging.getLogger("mailer.recurring")

Clock = Callable[[], datetime]
Conn = psycopg.AsyncConnection[Row]
#: Errors of the data an occurrence inserts (not of the database being away).
DATA_ERRORS = (psycopg.errors.IntegrityError, psycopg.errors.DataError)
#: How much of a failure's text ``last_error`` keeps.
ERROR_CHARS = 500


@dataclass(frozen=True)
class Fired:
    """One occurrence queued: the rows it inserted and how many occurrences it stands for."""

    recurring_id: int
    occurrence_at: datetime
    missed: int
    email_ids: tuple[int, ...]


@dataclass(frozen=True)
class TickResult:
    """What one tick did, and when the next schedule is due (None: none is enabled)."""

    fired: tuple[Fired, ...]
    failed: int
    due: int
    next_due: datetime | None


async def _queue_email(conn: Conn, schedule: Row, plan: DuePlan) -> tuple[int, ...]:
    cur = await conn.execute(
        query("recurring_queue_email"),
        {
            "id": schedule["id"],
            "occurrence_at": plan.occurrence,
            "payload": Jsonb(schedule["payload"]),
            "api_key_id": schedule["api_key_id"],
        },
    )
    return tuple(r["id"] for r in await cur.fetchall())


class OccurrenceRefused(MailerError):
    """An occurrence that cannot be queued as defined (its campaign's name is taken)."""


async def _queue_campaign(conn: Conn, schedule: Row, plan: DuePlan) -> tuple[int, ...]:
    """Create the occurrence's campaign (:func:`occurrence_label`: a retry gets the same
    name, which the campaign's unique name refuses) and queue each recipient once."""
    payload = schedule["payload"]
    name = occurrence_label(payload["name"], plan.occurrence, schedule["timezone"])
    params = {"id": schedule["id"], "occurrence_at": plan.occurrence, "campaign": name}
    cur = await conn.execute(
        query("campaign_create"),
        {
            "name": name,
            "message": Jsonb(payload["message"]),
            "track_opens": payload.get("track_opens"),
            "track_clicks": payload.get("track_clicks"),
            "api_key_id": schedule["api_key_id"],
        },
    )
    if await cur.fetchone() is None:
        raise OccurrenceRefused(f"campaign {name!r} exists")
    await conn.execute(query("recurring_run_campaign"), params)
    cur = await conn.execute(
        query("recurring_queue_campaign"),
        params | {"payload": Jsonb(payload), "api_key_id": schedule["api_key_id"]},
    )
    return tuple(r["id"] for r in await cur.fetchall())


#: How each kind of schedule queues one occurrence, inside the firing transaction.
QUEUERS: dict[str, Callable[[Conn, Row, DuePlan], Awaitable[tuple[int, ...]]]] = {
    "email": _queue_email,
    "campaign": _queue_campaign,
}


async def tick(db: Database, now: datetime, *, batch_size: int = 100) -> TickResult:
    """Fire every schedule due at ``now`` (up to ``batch_size``), each in its own
    transaction."""
    params = {"now": now, "limit": batch_size, "kinds": list(QUEUERS)}
    due = await db.fetch_all("recurring_due", params)
    fired: list[Fired] = []
    failed = 0
    for row in due:
        try:
            done = await fire(db, row, now)
        except (RecurrenceError, OccurrenceRefused, *DATA_ERRORS) as exc:
            failed += 1
            await _skip(db, row, now, exc)
            continue
        if done is not None:
            fired.append(done)
    nxt = await db.fetch_one("recurring_next_due", {"kinds": params["kinds"]})
    return TickResult(tuple(fired), failed, len(due), nxt["next_run_at"] if nxt else None)


async def fire(db: Database, schedule: Row, now: datetime) -> Fired | None:
    """Queue the due occurrence of ``schedule`` (as read by ``recurring_due``) and move it
    on, in one transaction; None when another scheduler (or a pause, or an edit) got there
    first, or when the occurrence was queued already."""
    recurrence = Recurrence(schedule["cron"], schedule["timezone"])
    plan = plan_due(recurrence, schedule["next_run_at"], now)
    if plan is None:
        return None
    async with db.transaction() as conn:
        cur = await conn.execute(
            query("recurring_advance"),
            {
                "id": schedule["id"],
                "expected": schedule["next_run_at"],
                "next_run_at": plan.next_run_at,
                "occurrence_at": plan.occurrence,
            },
        )
        taken = await cur.fetchone()
        if taken is None:
            return None
        cur = await conn.execute(
            query("recurring_record_run"),
            {"id": schedule["id"], "occurrence_at": plan.occurrence, "missed": plan.missed},
        )
        if await cur.fetchone() is None:
            return None
        ids = await QUEUERS[taken["kind"]](conn, taken, plan)
    return Fired(schedule["id"], plan.occurrence, plan.missed, ids)


async def _skip(db: Database, schedule: Row, now: datetime, exc: Exception) -> None:
    """Move past an occurrence that cannot be queued, keeping the reason; a schedule with
    no occurrence left is paused."""
    error = f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]
    log.warning("recurring send %s: occurrence skipped: %s", schedule["id"], error)
    params = {"id": schedule["id"], "expected": schedule["next_run_at"], "error": error}
    try:
        following = next_occurrence(Recurrence(schedule["cron"], schedule["timezone"]), now)
    except RecurrenceError:
        await db.execute("recurring_give_up", params)
    else:
        await db.execute("recurring_skip", params | {"next_run_at": following})


class RecurringScheduler:
    """``mailer recurring run``: lead (or stand by) and fire due schedules until stopped.
    Time is the database's clock (``now()``, the same for every host, whatever their
    clocks say), unless a ``clock`` is given (tests: no waiting for real minutes)."""

    stop_timeout = 10.0

    def __init__(self, settings: Settings, url: str, *, clock: Clock | None = None) -> None:
        self.settings = settings
        self.url = url
        self.clock = clock
        self.leading = False
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()

    def request_stop(self, reason: str = "stop requested") -> None:
        log.info("recurring scheduler stopping: %s", reason)
        self._stop.set()
        self._wake.set()

    async def run(self) -> int:
        while not self._stop.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True
                ) as session:
                    await self._elect(session)
            except (psycopg.Error, OSError) as exc:
                log.warning("recurring scheduler: database unavailable (%s); retrying", exc)
            finally:
                self.leading = False
            self._wake.clear()
            await self._sleep(self.settings.recurring_standby_seconds)
        return 0

    async def _elect(self, session: psycopg.AsyncConnection[Any]) -> None:
        """Take the lock on ``session`` (then lead), or stand by: wait for it, in rounds of
        ``recurring_standby_seconds`` (to notice a stop), until it is free."""
        cur = await session.execute(query("try_recurring_scheduler_lock"))
        locked = await cur.fetchone()
        if not (locked and locked[0]):
            log.info("another recurring scheduler leads; standing by")
            if not await self._wait_for_lock(session):
                return
        await self._lead(session)

    async def _wait_for_lock(self, session: psycopg.AsyncConnection[Any]) -> bool:
        """True once the lock is ours (the leader's session ended); False on a stop."""
        timeout = f"{max(1, round(self.settings.recurring_standby_seconds * 1000))}ms"
        await session.execute(query("set_lock_timeout"), {"timeout": timeout})
        while not self._stop.is_set():
            try:
                await session.execute(query("wait_recurring_scheduler_lock"))
            except psycopg.errors.LockNotAvailable:
                continue
            return True
        return False

    async def _lead(self, session: psycopg.AsyncConnection[Any]) -> None:
        log.info("recurring scheduler leading")
        self.leading = True
        await session.execute(query("listen_mailer_recurring"))
        listener = asyncio.create_task(self._listen(session))
        try:
            async with Database(self.url) as db:
                while not self._stop.is_set():
                    self._wake.clear()  # a NOTIFY from now on wakes the sleep below
                    if listener.done():
                        listener.result()  # the session (and the lock) is gone: elect again
                    now = await self._now(db)
                    result = await tick(db, now, batch_size=self.settings.recurring_batch_size)
                    _log_tick(result)
                    if result.due < self.settings.recurring_batch_size:
                        await self._sleep(self._sleep_for(result.next_due, now))
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, psycopg.Error):
                await listener

    async def _listen(self, session: psycopg.AsyncConnection[Any]) -> None:
        try:
            while True:
                await wait_notifies(session)
                self._wake.set()
        finally:
            self._wake.set()

    async def _now(self, db: Database) -> datetime:
        if self.clock is not None:
            return self.clock()
        row = await db.fetch_one("db_now")
        assert row is not None
        return row["now"]

    def _sleep_for(self, next_due: datetime | None, now: datetime) -> float:
        longest = self.settings.recurring_max_sleep_seconds
        if next_due is None:
            return longest
        return max(0.0, min(longest, (next_due - now).total_seconds()))

    async def _sleep(self, seconds: float) -> None:
        """Until ``seconds`` pass, a NOTIFY arrives (after the last ``_wake.clear()``) or
        a stop."""
        if self._stop.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)


def _log_tick(result: TickResult) -> None:
    for f in result.fired:
        missed = f" (standing for {f.missed} missed)" if f.missed > 1 else ""
        log.info(
            "recurring send %s: queued the %s occurrence as row(s) %s%s",
            f.recurring_id,
            f.occurrence_at.isoformat(),
            ",".join(map(str, f.email_ids)),
            missed,
        )
