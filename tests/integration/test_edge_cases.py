"""Edge cases a reviewer found: templates that raise, suppressions that arrive after the
claim, hard bounces over a lapsed soft bounce, a live worker's expired leases, a backoff
that repeats for days."""

from __future__ import annotations

from mailer.db import Database
from mailer.lease import LeaseKeeper
from tests.support.mailer_env import (
    add_account,
    count_sent,
    insert_emails,
    rows_by_id,
    running_worker,
    statuses,
    wait_until,
)
from tests.support.smtp_server import ScriptedSMTPServer


async def test_a_template_that_raises_fails_its_row_and_the_worker_carries_on(
    sql, db_url, settings
):
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp)
        [bad] = insert_emails(sql, 1, html_body="{{ 1 / 0 }}", variables={})
        [fmt] = insert_emails(sql, 1, html_body="{{ '%d' % 'a' }}", variables={})
        good = insert_emails(sql, 2)
        async with running_worker(settings, db_url, account):
            await wait_until(lambda: statuses(sql) == {"failed": 2, "sent": 2})
        assert len(smtp.received) == 2
    rows = rows_by_id(sql)
    assert "ZeroDivisionError" in rows[bad]["last_error"]
    assert "TypeError" in rows[fmt]["last_error"]
    assert all(rows[g]["status"] == "sent" for g in good)


async def test_an_address_suppressed_after_the_claim_is_not_sent_to(sql, db_url, settings):
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp, min_delay_ms=600)
        _first, second = insert_emails(sql, 2, to_address=lambda i: f"reader{i}@example.org")
        async with running_worker(settings, db_url, account):
            await wait_until(lambda: count_sent(sql) == 1, message="first row sent")
            # the second row is already claimed, waiting for its slot
            assert rows_by_id(sql)[second]["status"] == "sending"
            sql.execute(
                "INSERT INTO suppressions (email, reason) "
                "VALUES ('READER1@example.org', 'unsubscribe')"
            )
            await wait_until(lambda: statuses(sql) == {"sent": 1, "suppressed": 1})
        assert [m.rcpt_tos for m in smtp.received] == [["reader0@example.org"]]
    row = rows_by_id(sql)[second]
    assert row["attempts"] == 0 and "unsubscribe" in row["last_error"]


async def test_a_hard_bounce_replaces_a_lapsed_soft_bounce(sql, db_url, settings):
    sql.execute(
        "INSERT INTO suppressions (email, reason, expires_at) "
        "VALUES ('gone@example.org', 'soft_bounce', now() - interval '1 hour')"
    )
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp)
        smtp.reply_rcpt("550 5.1.1 <gone@example.org>: Recipient address rejected: User unknown")
        insert_emails(sql, 1, to_address="gone@example.org")
        async with running_worker(settings, db_url, account):
            await wait_until(lambda: statuses(sql) == {"failed": 1})
    row = sql.execute("SELECT reason, expires_at FROM suppressions").fetchone()
    assert row == {"reason": "hard_bounce", "expires_at": None}


async def test_expired_leases_of_a_live_worker_are_not_taken(sql, db_url, settings):
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp, min_delay_ms=5000)
        insert_emails(sql, 3)
        async with running_worker(settings, db_url, account):
            await wait_until(lambda: count_sent(sql) == 1, message="first row sent")
            # its heartbeat stalls (as on a blocked event loop): the leases run out
            sql.execute(
                "UPDATE email_queue SET locked_until = now() - interval '1 minute' "
                "WHERE status = 'sending'"
            )
            async with Database(db_url) as db:
                keeper = LeaseKeeper(db, "other-worker", settings.home, 3)
                recovered = await keeper.recover_expired_leases()
            assert (recovered.requeued, recovered.in_flight) == (0, 0)
            assert statuses(sql) == {"sent": 1, "sending": 2}


async def test_a_backoff_repeated_for_days_does_not_overflow(sql, db_url, settings):
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp)
    sql.execute("UPDATE sender_accounts SET backoff_count = 5000 WHERE id = %s", [account])
    async with Database(db_url) as db:
        from mailer.accounts import AccountManager

        until = await AccountManager(db).back_off(
            account, "backing off: down", base_seconds=30, max_seconds=900
        )
    row = sql.execute("SELECT backoff_until - now() AS wait FROM sender_accounts").fetchone()
    assert until is not None and row["wait"].total_seconds() <= 900


async def test_an_unusable_account_email_suspends_the_account_not_the_rows(sql, db_url, settings):
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp, email="news@@shop.example")
        ids = insert_emails(sql, 3)
        async with running_worker(settings, db_url, account) as worker:
            await wait_until(lambda: worker.stopping, message="worker stops")
        assert smtp.received == []
    row = sql.execute("SELECT status, last_error FROM sender_accounts").fetchone()
    assert row["status"] == "suspended" and "invalid account email" in row["last_error"]
    rows = rows_by_id(sql)
    assert all(rows[i]["status"] == "queued" and rows[i]["attempts"] == 0 for i in ids)
