"""The next row is marked in flight while the current message is on the wire
(mailer/lookahead.py): when the batch stops after that send, the mark is taken back, so
the row keeps all its attempts and is logged only when it is really sent."""

from __future__ import annotations

from tests.support.mailer_env import (
    add_account,
    backing_off,
    insert_emails,
    rows_by_id,
    running_worker,
    send_logs,
    statuses,
    wait_until,
)
from tests.support.smtp_server import ScriptedSMTPServer


async def test_a_backoff_mid_batch_gives_back_the_mark_of_the_next_row(sql, db_url, settings):
    settings = settings.with_overrides(account_backoff_base_seconds=1.0)
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp)
        ids = insert_emails(sql, 6)
        smtp.reply_rcpt("421 4.3.2 Service shutting down", address="user2@example.org")
        seen: list[dict] = []
        async with running_worker(settings, db_url, account):
            await wait_until(lambda: backing_off(sql, account, seen), message="backing off")
            # The batch went back: nothing of it is left marked in flight.
            held = [r for r in rows_by_id(sql).values() if r["attempt_started_at"] is not None]
            assert held == []
            await wait_until(lambda: statuses(sql) == {"sent": 6}, message="all sent")
        received = smtp.wait_for(6)

    rows = rows_by_id(sql)
    assert len(received) == 6
    # The refused attempt was refunded; the row marked ahead of it got its mark back.
    assert [rows[q]["attempts"] for q in ids] == [1] * 6
    assert [[log["outcome"] for log in send_logs(sql, q)] for q in ids[3:]] == [["sent"]] * 3
