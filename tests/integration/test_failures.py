"""Failures as a provider produces them, answered by a real SMTP server: temporary and
permanent recipient errors, bad credentials, throttling, suppressed addresses and rows
that cannot be rendered. Checked through the rows, ``send_logs``, ``suppressions``,
``email_events``, the account, and what the server received."""

from __future__ import annotations

import socket

import pytest

from mailer.credentials import CredentialBox
from tests.support.mailer_env import (
    account_row,
    add_account,
    backing_off,
    count_sent,
    insert_emails,
    received_by_message_id,
    rows_by_id,
    running_worker,
    send_logs,
    statuses,
    wait_until,
)
from tests.support.smtp_server import ScriptedSMTPServer


def row(sql, queue_id: int) -> dict:
    return rows_by_id(sql)[queue_id]


def outcomes(sql, queue_id: int) -> list[tuple]:
    return [(log["outcome"], log["counted"], log["code"]) for log in send_logs(sql, queue_id)]


# -- temporary failures ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply", ["451 4.7.1 please try again later", "450 4.2.0 Greylisted, please try again later"]
)
async def test_temporary_failure_is_retried_then_sent(sql, db_url, settings, reply):
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp)
        smtp.reply_rcpt(reply, times=1)
        [qid] = insert_emails(sql, 1)
        async with running_worker(settings, db_url, account):
            await wait_until(lambda: statuses(sql) == {"sent": 1}, message="row sent")
        received = smtp.wait_for(1)

    sent = row(sql, qid)
    assert sent["attempts"] == 2
    assert sent["next_attempt_at"] is not None and sent["last_error"] is None
    assert outcomes(sql, qid) == [("transient", True, int(reply[:3])), ("sent", True, 250)]
    first, second = send_logs(sql, qid)
    # The retry waited for its backoff (retry_base_seconds=0.2: jittered 0.1-0.2 s).
    assert sent["next_attempt_at"] > first["created_at"]
    assert second["created_at"] >= sent["next_attempt_at"]
    assert reply[4:] in first["response"]
    # A problem of this recipient, not of the account: no account backoff.
    acc = account_row(sql, account)
    assert acc["backoff_until"] is None and acc["last_error"] is None
    # One message on the wire, carrying the Message-ID the row kept across attempts.
    assert len(received) == 1 and received[0].message["Message-ID"] == sent["message_id"]


async def test_temporary_failures_exhaust_max_attempts(sql, db_url, settings):
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp)
        smtp.reply_rcpt("450 4.2.0 mailbox busy", times=None)
        [qid] = insert_emails(sql, 1, max_attempts=2)
        async with running_worker(settings, db_url, account):
            await wait_until(lambda: statuses(sql) == {"failed": 1}, message="row failed")
        assert smtp.received == []

    failed = row(sql, qid)
    assert failed["attempts"] == 2
    assert "450" in failed["last_error"] and "mailbox busy" in failed["last_error"]
    assert outcomes(sql, qid) == [("transient", True, 450), ("transient", True, 450)]
    assert sql.execute("SELECT count(*) AS n FROM suppressions").fetchone()["n"] == 0


# -- permanent failures ---------------------------------------------------------------------


async def test_unknown_user_fails_at_once_and_suppresses_the_address(sql, db_url, settings):
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp)
        smtp.reply_rcpt("550 5.1.1 User unknown", address="ghost@example.org", times=1)
        [bounced] = insert_emails(sql, 1, to_address="ghost@example.org")
        [good] = insert_emails(sql, 1, to_address="alive@example.org")
        async with running_worker(settings, db_url, account):
            await wait_until(
                lambda: statuses(sql) == {"failed": 1, "sent": 1},
                message="bounce failed, other row sent",
            )
            # Later mail to the same address, spelled differently: never reaches the server
            # (the 550 rule is used up, so the server would accept and record it).
            [later] = insert_emails(sql, 1, to_address="Ghost@Example.ORG")
            await wait_until(
                lambda: row(sql, later)["status"] == "suppressed", message="later row suppressed"
            )
        received = smtp.received

    failed = row(sql, bounced)
    assert failed["attempts"] == 1
    assert "550" in failed["last_error"] and "User unknown" in failed["last_error"]
    assert outcomes(sql, bounced) == [("permanent", True, 550)]
    [suppression] = sql.execute("SELECT * FROM suppressions").fetchall()
    assert suppression["email"].lower() == "ghost@example.org"
    assert suppression["reason"] == "hard_bounce" and suppression["expires_at"] is None
    [event] = sql.execute("SELECT * FROM email_events").fetchall()
    assert event["queue_id"] == bounced and event["type"] == "bounce"
    assert event["data"]["code"] == 550

    suppressed = row(sql, later)
    assert suppressed["attempts"] == 0 and suppressed["sent_at"] is None
    assert "suppressed" in suppressed["last_error"]
    assert send_logs(sql, later) == []
    assert [m.rcpt_tos for m in received] == [["alive@example.org"]]
    assert received[0].message["Message-ID"] == row(sql, good)["message_id"]


