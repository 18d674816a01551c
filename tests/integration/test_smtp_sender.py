"""The SMTP sender against a real (scripted aiosmtpd) server: size limits, lost replies
after DATA, pacing on MAIL FROM, SMTPUTF8 and IDN, the EHLO name, greeting refusals,
server-wide temporary failures, provider throttles and private-CA TLS. Worker tests are
checked through rows, send_logs, suppressions and the account, as an operator sees them."""

from __future__ import annotations

import datetime
import logging
import time

import pytest

from mailer.credentials import CredentialBox
from mailer.errors import AccountError, PermanentDeliveryError, UnknownOutcomeError
from mailer.models import SenderAccount
from mailer.render import RenderedMessage
from mailer.senders.smtp import SmtpSender
from tests.support.mailer_env import (
    account_row,
    add_account,
    backing_off,
    insert_emails,
    received_by_message_id,
    rows_by_id,
    running_worker,
    send_logs,
    statuses,
    wait_until,
)
from tests.support.smtp_server import ScriptedSMTPServer
from tests.support.tls import make_ca_and_server_cert


def logs_of(sql, queue_id: int) -> list[tuple]:
    return [(log["outcome"], log["counted"], log["code"]) for log in send_logs(sql, queue_id)]


def suppressions(sql) -> list[dict]:
    return sql.execute("SELECT * FROM suppressions").fetchall()


def account_for(smtp: ScriptedSMTPServer, **fields: object) -> SenderAccount:
    values: dict[str, object] = {
        "id": 1,
        "email": "sender@example.com",
        "display_name": None,
        "backend": "smtp",
        "status": "active",
        "daily_limit": 1000,
        "hourly_limit": None,
        "min_delay_ms": 0,
        "pool": "default",
        "smtp_host": smtp.host,
        "smtp_port": smtp.port,
        "smtp_username": None,
        "smtp_security": "none",
        "smtp_password_encrypted": None,
        "last_error": None,
        "backoff_until": None,
        "updated_at": datetime.datetime.now(datetime.UTC),
    } | fields
    return SenderAccount(**values)  # type: ignore[arg-type]


def message(recipient: str = "a@example.org", body: bytes = b"Hello\r\n") -> RenderedMessage:
    head = f"From: sender@example.com\r\nSubject: t\r\nMessage-ID: <{time.time_ns()}@x>\r\n\r\n"
    return RenderedMessage("sender@example.com", recipient, head.encode() + body)


# -- size ------------------------------------------------------------------------------------


async def test_a_message_over_the_advertised_size_fails_alone(sql, db_url, settings):
    with ScriptedSMTPServer(size_limit=4000) as smtp:
        account = add_account(sql, smtp)
        [big] = insert_emails(sql, 1, html_body="<p>" + "x" * 6000 + "</p>", priority=5)
        small = insert_emails(sql, 3)
        async with running_worker(settings, db_url, account):
            await wait_until(lambda: statuses(sql) == {"failed": 1, "sent": 3}, message="settled")
        received = smtp.received

    failed = rows_by_id(sql)[big]
    assert failed["attempts"] == 1
    assert "too large" in failed["last_error"] and "4000" in failed["last_error"]
    assert logs_of(sql, big) == [("permanent", False, None)]  # refused before MAIL FROM
    assert suppressions(sql) == []
    acc = account_row(sql, account)
    assert acc["status"] == "active" and acc["backoff_until"] is None
    assert sorted(m.rcpt_tos[0] for m in received) == [f"user{i}@example.org" for i in range(3)]
    assert all(rows_by_id(sql)[q]["attempts"] == 1 for q in small)


async def test_a_size_refusal_at_mail_from_fails_the_row_not_the_account(sql, db_url, settings):
    with ScriptedSMTPServer(size_limit=0) as smtp:  # advertises no SIZE
        account = add_account(sql, smtp)
        smtp.reply_mail("552 5.3.4 Message size exceeds fixed maximum message size", times=1)
        [big, *_small] = insert_emails(sql, 3)
        async with running_worker(settings, db_url, account):
            await wait_until(lambda: statuses(sql) == {"failed": 1, "sent": 2}, message="settled")

    failed = rows_by_id(sql)[big]
    assert failed["attempts"] == 1 and "5.3.4" in failed["last_error"]
    assert [log["response"] for log in send_logs(sql, big)] == [
        "message too large for the server: 5.3.4 Message size exceeds fixed maximum message size"
    ]
    assert logs_of(sql, big) == [("permanent", True, 552)]
    assert account_row(sql, account)["status"] == "active" and suppressions(sql) == []


