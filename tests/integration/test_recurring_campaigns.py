"""Recurring campaigns on real PostgreSQL: each occurrence creates its own campaign
(``<base>-<local time>``) and queues each recipient exactly once, with concurrent
schedulers too; an occurrence whose campaign name is taken is skipped with the reason;
an occurrence's campaign is delivered by a worker to a real SMTP server.

Time is an injected clock (``now`` passed to :func:`tick`): no test waits for minutes.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from mailer.db import Database
from mailer.recurring import RecurringSend, RecurringSends
from mailer.recurring_scheduler import RecurringScheduler, tick
from tests.support.mailer_env import (
    add_account,
    running_service,
    running_worker,
    statuses,
    wait_until,
)
from tests.support.smtp_server import ScriptedSMTPServer

T0 = datetime(2026, 12, 7, 7, 59, 30, tzinfo=UTC)  # 08:59:30 in Paris (UTC+1)
RECIPIENTS = [
    "ann@example.org",
    {"email": "bob@example.org", "name": "Bob", "variables": {"greeting": "Hey", "first": "Bob"}},
    "cy@example.org",
    "ANN@example.org",  # the same address again: still queued once per occurrence
]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def weekly(sql: psycopg.Connection, name: str = "weekly", **campaign: Any) -> RecurringSend:
    """A campaign schedule firing at 09:00 and 09:30 Paris time, created at T0."""
    body = {
        "name": name,
        "kind": "campaign",
        "cron": "0,30 9 * * *",
        "timezone": "Europe/Paris",
        "campaign": {
            "name": name,
            "subject": "{{ greeting }}, news",
            "html": "<p>{{ greeting }} {{ first }}</p>",
            "variables": {"greeting": "Hello", "first": "friend"},
            "recipients": RECIPIENTS,
            "track_opens": False,
        }
        | campaign,
    }
    return RecurringSends(sql).create(body, now=T0)


def campaigns(sql: psycopg.Connection) -> dict[str, list[str]]:
    """Each campaign's recipients, in queue order."""
    rows = sql.execute("SELECT campaign, to_address FROM email_queue ORDER BY id").fetchall()
    found: dict[str, list[str]] = {}
    for row in rows:
        found.setdefault(row["campaign"], []).append(row["to_address"])
    return found


async def test_each_occurrence_creates_its_campaign_with_each_recipient_once(sql, db):
    schedule = weekly(sql)
    assert schedule.next_run_at == datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    first = (await tick(db, T0 + minutes(1))).fired
    assert (await tick(db, T0 + minutes(2))).fired == ()  # not due again
    second = (await tick(db, T0 + minutes(31))).fired
    assert [len(f.email_ids) for f in (*first, *second)] == [3, 3]
    names = ["weekly-2026-12-07T09:00+01:00", "weekly-2026-12-07T09:30+01:00"]
    expected = ["ann@example.org", "bob@example.org", "cy@example.org"]
    assert campaigns(sql) == {name: expected for name in names}
    settings = sql.execute(
        "SELECT campaign, state, track_opens, message->>'subject' AS subject "
        "FROM campaign_settings ORDER BY id"
    ).fetchall()
    assert settings == [
        {"campaign": n, "state": "active", "track_opens": False, "subject": "{{ greeting }}, news"}
        for n in names
    ]
    bob = sql.execute(
        "SELECT to_name, variables, recurring_id FROM email_queue "
        "WHERE to_address = 'bob@example.org' ORDER BY id LIMIT 1"
    ).fetchone()
    assert bob == {
        "to_name": "Bob",
        "variables": {"greeting": "Hey", "first": "Bob"},
        "recurring_id": schedule.id,
    }
    runs = RecurringSends(sql).get(schedule.id).runs
    assert [r["campaign"] for r in runs] == names[::-1]
    assert [r["email_id"] for r in runs] == [None, None]


