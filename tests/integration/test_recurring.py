"""Recurring sends on real PostgreSQL: the scheduler queues each occurrence exactly once,
even with two schedulers at once; after downtime the missed occurrences are queued once;
one scheduler leads and another takes over when it stops; a fired row is delivered.

Time is a controllable clock (``now`` passed to :func:`tick`, ``clock`` given to the
scheduler), so no test waits for real minutes.
"""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from mailer.config import Settings
from mailer.db import Database
from mailer.prune import RetentionManager
from mailer.recurring import RecurringSend, RecurringSends
from mailer.recurring_scheduler import RecurringScheduler, fire, tick
from tests.support.mailer_env import (
    add_account,
    advisory_lock_held,
    mailer_run,
    running_service,
    running_worker,
    wait_until,
)
from tests.support.smtp_server import ScriptedSMTPServer

T0 = datetime(2026, 6, 1, 12, 0, 30, tzinfo=UTC)
#: The advisory lock class of the scheduler election (try_recurring_scheduler_lock).
SCHEDULER_LOCK = 734604


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def schedule(
    sql: psycopg.Connection, name: str = "digest", cron: str = "* * * * *", **email: Any
) -> RecurringSend:
    """A schedule created at T0 (its first occurrence is T0's next minute)."""
    body = {
        "name": name,
        "cron": cron,
        "timezone": "UTC",
        "email": {"to": "ann@example.org", "subject": "Digest", "text": "Hello"} | email,
    }
    return RecurringSends(sql).create(body, now=T0)


def occurrences(sql: psycopg.Connection) -> list[tuple[int, datetime]]:
    rows = sql.execute(
        "SELECT recurring_id, recurring_at FROM email_queue ORDER BY recurring_id, recurring_at"
    ).fetchall()
    return [(r["recurring_id"], r["recurring_at"]) for r in rows]


def stored(sql: psycopg.Connection, recurring_id: int) -> dict[str, Any]:
    return sql.execute("SELECT * FROM recurring_sends WHERE id = %s", (recurring_id,)).fetchone()


