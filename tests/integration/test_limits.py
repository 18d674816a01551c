"""Account limits held exactly, checked the way an admin would: the rows' ``sent_at``, the
``send_logs`` an account accumulates, and what the SMTP server received and when.

Every test runs a real worker (in-process) against a real PostgreSQL and a real SMTP server.
"""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise

from tests.support.mailer_env import (
    TIMESTAMP_SLACK,
    add_account,
    add_history,
    count_sent,
    hold,
    insert_emails,
    received_by_message_id,
    rows_by_id,
    running_worker,
    send_logs,
    statuses,
    wait_until,
)
from tests.support.smtp_server import ScriptedSMTPServer

#: Long enough for several heartbeats (0.3 s) and polls: a worker about to break a limit
#: would have done it by then.
HOLD_SECONDS = 1.0


def counted_in_window(sql, account_id: int, interval: str) -> int:
    return sql.execute(
        "SELECT count(*) AS n FROM send_logs WHERE account_id = %s AND counted "
        "AND created_at > now() - %s::interval",
        (account_id, interval),
    ).fetchone()["n"]


def sent_times(sql) -> list:
    return [
        r["sent_at"]
        for r in sql.execute(
            "SELECT sent_at FROM email_queue WHERE status = 'sent' AND sent_at IS NOT NULL "
            "ORDER BY sent_at"
        )
    ]


async def test_min_delay_spaces_every_send(sql, db_url, settings):
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp, min_delay_ms=300)
        ids = insert_emails(sql, 5)
        async with running_worker(settings, db_url, account):
            await wait_until(lambda: statuses(sql) == {"sent": 5}, message="5 rows sent")
        received = smtp.wait_for(5)

    times = sent_times(sql)
    gaps = [b - a for a, b in pairwise(times)]
    assert len(gaps) == 4
    assert all(gap >= timedelta(milliseconds=300) - TIMESTAMP_SLACK for gap in gaps), gaps
    # The log the limits are computed from agrees with the rows.
    log_times = [log["created_at"] for log in send_logs(sql)]
    assert log_times == times
    # And the provider saw them spaced too (network jitter aside).
    arrivals = sorted(m.received_at for m in received)
    assert all(b - a >= 0.2 for a, b in pairwise(arrivals)), arrivals
    assert set(received_by_message_id(smtp)) == {rows_by_id(sql)[i]["message_id"] for i in ids}


async def test_hourly_limit_sends_exactly_the_limit_and_holds_the_rest(sql, db_url, settings):
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp, hourly_limit=3, daily_limit=100)
        insert_emails(sql, 10)
        async with running_worker(settings, db_url, account):
            await wait_until(lambda: count_sent(sql) == 3, message="3 rows sent")
            await hold(
                lambda: statuses(sql) == {"sent": 3, "queued": 7}, HOLD_SECONDS, "3 sent / 7 queued"
            )
        assert len(smtp.received) == 3

    assert counted_in_window(sql, account, "1 hour") == 3
    assert len(send_logs(sql)) == 3  # no failed attempts, no retries
    held = [r for r in rows_by_id(sql).values() if r["status"] == "queued"]
    assert len(held) == 7
    for row in held:
        # Never claimed (a claim assigns the Message-ID), never charged, never failed.
        assert row["attempts"] == 0 and row["message_id"] is None
        assert row["last_error"] is None and row["locked_by"] is None


async def test_daily_limit_sends_exactly_the_limit_and_holds_the_rest(sql, db_url, settings):
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp, daily_limit=2)
        insert_emails(sql, 6)
        async with running_worker(settings, db_url, account):
            await wait_until(lambda: count_sent(sql) == 2, message="2 rows sent")
            await hold(
                lambda: statuses(sql) == {"sent": 2, "queued": 4}, HOLD_SECONDS, "2 sent / 4 queued"
            )
        assert len(smtp.received) == 2

    assert counted_in_window(sql, account, "24 hours") == 2
    assert len(send_logs(sql)) == 2
    for row in rows_by_id(sql).values():
        if row["status"] == "queued":
            assert row["attempts"] == 0 and row["message_id"] is None


async def test_daily_window_counts_sends_from_before_the_worker_started(sql, db_url, settings):
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp, daily_limit=5)
        add_history(sql, account, [23 * 3600, 12 * 3600, 60])  # in the 24 h window
        add_history(sql, account, [25 * 3600, 30 * 3600])  # out of it
        add_history(sql, account, [600, 600], counted=False)  # never reached the provider
        insert_emails(sql, 6)
        async with running_worker(settings, db_url, account):
            await wait_until(lambda: count_sent(sql) == 2, message="2 rows sent")
            await hold(lambda: count_sent(sql) == 2, HOLD_SECONDS, "2 sent")
        assert len(smtp.received) == 2
    assert counted_in_window(sql, account, "24 hours") == 5


async def test_hourly_window_counts_sends_from_before_the_worker_started(sql, db_url, settings):
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp, hourly_limit=3, daily_limit=100)
        add_history(sql, account, [30 * 60, 59 * 60])  # in the hour
        add_history(sql, account, [61 * 60, 2 * 3600])  # before it
        insert_emails(sql, 4)
        async with running_worker(settings, db_url, account):
            await wait_until(lambda: count_sent(sql) == 1, message="1 row sent")
            await hold(lambda: count_sent(sql) == 1, HOLD_SECONDS, "1 sent")
        assert len(smtp.received) == 1
    assert counted_in_window(sql, account, "1 hour") == 3