async def test_concurrent_schedulers_queue_each_occurrence_campaign_once(sql, db_url):
    for i in range(4):
        weekly(sql, f"list{i}")
    async with Database(db_url, max_size=2) as one, Database(db_url, max_size=2) as two:
        for now in (T0 + minutes(1), T0 + minutes(31)):
            first, second = await asyncio.gather(tick(one, now), tick(two, now))
            assert len(first.fired) + len(second.fired) == 4
            assert first.failed == second.failed == 0
    found = campaigns(sql)
    assert len(found) == 8
    assert all(sorted(rows) == sorted(set(rows)) and len(rows) == 3 for rows in found.values())
    count = sql.execute("SELECT count(*) AS n FROM recurring_runs").fetchone()["n"]
    assert count == 8


async def test_two_running_schedulers_fire_two_occurrences_once_each(sql, db_url, settings):
    """Two ``mailer recurring run`` services on an injected clock: one leads, and each
    occurrence's campaign is created once with each recipient once."""
    weekly(sql)
    clock = Clock(T0)
    fast = settings.with_overrides(recurring_standby_seconds=0.2, recurring_max_sleep_seconds=1)
    schedulers = [RecurringScheduler(fast, db_url, clock=clock) for _ in range(2)]
    async with running_service(schedulers[0]), running_service(schedulers[1]):
        await wait_until(lambda: any(s.leading for s in schedulers), message="a leader")
        for count, at in ((1, T0 + minutes(1)), (2, T0 + minutes(31))):
            clock.now = at
            sql.execute("SELECT pg_notify('mailer_recurring', '')")
            await wait_until(lambda n=count: len(campaigns(sql)) == n, message=f"campaign {count}")
        await asyncio.sleep(0.5)  # a few more ticks: nothing more
        assert sum(s.leading for s in schedulers) == 1
    found = campaigns(sql)
    assert sorted(found) == ["weekly-2026-12-07T09:00+01:00", "weekly-2026-12-07T09:30+01:00"]
    assert all(
        rows == ["ann@example.org", "bob@example.org", "cy@example.org"] for rows in found.values()
    )


async def test_an_occurrence_whose_campaign_name_is_taken_is_skipped(sql, db):
    schedule = weekly(sql)
    sql.execute(
        "INSERT INTO campaign_settings (campaign, message) "
        "VALUES ('weekly-2026-12-07T09:00+01:00', '{}')"
    )
    result = await tick(db, T0 + minutes(1))
    assert (result.fired, result.failed) == ((), 1)
    after = RecurringSends(sql).get(schedule.id)
    assert "exists" in after.last_error and after.enabled
    assert after.next_run_at == schedule.next_run_at + minutes(30)
    assert campaigns(sql) == {} and after.runs == ()
    assert len((await tick(db, T0 + minutes(31))).fired) == 1


async def test_an_occurrence_campaign_is_delivered_by_a_worker(sql, db, db_url, settings):
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp)
        weekly(sql, account=account)
        [fired] = (await tick(db, T0 + minutes(1))).fired
        async with running_worker(settings, db_url, account):
            await wait_until(lambda: statuses(sql) == {"sent": 3}, message="the campaign sent")
        received = smtp.wait_for(3)
    by_rcpt = {r.rcpt_tos[0]: r.message for r in received}
    assert sorted(by_rcpt) == ["ann@example.org", "bob@example.org", "cy@example.org"]
    bob = by_rcpt["bob@example.org"]
    assert bob["To"] == "Bob <bob@example.org>" and bob["Subject"] == "Hey, news"
    assert "<p>Hey Bob</p>" in bob.get_body(("html",)).get_content()
    ann = by_rcpt["ann@example.org"]
    assert ann["Subject"] == "Hello, news"
    assert "<p>Hello friend</p>" in ann.get_body(("html",)).get_content()
    rows = sql.execute("SELECT id, campaign, message_id FROM email_queue ORDER BY id").fetchall()
    assert [r["id"] for r in rows] == list(fired.email_ids)
    assert {r["campaign"] for r in rows} == {"weekly-2026-12-07T09:00+01:00"}
    assert {m["Message-ID"] for m in by_rcpt.values()} == {r["message_id"] for r in rows}