class Clock:
    """A clock tests move by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def fast(settings: Settings) -> Settings:
    return settings.with_overrides(recurring_standby_seconds=0.2, recurring_max_sleep_seconds=1.0)


async def test_an_occurrence_is_queued_once_then_the_schedule_moves_on(sql, db):
    digest = schedule(sql, cron="*/5 * * * *", campaign="weekly", metadata={"k": "v"})
    assert digest.next_run_at == datetime(2026, 6, 1, 12, 5, tzinfo=UTC)
    assert (await tick(db, T0 + minutes(4))).fired == ()
    result = await tick(db, T0 + minutes(5))
    [fired] = result.fired
    assert (fired.occurrence_at, fired.missed) == (digest.next_run_at, 1)
    row = sql.execute("SELECT * FROM email_queue").fetchone()
    assert row["id"] == fired.email_ids[0] and row["status"] == "queued"
    assert (row["to_address"], row["subject"], row["text_body"]) == (
        "ann@example.org",
        "Digest",
        "Hello",
    )
    assert (row["campaign"], row["metadata"]) == ("weekly", {"k": "v"})
    assert (row["recurring_id"], row["recurring_at"]) == (digest.id, digest.next_run_at)
    after = stored(sql, digest.id)
    assert after["last_run_at"] == digest.next_run_at
    assert after["next_run_at"] == result.next_due == datetime(2026, 6, 1, 12, 10, tzinfo=UTC)
    assert (await tick(db, T0 + minutes(9))).fired == ()
    assert len(occurrences(sql)) == 1


async def test_two_schedulers_at_once_queue_each_occurrence_exactly_once(sql, db_url):
    ids = [schedule(sql, f"s{i}").id for i in range(10)]
    async with Database(db_url, max_size=2) as one, Database(db_url, max_size=2) as two:
        for minute in range(1, 6):
            now = T0 + minutes(minute)
            first, second = await asyncio.gather(tick(one, now), tick(two, now))
            assert len(first.fired) + len(second.fired) == len(ids)
    found = occurrences(sql)
    assert len(found) == len(set(found)) == 5 * len(ids)
    runs = sql.execute("SELECT count(*) AS n FROM recurring_runs").fetchone()["n"]
    assert runs == 5 * len(ids)


async def test_a_stale_scheduler_with_an_old_read_queues_nothing(sql, db):
    """A scheduler that read a schedule before another fired it (the guard's case)."""
    digest = schedule(sql)
    due_then = sql.execute("SELECT * FROM recurring_sends").fetchone()
    await tick(db, T0 + minutes(1))
    assert await fire(db, due_then, T0 + minutes(1)) is None
    assert occurrences(sql) == [(digest.id, digest.next_run_at)]


async def test_downtime_queues_the_latest_missed_occurrence_once(sql, db_url, settings):
    digest = schedule(sql)
    clock = Clock(T0 + minutes(10))  # ten occurrences fell while no scheduler ran
    async with running_service(RecurringScheduler(fast(settings), db_url, clock=clock)):
        await wait_until(lambda: len(occurrences(sql)) == 1, message="the occurrence")
        await asyncio.sleep(0.5)
    latest = datetime(2026, 6, 1, 12, 10, tzinfo=UTC)
    assert occurrences(sql) == [(digest.id, latest)]
    run = sql.execute("SELECT * FROM recurring_runs").fetchone()
    assert (run["occurrence_at"], run["missed"]) == (latest, 10)
    assert stored(sql, digest.id)["next_run_at"] == latest + minutes(1)
    # a restart at the same moment queues nothing more
    async with running_service(RecurringScheduler(fast(settings), db_url, clock=clock)) as again:
        await wait_until(lambda: again.leading, message="leading")
        await asyncio.sleep(0.5)
    assert len(occurrences(sql)) == 1


async def test_one_scheduler_leads_and_another_takes_over_when_it_stops(sql, db_url, settings):
    digest = schedule(sql)
    clock = Clock(T0)
    first = RecurringScheduler(fast(settings), db_url, clock=clock)
    second = RecurringScheduler(fast(settings), db_url, clock=clock)
    async with running_service(first):
        await wait_until(lambda: first.leading, message="a leader")
        async with running_service(second):
            await asyncio.sleep(0.6)  # several rounds of waiting on the lock
            assert not second.leading
            clock.now = T0 + minutes(1)
            sql.execute("SELECT pg_notify('mailer_recurring', '')")
            await wait_until(lambda: len(occurrences(sql)) == 1, message="the leader fires")
            first.request_stop("leader stops")
            await wait_until(lambda: second.leading, message="the standby takes over")
            clock.now = T0 + minutes(2)
            sql.execute("SELECT pg_notify('mailer_recurring', '')")
            await wait_until(lambda: len(occurrences(sql)) == 2, message="the new leader fires")
    first_at = digest.next_run_at
    assert [at for _, at in occurrences(sql)] == [first_at, first_at + minutes(1)]


async def test_a_leader_whose_session_dies_gives_way(sql, db_url, settings):
    """The leader's election session is killed (a network cut, a server-side kill): the
    lock is free, a scheduler takes it, and still every occurrence is queued once."""
    digest = schedule(sql)
    clock = Clock(T0)
    schedulers = [RecurringScheduler(fast(settings), db_url, clock=clock) for _ in range(2)]
    async with running_service(schedulers[0]), running_service(schedulers[1]):
        await wait_until(lambda: any(s.leading for s in schedulers), message="a leader")
        [leader] = [s for s in schedulers if s.leading]
        sql.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
            "AND classid = %s AND granted",
            (SCHEDULER_LOCK,),
        )
        await wait_until(lambda: not leader.leading, message="the old leader steps down")
        await wait_until(lambda: advisory_lock_held(sql, SCHEDULER_LOCK), message="a new leader")
        for minute in (1, 2, 3):
            clock.now = T0 + minutes(minute)
            sql.execute("SELECT pg_notify('mailer_recurring', '')")
            await wait_until(lambda n=minute: len(occurrences(sql)) == n, message=f"tick {minute}")
        assert sum(s.leading for s in schedulers) == 1
    first_at = digest.next_run_at
    assert [at for _, at in occurrences(sql)] == [first_at + minutes(i) for i in range(3)]


async def test_an_occurrence_that_cannot_be_queued_is_skipped_with_the_reason(sql, db):
    sql.execute("INSERT INTO templates (name, subject, text_body) VALUES ('t', 's', 'x')")
    digest = RecurringSends(sql).create(
        {
            "name": "n",
            "cron": "@hourly",
            "timezone": "UTC",
            "email": {"to": "a@b.org", "template": "t"},
        },
        now=T0,
    )
    sql.execute("DELETE FROM templates")
    result = await tick(db, T0 + minutes(60))
    assert (result.fired, result.failed) == ((), 1)
    after = stored(sql, digest.id)
    assert "template" in after["last_error"] and after["enabled"]
    assert after["next_run_at"] == digest.next_run_at + minutes(60)
    assert occurrences(sql) == []


async def test_paused_schedules_do_not_fire_and_resume_skips_what_fell_meanwhile(sql, db):
    digest = schedule(sql)
    schedules = RecurringSends(sql)
    assert not schedules.pause(digest.name).enabled
    assert (await tick(db, T0 + minutes(30))).fired == ()
    resumed = schedules.resume(digest.id, now=T0 + minutes(30))
    assert resumed.enabled and resumed.next_run_at == T0 + minutes(30.5)
    assert (await tick(db, T0 + minutes(30))).fired == ()
    assert len((await tick(db, T0 + minutes(31))).fired) == 1


