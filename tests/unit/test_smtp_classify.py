"""How SMTP replies map to Mailer's error classes, with the reply texts Postfix 3.7 (and
the big providers) really send. The enhanced status code decides; text only without one."""

from __future__ import annotations

import ssl

import aiosmtplib
import pytest

from mailer.errors import AccountError, PermanentDeliveryError, TransientDeliveryError
from mailer.senders.smtp import classify, classify_response
from mailer.senders.smtp_replies import enhanced_code, is_hard_bounce, is_size_refusal


def test_enhanced_code_is_read_from_the_start_of_the_text():
    assert enhanced_code("5.1.1 <a@x>: Recipient address rejected") == (5, 1, 1)
    assert enhanced_code("5.1.10 Null MX") == (5, 1, 10)
    assert enhanced_code("Mailbox unavailable 5.1.1") is None
    assert enhanced_code("5.1.1.2 not a code") is None


@pytest.mark.parametrize(
    ("code", "text", "kind"),
    [
        (421, "4.7.0 mx.example Error: too many connections from 127.0.0.1", "throttle"),
        (421, "4.7.0 Try again later, closing connection", "throttle"),
        # going away is not a rate: the account backs off, its send rate is not halved
        (421, "4.3.2 Service shutting down, try later", "unavailable"),
        (421, "Service not available, closing transmission channel", "unavailable"),
        (451, "4.7.1 Rate limit exceeded, try again later", "throttle"),
        (452, "4.5.3 Too many recipients this hour", "throttle"),
        (450, "4.7.1 Error: too many recipients from 127.0.0.1", "throttle"),
        (454, "4.7.0 Temporary authentication failure", "throttle"),
        (535, "5.7.8 Error: authentication failed: authentication failure", "auth"),
        (530, "5.7.0 Authentication required", "auth"),
    ],
)
def test_account_level_replies(code, text, kind):
    error = classify_response(code, text)
    assert isinstance(error, AccountError) and error.kind == kind and error.code == code


def test_plain_4xx_is_transient_for_the_row():
    greylisted = "4.2.0 <a@example.org>: Recipient address rejected: Greylisted"
    error = classify_response(450, greylisted, recipient="a@example.org")
    assert type(error) is TransientDeliveryError and error.recipient == "a@example.org"


@pytest.mark.parametrize(
    ("code", "text", "hard"),
    [
        # Postfix: every RCPT refusal says "Recipient address rejected"; the code decides.
        (
            550,
            "5.1.1 <a@x.org>: Recipient address rejected: User unknown in local recipient table",
            True,
        ),
        (
            550,
            "5.1.1 <a@x.org>: Recipient address rejected: User unknown in virtual mailbox table",
            True,
        ),
        (554, "5.7.1 <a@x.org>: Recipient address rejected: Blocked by local policy", False),
        (550, "5.7.1 <a@x.org>: Recipient address rejected: Blocked by local policy", False),
        (552, "5.2.2 <a@x.org>: Recipient address rejected: Mailbox full", False),
        (550, "5.1.2 <a@nowhere.invalid>: Recipient address rejected: Domain not found", True),
        (
            556,
            "5.1.10 <a@x.org>: Recipient address rejected: Domain x.org does not accept mail",
            True,
        ),
        (550, "5.2.1 The email account that you tried to reach is disabled.", True),
        (
            550,
            "5.7.1 Service unavailable; client [192.0.2.1] blocked using zen.spamhaus.org",
            False,
        ),
        (554, "5.7.1 Message rejected as spam", False),
        # No enhanced code: the text decides, and "Recipient address rejected" alone is not it.
        (550, "No such user here", True),
        (550, "Recipient address rejected: Access denied", False),
        (550, "5.1.0 Address rejected: user unknown", True),
        (550, "5.1.0 Address rejected", False),
    ],
)
def test_5xx_is_permanent_and_only_a_missing_address_is_a_hard_bounce(code, text, hard):
    error = classify_response(code, text, stage="rcpt")
    assert type(error) is PermanentDeliveryError and error.hard_bounce is hard


def test_unknown_user_at_data_stage_is_not_a_hard_bounce():
    error = classify_response(550, "5.1.1 user unknown", stage="data")
    assert isinstance(error, PermanentDeliveryError) and not error.hard_bounce


def test_a_4xx_is_never_a_hard_bounce():
    assert not is_hard_bounce(450, "4.1.1 <a@x.org>: Recipient address rejected: unverified")


@pytest.mark.parametrize(
    ("code", "text", "stage"),
    [
        (552, "5.3.4 Message size exceeds fixed limit", "mail"),  # Postfix, SIZE declared
        (552, "5.3.4 Message size exceeds fixed limit", "data"),  # Postfix, no SIZE
        (552, "5.3.4 Message size exceeds fixed maximum message size", "mail"),  # Exchange
        (552, "5.3.4 Your message exceeded Google's message size limits.", "data"),
        (552, "Message size exceeds fixed limit", "mail"),  # no enhanced code
        (554, "Transaction failed: message too large", "data"),
        (552, "5.2.3 Message length exceeds administrative limit", "data"),
    ],
)
def test_a_size_refusal_fails_the_row_only(code, text, stage):
    assert is_size_refusal(code, text, stage=stage)
    error = classify_response(code, text, stage=stage, recipient="a@x.org")
    assert type(error) is PermanentDeliveryError and not error.hard_bounce
    assert "too large" in str(error)