# -- outcome unknown (issue 7, defect 6) ------------------------------------------------------


async def test_a_reply_lost_after_the_data_is_an_unknown_outcome(sql, db_url, settings):
    settings = settings.with_overrides(smtp_timeout_seconds=0.5)
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp)
        smtp.delay_data(1.5, times=1)  # accepts, but answers after we gave up
        [qid] = insert_emails(sql, 1)
        async with running_worker(settings, db_url, account):
            await wait_until(lambda: statuses(sql) == {"sent": 1}, message="row sent")
            copies = await smtp.wait_for_async(2)

    logs = send_logs(sql, qid)
    assert [(log["outcome"], log["counted"]) for log in logs] == [
        ("unknown", True),
        ("sent", True),
    ]
    assert "may have been delivered" in logs[0]["response"]
    # Both copies carry the row's Message-ID: the receiver can de-duplicate.
    row = rows_by_id(sql)[qid]
    assert received_by_message_id(smtp).keys() == {row["message_id"]} and len(copies) == 2


async def test_sender_raises_unknown_outcome_only_after_the_final_dot(settings):
    with ScriptedSMTPServer() as smtp:
        sender = SmtpSender(account_for(smtp), settings, CredentialBox("k"))
        smtp.drop_connection(stage="rcpt")
        with pytest.raises(Exception) as before:
            await sender.send(message())
        assert not isinstance(before.value, UnknownOutcomeError)
        smtp.drop_connection(stage="data")
        with pytest.raises(UnknownOutcomeError) as after:
            await sender.send(message())
        assert after.value.mail_from_at is not None and after.value.reached_provider
        result = await sender.send(message())  # reconnects
        await sender.close()
    assert result.code == 250


# -- pacing on MAIL FROM (issue 7, defect 8) --------------------------------------------------


async def test_ready_connects_before_pacing_and_mail_from_at_is_when_the_server_answered(
    settings,
):
    with ScriptedSMTPServer() as smtp:
        smtp.greet(delay=0.3)
        sender = SmtpSender(account_for(smtp), settings, CredentialBox("k"))
        t0 = time.monotonic()
        await sender.ready()
        assert time.monotonic() - t0 >= 0.3  # the slow greeting is paid here
        before = time.monotonic()
        result = await sender.send(message())
        after = time.monotonic()
        smtp.reply_rcpt("550 5.1.1 <b@example.org>: Recipient address rejected: User unknown")
        with pytest.raises(PermanentDeliveryError) as refused:
            await sender.send(message("b@example.org"))
        await sender.close()
        [first_mail, second_mail] = smtp.mail_from_times
        assert smtp.connections == 1
    assert result.mail_from_at is not None and before <= result.mail_from_at <= after
    assert result.mail_from_at >= first_mail  # the reply came after the server saw it
    assert refused.value.mail_from_at is not None and refused.value.mail_from_at >= second_mail


async def test_no_mail_from_at_when_the_transaction_never_started(settings):
    with ScriptedSMTPServer() as smtp:
        smtp.greet("421 4.7.0 Too many connections, try later")
        sender = SmtpSender(account_for(smtp), settings, CredentialBox("k"))
        with pytest.raises(AccountError) as refused:
            await sender.send(message())
    assert refused.value.mail_from_at is None and refused.value.code == 421


# -- SMTPUTF8 and IDN (issue 7, defect 5) ------------------------------------------------------


async def test_non_ascii_local_part_uses_smtputf8_when_offered(settings):
    with ScriptedSMTPServer(smtputf8=True) as smtp:
        sender = SmtpSender(account_for(smtp), settings, CredentialBox("k"))
        await sender.send(message("josé@example.org"))
        await sender.close()
        [received] = smtp.received
    assert received.rcpt_tos == ["josé@example.org"]


async def test_non_ascii_local_part_fails_clearly_without_smtputf8(settings):
    with ScriptedSMTPServer(smtputf8=False) as smtp:
        sender = SmtpSender(account_for(smtp), settings, CredentialBox("k"))
        with pytest.raises(PermanentDeliveryError) as refused:
            await sender.send(message("josé@example.org"))
        # An IDN domain with an ASCII local part goes out as punycode.
        await sender.send(message("user@bücher.example"))
        await sender.close()
        received = smtp.received
    assert "SMTPUTF8" in str(refused.value) and not refused.value.hard_bounce
    assert not refused.value.reached_provider
    assert [m.rcpt_tos for m in received] == [["user@xn--bcher-kva.example"]]


