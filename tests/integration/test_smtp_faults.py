"""Faults at the SMTP server the worker must account for (issue 7): a reply lost after
the end of DATA when the operator asked to fail such rows, and pacing right after a new
connection to a server that greets slowly (before the fix the pacing clock started
before connecting, so the greeting was eaten from the gap). The retried case is in
test_smtp_sender.py."""

from __future__ import annotations

import itertools

from tests.support.mailer_env import (
    add_account,
    count_sent,
    insert_emails,
    rows_by_id,
    running_worker,
    send_logs,
    statuses,
    wait_until,
)
from tests.support.smtp_server import ScriptedSMTPServer


async def test_a_reply_lost_after_data_fails_the_row_when_so_configured(sql, db_url, settings):
    settings = settings.with_overrides(unknown_outcome="fail", smtp_timeout_seconds=0.5)
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp)
        [qid] = insert_emails(sql, 1)
        smtp.delay_data(1.5)  # accepts, but answers after the worker gave up
        async with running_worker(settings, db_url, account):
            await wait_until(lambda: statuses(sql) == {"failed": 1}, message="the row failed")
        await smtp.wait_for_async(1)
    logs = send_logs(sql, qid)
    assert [(log["outcome"], log["counted"]) for log in logs] == [("unknown", True)]
    row = rows_by_id(sql)[qid]
    assert row["attempts"] == 1 and "may have been delivered" in row["last_error"]


async def test_min_delay_holds_right_after_a_new_connection_to_a_slow_greeter(
    sql, db_url, settings
):
    settings = settings.with_overrides(messages_per_connection=2)
    with ScriptedSMTPServer() as smtp:
        smtp.greet(delay=0.03, times=None)
        account = add_account(sql, smtp, min_delay_ms=50)
        insert_emails(sql, 10)
        async with running_worker(settings, db_url, account):
            await wait_until(lambda: count_sent(sql) == 10, message="all sent")
        times = list(smtp.mail_from_times)
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(gaps) == 9 and min(gaps) >= 0.050, gaps