async def test_a_fired_row_is_delivered_by_a_worker(sql, db, db_url, settings):
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp)
        digest = schedule(
            sql, html="<p>Your digest</p>", to={"email": "bo@example.org", "name": "Bo"}
        )
        [fired] = (await tick(db, T0 + minutes(1))).fired
        async with running_worker(settings, db_url, account):
            await wait_until(
                lambda: (
                    sql.execute("SELECT status FROM email_queue").fetchone()["status"] == "sent"
                ),
                message="the occurrence sent",
            )
        [received] = smtp.wait_for(1)
    message = received.message
    assert received.rcpt_tos == ["bo@example.org"]
    assert message["To"] == "Bo <bo@example.org>" and message["Subject"] == "Digest"
    assert "<p>Your digest</p>" in message.get_body(("html",)).get_content()
    row = sql.execute("SELECT * FROM email_queue").fetchone()
    assert (row["id"], row["recurring_id"]) == (fired.email_ids[0], digest.id)
    assert message["Message-ID"] == row["message_id"]


@pytest.mark.slow
async def test_mailer_run_keeps_the_scheduler_which_queues_a_due_occurrence(sql, db_url, tmp_path):
    """`mailer run` starts `mailer recurring run` beside the workers: it takes the lock,
    queues an occurrence that is due on the real clock, and stops with the orchestrator."""
    digest = schedule(sql)
    sql.execute("UPDATE recurring_sends SET next_run_at = date_trunc('minute', now())")
    extra = {
        "MAILER_BOUNCE_READER": "0",
        "MAILER_WEBHOOK_SENDER": "0",
        "MAILER_SHUTDOWN_GRACE_SECONDS": "5",
    }
    with mailer_run(db_url, tmp_path, **extra) as process:
        await wait_until(lambda: len(occurrences(sql)) == 1, timeout=20, message="queued")
        assert advisory_lock_held(sql, SCHEDULER_LOCK)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    assert "started the recurring scheduler" in (tmp_path / "run.log").read_text()
    assert not advisory_lock_held(sql, SCHEDULER_LOCK)
    after = stored(sql, digest.id)
    assert after["next_run_at"] == after["last_run_at"] + minutes(1)


async def test_prune_forgets_old_occurrences_whose_rows_are_gone(sql, db):
    digest = schedule(sql)
    for minute in (1, 2, 3):
        await tick(db, T0 + minutes(minute))
    rows = [r["id"] for r in sql.execute("SELECT id FROM email_queue ORDER BY id")]
    sql.execute(
        "UPDATE email_queue SET status = 'sent', sent_at = now() - interval '100 days', "
        "created_at = now() - interval '100 days' WHERE id = ANY(%s)",
        (rows[:2],),
    )
    sql.execute("UPDATE recurring_runs SET queued_at = now() - interval '100 days'")
    result = await RetentionManager(db).prune(timedelta(days=90))
    assert (result.deleted["email_queue"], result.deleted["recurring_runs"]) == (2, 2)
    kept = sql.execute("SELECT occurrence_at FROM recurring_runs").fetchall()
    assert [r["occurrence_at"] for r in kept] == [digest.next_run_at + minutes(2)]
    assert (await tick(db, T0 + minutes(3))).fired == ()  # nothing comes back


async def test_a_kind_this_version_cannot_queue_is_left_alone(sql, db):
    """A newer version's kind (say 'sms', in a rolling upgrade) is not this scheduler's
    to fire, nor to wait for."""
    digest = schedule(sql)
    sql.execute("ALTER TABLE recurring_sends DROP CONSTRAINT recurring_sends_kind_is_known")
    sql.execute(
        "INSERT INTO recurring_sends (name, kind, cron, timezone, payload, next_run_at) "
        "VALUES ('newer', 'sms', '* * * * *', 'UTC', '{}', %s)",
        (T0 - minutes(5),),
    )
    result = await tick(db, T0)
    assert (result.fired, result.due, result.next_due) == ((), 0, digest.next_run_at)


async def test_removing_a_schedule_leaves_its_queued_rows(sql, db):
    digest = schedule(sql)
    await tick(db, T0 + minutes(1))
    assert RecurringSends(sql).remove(digest.name)
    row = sql.execute("SELECT status, recurring_id, recurring_at FROM email_queue").fetchone()
    assert row == {"status": "queued", "recurring_id": None, "recurring_at": None}
    assert sql.execute("SELECT count(*) AS n FROM recurring_runs").fetchone()["n"] == 0
    assert (await tick(db, T0 + minutes(2))).fired == ()