# -- EHLO name (issue 8, item 3) ---------------------------------------------------------------


async def test_ehlo_name_from_the_setting_and_the_account(sql, db_url, settings, caplog):
    settings = settings.with_overrides(ehlo_hostname="mailer1.example.net")
    with ScriptedSMTPServer() as smtp:
        sender = SmtpSender(account_for(smtp), settings, CredentialBox("k"))
        await sender.send(message())
        await sender.close()
        own = SmtpSender(
            account_for(smtp, ehlo_hostname="out.shop.example"), settings, CredentialBox("k")
        )
        await own.send(message())
        await own.close()
        with caplog.at_level(logging.WARNING, logger="mailer.smtp"):
            SmtpSender(account_for(smtp, ehlo_hostname="mailhost"), settings, CredentialBox("k"))
    assert smtp.ehlo_names == ["mailer1.example.net", "out.shop.example"]
    assert "'mailhost' is not a fully qualified domain name" in caplog.text


# -- greeting refusals (issue 8, item 7) -------------------------------------------------------


async def test_a_421_greeting_is_logged_with_its_code_and_text(sql, db_url, settings):
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp)
        smtp.greet("421 4.7.0 mx.example Error: too many connections from 127.0.0.1")
        [qid] = insert_emails(sql, 1)
        async with running_worker(settings, db_url, account):
            await wait_until(lambda: statuses(sql) == {"sent": 1}, message="sent after backoff")

    first = send_logs(sql, qid)[0]
    assert (first["outcome"], first["code"]) == ("account", 421)
    assert first["response"] == (
        "server not ready: 4.7.0 mx.example Error: too many connections from 127.0.0.1"
    )
    assert rows_by_id(sql)[qid]["attempts"] == 1  # the refused attempt was refunded


# -- server-wide temporary failures (issue 8, item 4) ------------------------------------------


async def test_the_same_4xx_for_several_recipients_backs_the_account_off(sql, db_url, settings):
    settings = settings.with_overrides(account_backoff_base_seconds=1.0)
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp)
        smtp.reply_rcpt("451 4.7.0 Temporary local problem - please try later", times=None)
        ids = insert_emails(sql, 6)
        seen: list[dict] = []
        async with running_worker(settings, db_url, account):
            # settled: a row marked ahead (lookahead) is given back with its attempt
            await wait_until(
                lambda: backing_off(sql, account, seen) and "sending" not in statuses(sql),
                message="account backing off, its rows given back",
            )
            attempts_then = {q: r["attempts"] for q, r in rows_by_id(sql).items()}
            smtp.reset_script()
            await wait_until(lambda: statuses(sql) == {"sent": 6}, message="all sent")

    assert "3 different recipients in a row" in seen[0]["last_error"]
    assert "451" in seen[0]["last_error"]
    assert set(attempts_then.values()) == {0}  # the storm's attempts were refunded
    assert all(rows_by_id(sql)[q]["attempts"] == 1 for q in ids)


async def test_a_system_class_4xx_is_the_accounts_at_once(sql, db_url, settings):
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp)
        smtp.reply_rcpt("451 4.3.5 Server configuration error", times=1)
        [qid] = insert_emails(sql, 1)
        async with running_worker(settings, db_url, account):
            await wait_until(lambda: statuses(sql) == {"sent": 1}, message="sent")
    assert logs_of(sql, qid) == [("account", False, 451), ("sent", True, 250)]
    assert rows_by_id(sql)[qid]["attempts"] == 1


# -- adaptive rate per provider (issue 8, item 8) ----------------------------------------------


