"""Addresses on internal and special-use domains go out through a real worker and SMTP
server by default; ``MAILER_REJECT_SPECIAL_USE_DOMAINS=1`` fails such rows, clearly."""

from __future__ import annotations

from dataclasses import replace

from tests.support.mailer_env import (
    account_row,
    add_account,
    insert_emails,
    rows_by_id,
    running_worker,
    statuses,
    wait_until,
)
from tests.support.smtp_server import ScriptedSMTPServer


async def test_special_use_domains_are_sent_by_default(sql, db_url, settings):
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp, email="sender@relay.internal")
        [row] = insert_emails(sql, 1, to_address="someone@host.test")
        async with running_worker(settings, db_url, account):
            await wait_until(lambda: statuses(sql) == {"sent": 1}, message="row sent")
        [message] = smtp.received
    assert (message.mail_from, message.rcpt_tos) == ("sender@relay.internal", ["someone@host.test"])
    assert rows_by_id(sql)[row]["last_error"] is None
    assert account_row(sql, account)["status"] == "active"


async def test_special_use_domains_fail_the_row_when_refused(sql, db_url, settings):
    settings = replace(settings, reject_special_use_domains=True)
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp, email="sender@example.com")
        [bad] = insert_emails(sql, 1, to_address="someone@host.test")
        [good] = insert_emails(sql, 1, to_address="someone@example.org")
        async with running_worker(settings, db_url, account):
            await wait_until(lambda: statuses(sql) == {"sent": 1, "failed": 1})
        assert [m.rcpt_tos for m in smtp.received] == [["someone@example.org"]]
    rows = rows_by_id(sql)
    assert rows[good]["status"] == "sent"
    assert rows[bad]["last_error"].startswith("invalid to_address 'someone@host.test':")
    assert "special-use" in rows[bad]["last_error"]
    assert "MAILER_REJECT_SPECIAL_USE_DOMAINS" in rows[bad]["last_error"]


async def test_an_internationalized_local_part_needs_a_server_offering_smtputf8(
    sql, db_url, settings
):
    """A non-ASCII local part goes out with SMTPUTF8 where the server offers it and fails
    its row with a clear error where it does not; an IDN domain goes out in punycode; the
    account and the worker carry on."""
    for offered in (True, False):
        sql.execute("DELETE FROM email_queue")
        sql.execute("DELETE FROM sender_accounts")
        with ScriptedSMTPServer(smtputf8=offered) as smtp:
            account = add_account(sql, smtp, email="sender@example.com")
            [intl] = insert_emails(sql, 1, to_address="jöran@bücher.example")
            [idn] = insert_emails(sql, 1, to_address="bob@bücher.example")
            expected = {"sent": 2} if offered else {"sent": 1, "failed": 1}
            async with running_worker(settings, db_url, account):
                await wait_until(lambda: statuses(sql) == expected)  # noqa: B023
            sent_to = sorted(m.rcpt_tos[0] for m in smtp.received)
        rows = rows_by_id(sql)
        assert rows[idn]["status"] == "sent"
        assert account_row(sql, account)["status"] == "active"
        if offered:
            assert sent_to == ["bob@xn--bcher-kva.example", "jöran@xn--bcher-kva.example"]
        else:
            assert sent_to == ["bob@xn--bcher-kva.example"]
            assert "SMTPUTF8" in rows[intl]["last_error"]