async def test_mailbox_full_fails_without_suppressing(sql, db_url, settings):
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp)
        smtp.reply_rcpt("552 5.2.2 Mailbox full", address="full@example.org", times=1)
        [qid] = insert_emails(sql, 1, to_address="full@example.org")
        async with running_worker(settings, db_url, account):
            await wait_until(lambda: statuses(sql) == {"failed": 1}, message="row failed")
            # The address still exists: later mail to it goes out.
            [later] = insert_emails(sql, 1, to_address="full@example.org")
            await wait_until(lambda: row(sql, later)["status"] == "sent", message="later row sent")
        [received] = smtp.wait_for(1)

    failed = row(sql, qid)
    assert failed["attempts"] == 1 and "552" in failed["last_error"]
    assert outcomes(sql, qid) == [("permanent", True, 552)]
    assert sql.execute("SELECT count(*) AS n FROM suppressions").fetchone()["n"] == 0
    assert received.message["Message-ID"] == row(sql, later)["message_id"]


async def test_suppressed_address_is_never_sent(sql, db_url, settings):
    sql.execute(
        "INSERT INTO suppressions (email, reason, source) "
        "VALUES ('Carol@Example.org', 'unsubscribe', 'test')"
    )
    sql.execute(
        "INSERT INTO suppressions (email, reason, expires_at) "
        "VALUES ('dave@example.org', 'soft_bounce', now() - interval '1 minute')"
    )
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp)
        [carol] = insert_emails(sql, 1, to_address=" carol@EXAMPLE.org")
        [dave] = insert_emails(sql, 1, to_address="dave@example.org")  # suppression expired
        async with running_worker(settings, db_url, account):
            await wait_until(
                lambda: statuses(sql) == {"suppressed": 1, "sent": 1},
                message="one suppressed, one sent",
            )
        received = smtp.received

    suppressed = row(sql, carol)
    assert suppressed["status"] == "suppressed" and suppressed["attempts"] == 0
    assert "unsubscribe" in suppressed["last_error"]
    assert suppressed["sent_at"] is None and send_logs(sql, carol) == []
    assert [m.rcpt_tos for m in received] == [["dave@example.org"]]
    assert received[0].message["Message-ID"] == row(sql, dave)["message_id"]


# -- account-level failures -----------------------------------------------------------------


def add_auth_account(sql, smtp, settings, password: str) -> int:
    box = CredentialBox(settings.secret_key)
    return add_account(
        sql, smtp, smtp_username="mailer", smtp_password_encrypted=box.encrypt(password)
    )


async def test_bad_credentials_suspend_the_account_and_requeue_its_rows(sql, db_url, settings):
    with ScriptedSMTPServer(auth=("mailer", "right-password")) as smtp:
        account = add_auth_account(sql, smtp, settings, "wrong-password")
        ids = insert_emails(sql, 3)
        async with running_worker(settings, db_url, account) as worker:
            await wait_until(
                lambda: account_row(sql, account)["status"] == "suspended",
                message="account suspended",
            )
            await wait_until(
                lambda: statuses(sql) == {"queued": 3}, message="rows back in the queue"
            )
            # The worker stops by itself: a suspended account must not keep trying.
            await wait_until(lambda: worker.stopping, message="worker stopping")
        assert smtp.received == []

    suspended = account_row(sql, account)
    assert "authentication" in suspended["last_error"].lower()
    assert "535" in suspended["last_error"]
    assert "wrong-password" not in suspended["last_error"]
    for qid in ids:
        queued = row(sql, qid)
        assert queued["attempts"] == 0 and queued["locked_by"] is None
        assert queued["sent_at"] is None
    logs = send_logs(sql)
    assert all((log["outcome"], log["counted"]) == ("account", False) for log in logs), logs