def test_552_at_rcpt_without_a_size_code_is_a_full_mailbox():
    assert not is_size_refusal(552, "Requested mail action aborted: mailbox full", stage="rcpt")


@pytest.mark.parametrize(
    ("code", "text", "kind", "fix"),
    [
        # Postfix delays sender, HELO and client refusals to RCPT (smtpd_delay_reject).
        (
            553,
            "5.7.1 <news@shop.example>: Sender address rejected: not owned by user bob",
            "config",
            "--email",
        ),
        (
            553,
            "5.7.1 <news@shop.example>: Sender address rejected: not logged in",
            "config",
            "--email",
        ),
        (
            504,
            "5.5.2 <localhost>: Helo command rejected: need fully-qualified hostname",
            "config",
            "MAILER_EHLO_HOSTNAME",
        ),
        (
            550,
            "5.7.1 <unknown[192.0.2.1]>: Client host rejected: cannot find your hostname",
            "config",
            "this host",
        ),
        (
            450,
            "4.1.8 <news@shop.example>: Sender address rejected: Domain not found",
            "unavailable",
            None,
        ),
        (450, "4.7.1 <localhost>: Helo command rejected: Host not found", "unavailable", None),
        (
            450,
            "4.7.1 <news@shop.example>: Sender address rejected: too much mail",
            "throttle",
            None,
        ),
    ],
)
def test_sender_and_helo_refusals_at_rcpt_are_the_accounts(code, text, kind, fix):
    error = classify_response(code, text, stage="rcpt", recipient="a@x.org")
    assert isinstance(error, AccountError) and error.kind == kind and error.code == code
    assert error.reached_provider  # the attempt reached the server: it counts against limits
    if fix is not None:
        assert fix in str(error) and text in str(error)


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (451, "4.3.5 Server configuration error"),
        (451, "4.3.0 Error: queue file write error"),
        (452, "4.3.1 Insufficient system storage"),
        (451, "4.4.3 Temporary lookup failure"),
    ],
)
def test_server_side_temporary_failures_are_the_accounts(code, text):
    error = classify_response(code, text, stage="rcpt", recipient="a@x.org")
    assert isinstance(error, AccountError) and error.kind == "unavailable"
    assert "server-side" in str(error) and error.code == code


@pytest.mark.parametrize(
    ("code", "text", "kind"),
    [
        (550, "5.4.5 Daily user sending limit exceeded", "throttle"),
        (451, "4.3.0 Sender temporarily rejected", "unavailable"),
        (450, "4.7.1 Error: too much mail from 127.0.0.1", "throttle"),
        (553, "5.7.1 Sender address rejected: not owned by user", "config"),
    ],
)
def test_refused_sender_is_the_account_not_the_row(code, text, kind):
    error = classify(aiosmtplib.SMTPSenderRefused(code, text, "news@shop.example"), "a@example.org")
    assert isinstance(error, AccountError) and error.kind == kind and error.code == code


def test_greeting_refusals_keep_the_code_and_the_servers_text():
    busy = classify(aiosmtplib.SMTPConnectResponseError(421, "4.7.0 Too many connections"), "")
    assert isinstance(busy, AccountError) and busy.kind == "throttle" and busy.code == 421
    assert busy.message == "server not ready: 4.7.0 Too many connections"
    down = classify(aiosmtplib.SMTPConnectResponseError(421, "4.3.2 Service shutting down"), "")
    assert isinstance(down, AccountError) and down.kind == "unavailable" and down.code == 421
    blocked = classify(aiosmtplib.SMTPConnectResponseError(554, "5.7.1 No SMTP service here"), "")
    assert isinstance(blocked, AccountError) and blocked.kind == "config"


def test_certificate_failure_is_configuration_and_says_what_to_set():
    cause = ssl.SSLCertVerificationError(1, "certificate verify failed: self-signed certificate")
    try:
        raise aiosmtplib.SMTPConnectError("Error connecting") from cause
    except aiosmtplib.SMTPConnectError as exc:
        error = classify(exc, "")
    assert isinstance(error, AccountError) and error.kind == "config"
    assert "--tls-ca-file" in str(error) and "self-signed" in str(error)


def test_aiosmtplib_exceptions():
    refused = aiosmtplib.SMTPRecipientsRefused(
        [aiosmtplib.SMTPRecipientRefused(550, "5.1.1 User unknown", "a@example.org")]
    )
    assert classify(refused, "a@example.org").hard_bounce  # type: ignore[attr-defined]
    data = classify(aiosmtplib.SMTPDataError(451, "4.7.1 rate limited"), "a@example.org")
    assert isinstance(data, AccountError)
    greylisted = classify(
        aiosmtplib.SMTPDataError(451, "4.7.1 Greylisted, try again later"), "a@example.org"
    )
    assert type(greylisted) is TransientDeliveryError
    dropped = classify(aiosmtplib.SMTPServerDisconnected("gone"), "a@example.org")
    assert type(dropped) is TransientDeliveryError
    refused_conn = classify(aiosmtplib.SMTPConnectError("refused"), "a@example.org")
    assert isinstance(refused_conn, AccountError) and refused_conn.kind == "unavailable"