async def test_min_delay_counts_from_the_last_send_before_the_worker_started(sql, db_url, settings):
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp, min_delay_ms=1500)
        add_history(sql, account, [0.0])
        last_send = send_logs(sql)[0]["created_at"]
        insert_emails(sql, 2)
        async with running_worker(settings, db_url, account):
            await wait_until(lambda: count_sent(sql) == 2, timeout=10, message="2 rows sent")
        smtp.wait_for(2)
    first, second = sent_times(sql)
    assert first - last_send >= timedelta(milliseconds=1500) - TIMESTAMP_SLACK
    assert second - first >= timedelta(milliseconds=1500) - TIMESTAMP_SLACK


async def test_raised_daily_limit_applies_live(sql, db_url, settings):
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp, daily_limit=2)
        insert_emails(sql, 6)
        async with running_worker(settings, db_url, account):
            await wait_until(lambda: count_sent(sql) == 2, message="2 rows sent")
            await hold(lambda: count_sent(sql) == 2, 0.7, "2 sent at the limit")
            # An admin raises the limit with plain SQL, no restart.
            sql.execute("UPDATE sender_accounts SET daily_limit = 4 WHERE id = %s", (account,))
            await wait_until(
                lambda: count_sent(sql) == 4,
                timeout=5,
                message="2 more rows sent within 5 s of the UPDATE",
            )
            await hold(lambda: count_sent(sql) == 4, HOLD_SECONDS, "4 sent at the new limit")
        assert len(smtp.received) == 4
    assert counted_in_window(sql, account, "24 hours") == 4
    assert statuses(sql) == {"sent": 4, "queued": 2}


async def test_lowered_daily_limit_is_never_exceeded(sql, db_url, settings):
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp, daily_limit=10, min_delay_ms=500)
        insert_emails(sql, 10)
        async with running_worker(settings, db_url, account):
            await wait_until(lambda: count_sent(sql) >= 2, message="2 rows sent")
            # Mid-run, with the rest of the batch already claimed, the admin lowers it.
            sql.execute("UPDATE sender_accounts SET daily_limit = 3 WHERE id = %s", (account,))
            await wait_until(lambda: count_sent(sql) >= 3, message="3rd row sent")
            # Three more min_delay periods: a worker on the old limit would send again.
            await hold(lambda: count_sent(sql) == 3, 1.6, "3 sent at the lowered limit")
        assert len(smtp.received) == 3

    assert counted_in_window(sql, account, "24 hours") == 3
    rows = rows_by_id(sql).values()
    assert statuses(sql) == {"sent": 3, "queued": 7}
    for row in rows:
        if row["status"] == "queued":
            # Claimed with the batch, then given back untouched.
            assert row["attempts"] == 0 and row["locked_by"] is None


async def test_limits_hold_when_the_worker_is_restarted(sql, db_url, settings):
    """Restart safety with the worker's own history: a second worker run continues the
    first run's window instead of starting from zero."""
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp, hourly_limit=4, daily_limit=100, min_delay_ms=200)
        insert_emails(sql, 8)
        async with running_worker(settings, db_url, account):
            await wait_until(lambda: count_sent(sql) >= 2, message="2 rows sent")
        first_run = count_sent(sql)
        assert 2 <= first_run <= 4
        async with running_worker(settings, db_url, account):
            await wait_until(lambda: count_sent(sql) == 4, message="4 rows sent in total")
            await hold(lambda: count_sent(sql) == 4, HOLD_SECONDS, "4 sent")
        assert len(smtp.received) == 4

    times = sent_times(sql)
    assert all(
        b - a >= timedelta(milliseconds=200) - TIMESTAMP_SLACK for a, b in pairwise(times)
    ), times
    assert counted_in_window(sql, account, "1 hour") == 4


async def test_hourly_slot_frees_exactly_when_the_oldest_send_leaves_the_hour(
    sql, db_url, settings
):
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp, hourly_limit=2, daily_limit=100)
        add_history(sql, account, [3600 - 1.5, 60])  # the hour is full for 1.5 s more
        oldest = send_logs(sql)[0]["created_at"]
        insert_emails(sql, 3)
        async with running_worker(settings, db_url, account):
            await wait_until(lambda: count_sent(sql) == 1, timeout=6, message="1 row sent")
            await hold(lambda: count_sent(sql) == 1, HOLD_SECONDS, "1 sent")
        assert len(smtp.received) == 1
    [sent_at] = sent_times(sql)
    frees_at = oldest + timedelta(hours=1)
    assert frees_at - TIMESTAMP_SLACK <= sent_at < frees_at + timedelta(seconds=1)
    assert counted_in_window(sql, account, "1 hour") == 2


async def test_each_account_of_a_pool_keeps_its_own_limit(sql, db_url, settings):
    with ScriptedSMTPServer() as smtp:
        a = add_account(sql, smtp, email="a@pool.example", pool="p", hourly_limit=3)
        b = add_account(sql, smtp, email="b@pool.example", pool="p", hourly_limit=2)
        insert_emails(sql, 10, pool="p")
        async with running_worker(settings, db_url, a), running_worker(settings, db_url, b):
            await wait_until(lambda: count_sent(sql) == 5, message="5 rows sent")
            await hold(lambda: count_sent(sql) == 5, HOLD_SECONDS, "5 sent")
        assert len(smtp.received) == 5
    assert counted_in_window(sql, a, "1 hour") == 3
    assert counted_in_window(sql, b, "1 hour") == 2
    per_account = sql.execute(
        "SELECT sent_by_account_id AS acc, count(*) AS n FROM email_queue "
        "WHERE status = 'sent' GROUP BY 1"
    ).fetchall()
    assert {r["acc"]: r["n"] for r in per_account} == {a: 3, b: 2}
    assert {m.mail_from for m in smtp.received} == {"a@pool.example", "b@pool.example"}
