"""How SMTP replies map to Mailer's error classes."""

from __future__ import annotations

import aiosmtplib
import pytest

from mailer.errors import AccountError, PermanentDeliveryError, TransientDeliveryError
from mailer.senders.smtp import classify, classify_response


@pytest.mark.parametrize(
    ("code", "text", "kind"),
    [
        (421, "4.7.0 Too many connections, closing", "throttle"),
        (451, "4.7.1 Rate limit exceeded, try again later", "throttle"),
        (452, "4.5.3 Too many recipients this hour", "throttle"),
        (454, "4.7.0 Temporary authentication failure", "throttle"),
        (535, "5.7.8 Username and Password not accepted", "auth"),
        (530, "5.7.0 Authentication required", "auth"),
    ],
)
def test_account_level_replies(code, text, kind):
    error = classify_response(code, text)
    assert isinstance(error, AccountError) and error.kind == kind and error.code == code


def test_plain_4xx_is_transient_for_the_row():
    error = classify_response(450, "4.2.1 Mailbox busy", recipient="a@example.org")
    assert type(error) is TransientDeliveryError and error.recipient == "a@example.org"


@pytest.mark.parametrize(
    ("code", "text", "hard"),
    [
        (550, "5.1.1 <a@example.org>: Recipient address rejected: User unknown", True),
        (550, "No such user here", True),
        (552, "5.2.2 Mailbox full", False),
        (554, "5.7.1 Message rejected as spam", False),
    ],
)
def test_5xx_is_permanent_and_unknown_user_is_a_hard_bounce(code, text, hard):
    error = classify_response(code, text, stage="rcpt")
    assert isinstance(error, PermanentDeliveryError) and error.hard_bounce is hard


def test_unknown_user_text_at_data_stage_is_not_a_hard_bounce():
    error = classify_response(550, "5.1.1 user unknown", stage="data")
    assert isinstance(error, PermanentDeliveryError) and not error.hard_bounce


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


@pytest.mark.parametrize(
    ("code", "text", "kind"),
    [
        (550, "5.4.5 Daily user sending limit exceeded", "throttle"),
        (451, "4.3.0 Sender temporarily rejected", "throttle"),
        (553, "5.7.1 Sender address rejected: not owned by user", "config"),
    ],
)
def test_refused_sender_is_the_account_not_the_row(code, text, kind):
    error = classify(aiosmtplib.SMTPSenderRefused(code, text, "news@shop.example"), "a@example.org")
    assert isinstance(error, AccountError) and error.kind == kind and error.code == code