async def test_rows_a_suspended_account_gives_back_wake_its_pools_idle_workers(
    sql, db_url, settings
):
    """Account A leases the pool's rows, then fails AUTH and is suspended: the rows it
    gives back go out through account B's idle worker at once, not at B's next poll."""
    slow_poll = settings.with_overrides(poll_seconds=120)
    with (
        ScriptedSMTPServer(auth=("mailer", "right-password")) as refusing,
        ScriptedSMTPServer() as accepting,
    ):
        refusing.greet(delay=4.0)  # A holds the rows while B starts and goes idle
        a = add_auth_account(sql, refusing, settings, "wrong-password")
        insert_emails(sql, 3)
        async with running_worker(slow_poll, db_url, a):
            await wait_until(lambda: statuses(sql) == {"sending": 3}, message="A leases them")
            b = add_account(sql, accepting, email="b@example.com")
            async with running_worker(slow_poll, db_url, b):
                registered = "SELECT count(*) AS n FROM workers WHERE account_id = %s"
                await wait_until(
                    lambda: sql.execute(registered, (b,)).fetchone()["n"] == 1,
                    message="B's worker running",
                )
                assert statuses(sql) == {"sending": 3}, "B started after A gave the rows back"
                await wait_until(
                    lambda: account_row(sql, a)["status"] == "suspended", message="A suspended"
                )
                await wait_until(lambda: len(accepting.received) == 3, timeout=10.0)
    assert statuses(sql) == {"sent": 3}
    assert {r["sent_by_account_id"] for r in sql.execute("SELECT * FROM email_queue")} == {b}


async def test_good_credentials_authenticate_and_send(sql, db_url, settings):
    with ScriptedSMTPServer(auth=("mailer", "right-password")) as smtp:
        account = add_auth_account(sql, smtp, settings, "right-password")
        [qid] = insert_emails(sql, 1)
        async with running_worker(settings, db_url, account):
            await wait_until(lambda: statuses(sql) == {"sent": 1}, message="row sent")
        [received] = smtp.wait_for(1)
    assert received.message["Message-ID"] == row(sql, qid)["message_id"]
    assert account_row(sql, account)["status"] == "active"


@pytest.mark.parametrize("reply", ["421 4.7.0 Too many messages", "451 4.7.1 rate limit exceeded"])
async def test_throttling_backs_the_account_off_without_charging_the_row(
    sql, db_url, settings, reply
):
    settings = settings.with_overrides(account_backoff_base_seconds=1.0)
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp)
        smtp.reply_rcpt(reply, times=1)
        [qid, *others] = insert_emails(sql, 3)
        seen: list[dict] = []
        async with running_worker(settings, db_url, account):
            await wait_until(
                lambda: backing_off(sql, account, seen),
                message="account backoff_until in the future",
            )
            assert count_sent(sql) == 0
            await wait_until(lambda: statuses(sql) == {"sent": 3}, message="rows sent after")
        received = smtp.wait_for(3)

    code = int(reply[:3])
    assert reply[4:] in seen[0]["last_error"]
    sent = row(sql, qid)
    assert sent["attempts"] == 1  # the throttled attempt was refunded
    assert sent["sent_at"] >= seen[0]["backoff_until"]
    assert outcomes(sql, qid) == [("account", False, code), ("sent", True, 250)]
    # The rest of the batch went back untouched and was sent after the backoff too.
    for other in others:
        assert row(sql, other)["attempts"] == 1
        assert row(sql, other)["sent_at"] >= seen[0]["backoff_until"]
        assert outcomes(sql, other) == [("sent", True, 250)]
    assert sorted(m.message["Message-ID"] for m in received) == sorted(
        row(sql, q)["message_id"] for q in [qid, *others]
    )
    assert account_row(sql, account)["backoff_until"] is None  # cleared by the success


async def test_unreachable_server_backs_off_without_charging_rows(sql, db_url, settings):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp, smtp_port=dead_port)
        ids = insert_emails(sql, 3)
        async with running_worker(settings, db_url, account):
            await wait_until(
                lambda: account_row(sql, account)["backoff_until"] is not None,
                message="account backing off",
            )
            down = account_row(sql, account)
            assert "cannot connect" in down["last_error"]
            await wait_until(lambda: len(send_logs(sql)) >= 2, message="a second try")
            assert all(
                r["attempts"] == 0 for r in rows_by_id(sql).values() if r["status"] == "queued"
            )
            assert count_sent(sql) == 0 and "failed" not in statuses(sql)
            # The admin points the account at a working server: no restart needed.
            sql.execute(
                "UPDATE sender_accounts SET smtp_port = %s WHERE id = %s", (smtp.port, account)
            )
            await wait_until(
                lambda: statuses(sql) == {"sent": 3},
                timeout=5,
                message="rows sent once the server is reachable",
            )
        received = smtp.wait_for(3)

    rows = rows_by_id(sql)
    assert all(rows[q]["attempts"] == 1 for q in ids)
    assert {m.message["Message-ID"] for m in received} == {rows[q]["message_id"] for q in ids}
    failures = [log for log in send_logs(sql) if log["outcome"] != "sent"]
    assert failures and all(
        (log["outcome"], log["counted"]) == ("account", False) for log in failures
    )
    assert account_row(sql, account)["backoff_until"] is None