async def test_a_provider_throttle_slows_only_that_provider(sql, db_url, settings):
    with ScriptedSMTPServer() as smtp:
        account = add_account(sql, smtp)
        smtp.reply_rcpt("450 4.7.28 rate limited, slow down", address="g3@gmail.com")
        first = insert_emails(sql, 3, to_address=lambda i: f"g{i + 1}@gmail.com")
        async with running_worker(settings, db_url, account):
            await wait_until(
                lambda: sql.execute("SELECT count(*) AS n FROM send_rates").fetchone()["n"] == 1,
                message="gmail's rate cut",
            )
            others = insert_emails(sql, 5, to_address=lambda i: f"o{i}@example.org")
            await wait_until(
                lambda: all(rows_by_id(sql)[q]["status"] == "sent" for q in others),
                message="other destinations keep going",
            )
            throttled = rows_by_id(sql)[first[2]]

    [rate] = sql.execute("SELECT * FROM send_rates").fetchall()
    assert rate["destination"] == "gmail" and 0 < rate["per_minute"] <= 1.5
    assert "rate limited" in rate["reason"]
    assert throttled["status"] == "queued" and throttled["attempts"] == 0
    assert throttled["next_attempt_at"] is not None
    assert account_row(sql, account)["backoff_until"] is None  # the account did not stop


# -- TLS to a private relay (issue 8, item 6) --------------------------------------------------


async def test_private_ca_tls(sql, db_url, settings, tmp_path, caplog):
    ca_file, server_context = make_ca_and_server_cert(tmp_path)
    with ScriptedSMTPServer(tls_context=server_context) as smtp:
        untrusted = add_account(sql, smtp, email="a@example.com", smtp_security="starttls")
        insert_emails(sql, 1, account_id=untrusted)
        async with running_worker(settings, db_url, untrusted):
            await wait_until(
                lambda: account_row(sql, untrusted)["status"] == "suspended",
                message="suspended",
            )
        error = account_row(sql, untrusted)["last_error"]
        assert "certificate verification failed" in error and "--tls-ca-file" in error
        assert statuses(sql) == {"queued": 1} and rows_by_id(sql).popitem()[1]["attempts"] == 0

        sql.execute(
            "UPDATE sender_accounts SET smtp_tls_ca_file = %s, status = 'active', "
            "last_error = NULL WHERE id = %s",
            (str(ca_file), untrusted),
        )
        async with running_worker(settings, db_url, untrusted):
            await wait_until(lambda: statuses(sql) == {"sent": 1}, message="sent with the CA")

        careless = add_account(
            sql, smtp, email="b@example.com", smtp_security="starttls", smtp_tls_verify=False
        )
        insert_emails(sql, 1, account_id=careless)
        with caplog.at_level(logging.WARNING, logger="mailer.smtp"):
            async with running_worker(settings, db_url, careless):
                await wait_until(lambda: statuses(sql) == {"sent": 2}, message="sent unverified")
        assert len(smtp.received) == 2
    assert "TLS certificate verification is OFF" in caplog.text


async def test_sender_tls_with_a_missing_ca_file_is_a_config_error(settings, tmp_path):
    with ScriptedSMTPServer() as smtp:
        account = account_for(
            smtp, smtp_security="starttls", smtp_tls_ca_file=str(tmp_path / "gone.pem")
        )
        with pytest.raises(AccountError) as bad:
            await SmtpSender(account, settings, CredentialBox("k")).ready()
    assert bad.value.kind == "config" and "gone.pem" in str(bad.value)


async def test_starttls_against_a_plain_server_says_which_setting_to_change(settings):
    with ScriptedSMTPServer() as smtp:  # no STARTTLS offered, like `mailer sink`
        sender = SmtpSender(
            account_for(smtp, smtp_security="starttls"), settings, CredentialBox("k")
        )
        with pytest.raises(AccountError) as caught:
            await sender.ready()
    assert caught.value.kind == "config"  # suspends the account instead of backing off forever
    assert "does not offer STARTTLS" in str(caught.value)
    assert "`mailer accounts edit 1 --smtp-security none`" in str(caught.value)


async def test_closing_a_tls_connection_closes_its_socket_before_returning(settings, tmp_path):
    """After QUIT the socket under TLS is closed at once, as smtplib does, instead of when
    the server's close_notify arrives: a worker that stops right after would otherwise
    leave the socket open behind its event loop."""
    ca_file, server_context = make_ca_and_server_cert(tmp_path)
    with ScriptedSMTPServer(tls_context=server_context) as smtp:
        account = account_for(smtp, smtp_security="starttls", smtp_tls_ca_file=str(ca_file))
        sender = SmtpSender(account, settings, CredentialBox("k"))
        await sender.ready()
        client = sender._client
        assert client is not None and client.get_transport_info("sslcontext") is not None
        raw_socket = client.get_transport_info("socket")
        await sender.close()
        assert raw_socket.fileno() == -1
