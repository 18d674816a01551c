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


async def test_a_reconnection_refused_gives_back_the_mark_of_the_next_row(sql, db_url, settings):
    """The connection drops at the first message's DATA (the second row was marked
    meanwhile) and the server refuses the reconnection: the account backs off, and the
    second row gets its mark back before that failure is written against it."""
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp)
        ids = insert_emails(sql, 6)
        smtp.greet(delay=0.0)  # the first connection is greeted as usual
        smtp.greet("421 4.7.0 Try again later")
        smtp.drop_connection(stage="data")
        seen: list[dict] = []
        async with running_worker(settings, db_url, account):
            await wait_until(lambda: backing_off(sql, account, seen), message="backing off")
            await wait_until(lambda: statuses(sql) == {"sent": 6}, message="all sent")
        smtp.wait_for(6)

    rows = rows_by_id(sql)
    assert rows[ids[0]]["attempts"] == 2  # the dropped attempt, then the one that went
    assert [rows[q]["attempts"] for q in ids[1:]] == [1] * 5
    assert [log["outcome"] for log in send_logs(sql, ids[1])][-1] == "sent"


async def test_a_suppression_committed_while_a_send_stalls_binds_the_rows_marked_ahead(
    sql, db_url, settings
):
    """Rows marked ahead while the third message was on the wire are not sent on those
    marks once the marks are old (the server took 0.8 s): they are marked again, and
    those marks see the suppression committed in between."""
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp)
        ids = insert_emails(sql, 6)
        smtp.delay_data(0.0, times=2)
        smtp.delay_data(0.8)
        async with running_worker(settings, db_url, account):
            await wait_until(
                lambda: rows_by_id(sql)[ids[3]]["attempt_started_at"] is not None,
                message="the fourth row marked ahead",
            )
            assert rows_by_id(sql)[ids[2]]["status"] == "sending"  # still on the wire
            sql.execute(
                "INSERT INTO suppressions (email, reason, source) "
                "VALUES ('user3@example.org', 'manual', 'test')"
            )
            await wait_until(
                lambda: statuses(sql) == {"sent": 5, "suppressed": 1}, message="settled"
            )
        received = smtp.wait_for(5)

    assert sorted(m.rcpt_tos[0] for m in received) == [
        f"user{i}@example.org" for i in (0, 1, 2, 4, 5)
    ]
    rows = rows_by_id(sql)
    assert rows[ids[3]]["status"] == "suppressed"
    assert rows[ids[3]]["attempts"] == 0  # the early mark's attempt was given back
    assert [rows[q]["attempts"] for q in ids if q != ids[3]] == [1] * 5
    assert send_logs(sql, ids[3]) == []