# -- malformed rows -------------------------------------------------------------------------


async def test_malformed_rows_fail_alone_and_the_worker_keeps_sending(sql, db_url, settings):
    settings = settings.with_overrides(max_message_bytes=20_000)
    broken = sql.execute(
        "INSERT INTO templates (name, subject, html_body) "
        "VALUES ('broken', 'Hi', '<p>{{ unclosed</p>') RETURNING id"
    ).fetchone()
    greeting = sql.execute(
        "INSERT INTO templates (name, subject, text_body) "
        "VALUES ('greeting', 'Hi {{ name }}', 'Dear {{ name }}') "
        "RETURNING id"
    ).fetchone()
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp)
        [good1] = insert_emails(sql, 1, to_address="good1@example.org")
        [bad_address] = insert_emails(sql, 1, to_address="not an address")
        [bad_name] = insert_emails(
            sql, 1, to_address="eve@example.org", to_name="Eve\r\nBcc: victim@example.net"
        )
        [bad_header] = insert_emails(
            sql,
            1,
            to_address="frank@example.org",
            headers={"X-Campaign": "spring\r\nBcc: victim@example.net"},
        )
        [bad_template] = insert_emails(
            sql,
            1,
            to_address="gina@example.org",
            subject=None,
            html_body=None,
            template_id=broken["id"],
        )
        [undefined] = insert_emails(
            sql,
            1,
            to_address="hank@example.org",
            subject=None,
            html_body=None,
            template_id=greeting["id"],
            variables={"other": 1},
        )
        [reserved] = insert_emails(
            sql, 1, to_address="jack@example.org", headers={"From": "ceo@bank.example"}
        )
        [oversize] = insert_emails(
            sql, 1, to_address="kim@example.org", html_body="<p>" + "x" * 30_000 + "</p>"
        )
        [good2] = insert_emails(
            sql,
            1,
            to_address="good2@example.org",
            subject=None,
            html_body=None,
            template_id=greeting["id"],
            variables={"name": "Ida"},
        )
        [unicode] = insert_emails(
            sql,
            1,
            to_address="lea@example.org",
            to_name="Léa Zoë",
            subject="Grüße ✓",
            text_body="Ça va ?",
            html_body=None,
            headers={"X-Campaign": "été"},
        )
        async with running_worker(settings, db_url, account) as worker:
            await wait_until(
                lambda: statuses(sql) == {"sent": 3, "failed": 7}, message="3 sent, 7 failed"
            )
            # Still running and still sending.
            [good3] = insert_emails(sql, 1, to_address="good3@example.org")
            await wait_until(lambda: row(sql, good3)["status"] == "sent", message="good3 sent")
            assert not worker.stopping
        received = smtp.received

    errors = {
        qid: row(sql, qid)["last_error"]
        for qid in (bad_address, bad_name, bad_header, bad_template, undefined, reserved, oversize)
    }
    assert "invalid to_address" in errors[bad_address]
    assert "CR/LF" in errors[bad_name]
    assert "CR/LF" in errors[bad_header]
    assert "template error" in errors[bad_template]
    assert "'name' is undefined" in errors[undefined]
    assert "'From'" in errors[reserved] and "cannot be overridden" in errors[reserved]
    assert "20000-byte limit" in errors[oversize]
    for qid in errors:
        assert outcomes(sql, qid) == [("invalid", False, None)]
    assert sorted(r for m in received for r in m.rcpt_tos) == [
        "good1@example.org",
        "good2@example.org",
        "good3@example.org",
        "lea@example.org",
    ]
    by_id = received_by_message_id(smtp)
    for qid in (good1, good2, good3, unicode):
        assert len(by_id[row(sql, qid)["message_id"]]) == 1
    assert all(b"victim" not in m.data for m in received)
    ida = by_id[row(sql, good2)["message_id"]][0].message
    assert ida["Subject"] == "Hi Ida" and ida.get_content().strip() == "Dear Ida"
    lea = by_id[row(sql, unicode)["message_id"]][0].message
    assert lea["Subject"] == "Grüße ✓" and lea["X-Campaign"] == "été"
    assert lea["To"].addresses[0].display_name == "Léa Zoë"
    assert lea.get_content().strip() == "Ça va ?"
    assert count_sent(sql) == 4
