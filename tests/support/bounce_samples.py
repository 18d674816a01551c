# ruff: noqa: E501  (real reports have long lines; the samples keep them)
"""Real-world style bounce mailbox contents, modelled on what each system sends.

Every sample takes the original message's Message-ID (with angle brackets) and the
recipient it was sent to, so unit tests read them and integration tests append them to a
real IMAP mailbox for rows they queued. ``SAMPLES`` names them all; :func:`bare_dsn`,
which quotes nothing of the original, takes the envelope sender it was sent to instead.
"""

from __future__ import annotations

from collections.abc import Callable

SENDER = "news@shop.example"


def _original(msgid: str, rcpt: str) -> str:
    return (
        f"Return-Path: <{SENDER}>\n"
        f"From: Shop News <{SENDER}>\n"
        f"To: {rcpt}\n"
        "Subject: Our autumn sale\n"
        f"Message-ID: {msgid}\n"
        "Date: Tue, 01 Dec 2026 09:00:00 +0000\n"
        "MIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=utf-8\n"
    )


def postfix_dsn(msgid: str, rcpt: str) -> bytes:
    """Postfix: 5.1.1 user unknown, headers returned as text/rfc822-headers."""
    return f"""Return-Path: <>
Received: by mx.shop.example (Postfix) id 4Fh2kq0Xyz; Tue,  1 Dec 2026 09:00:05 +0000
Date: Tue,  1 Dec 2026 09:00:05 +0000 (UTC)
From: MAILER-DAEMON@mx.shop.example (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: {SENDER}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="4Fh2kq0Xyz.1733043605/mx.shop.example"
Message-Id: <20261201090005.4Fh2kq0Xyz@mx.shop.example>

This is a MIME-encapsulated message.

--4Fh2kq0Xyz.1733043605/mx.shop.example
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.shop.example.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<{rcpt}>: host mx1.example.org[192.0.2.25] said: 550 5.1.1
    <{rcpt}>: Recipient address rejected: User unknown in virtual mailbox
    table (in reply to RCPT TO command)

--4Fh2kq0Xyz.1733043605/mx.shop.example
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.shop.example
X-Postfix-Queue-ID: 4Fh2kq0Xyz
X-Postfix-Sender: rfc822; {SENDER}
Arrival-Date: Tue,  1 Dec 2026 09:00:01 +0000 (UTC)

Final-Recipient: rfc822; {rcpt}
Original-Recipient: rfc822;{rcpt}
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx1.example.org
Diagnostic-Code: smtp; 550 5.1.1 <{rcpt}>: Recipient address rejected: User
    unknown in virtual mailbox table

--4Fh2kq0Xyz.1733043605/mx.shop.example
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

{_original(msgid, rcpt)}
--4Fh2kq0Xyz.1733043605/mx.shop.example--
""".encode()


def exim_bounce(msgid: str, rcpt: str) -> bytes:
    """Exim: plain text, X-Failed-Recipients, Auto-Submitted, the original inline."""
    return f"""Return-path: <>
Received: from Debian-exim by relay.shop.example with local (Exim 4.96)
\tid 1t8xYz-000Abc-1Q; Tue, 01 Dec 2026 09:01:00 +0000
X-Failed-Recipients: {rcpt}
Auto-Submitted: auto-replied
From: Mail Delivery System <Mailer-Daemon@relay.shop.example>
To: {SENDER}
Content-Type: text/plain; charset=us-ascii
Subject: Mail delivery failed: returning message to sender
Message-Id: <E1t8xYz-000Abc-1Q@relay.shop.example>
Date: Tue, 01 Dec 2026 09:01:00 +0000

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  {rcpt}
    host mx.example.net [198.51.100.7]
    SMTP error from remote mail server after RCPT TO:<{rcpt}>:
    550 5.1.1 No such user here

------ This is a copy of the message, including all the headers. ------

{_original(msgid, rcpt)}
Hello, our autumn sale starts today.
""".encode()


def exchange_ndr(msgid: str, rcpt: str) -> bytes:
    """Exchange Online / Outlook: 5.1.10 RecipientNotFound, original as message/rfc822."""
    return f"""From: postmaster@outlook.com
To: {SENDER}
Date: Tue, 1 Dec 2026 09:02:11 +0000
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="b1_exchange"
MIME-Version: 1.0
Message-ID: <6c1f1a0e-5b9a-4c3e-9d1e-2f7f1b0a9c55@DM6PR11MB1234.namprd11.prod.outlook.com>
Subject: Undeliverable: Our autumn sale
Auto-Submitted: auto-replied
X-MS-Exchange-Message-Is-Ndr:

--b1_exchange
Content-Type: text/plain; charset="us-ascii"

Delivery has failed to these recipients or groups:

{rcpt}
The email address you entered couldn't be found.

Diagnostic information for administrators:
Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup'

--b1_exchange
Content-Type: message/delivery-status

Reporting-MTA: dns;DM6PR11MB1234.namprd11.prod.outlook.com
Received-From-MTA: dns;mx.shop.example
Arrival-Date: Tue, 1 Dec 2026 09:02:10 +0000

Final-Recipient: rfc822;{rcpt}
Action: failed
Status: 5.1.10
Diagnostic-Code: smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup

--b1_exchange
Content-Type: message/rfc822

{_original(msgid, rcpt)}
Hello, our autumn sale starts today.

--b1_exchange--
""".encode()


def gmail_dsn(msgid: str, rcpt: str) -> bytes:
    """Gmail's mailer-daemon: 5.1.1 "does not exist", Auto-Submitted, original attached."""
    return f"""Return-Path: <>
From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>
To: {SENDER}
Auto-Submitted: auto-replied
Message-ID: <67a1b2c3.050a0220.1d2e3f.0abc.GMR@mx.google.com>
Date: Tue, 01 Dec 2026 01:03:00 -0800 (PST)
Subject: Delivery Status Notification (Failure)
References: {msgid}
In-Reply-To: {msgid}
X-Failed-Recipients: {rcpt}
MIME-Version: 1.0
Content-Type: multipart/report; boundary="000000000000gmail"; report-type=delivery-status

--000000000000gmail
Content-Type: multipart/related; boundary="000000000000gmailrel"

--000000000000gmailrel
Content-Type: multipart/alternative; boundary="000000000000gmailalt"

--000000000000gmailalt
Content-Type: text/plain; charset="UTF-8"

** Address not found **

Your message wasn't delivered to {rcpt} because the address couldn't be found, or is unable to receive mail.

The response from the remote server was:
550 5.1.1 The email account that you tried to reach does not exist.

--000000000000gmailalt
Content-Type: text/html; charset="UTF-8"

<html><body><h2>Address not found</h2></body></html>

--000000000000gmailalt--

--000000000000gmailrel--

--000000000000gmail
Content-Type: message/delivery-status

Reporting-MTA: dns; googlemail.com
Received-From-MTA: dns; news@shop.example
Arrival-Date: Tue, 01 Dec 2026 01:02:59 -0800 (PST)
X-Original-Message-ID: {msgid}

Final-Recipient: rfc822; {rcpt}
Action: failed
Status: 5.1.1
Remote-MTA: dns; gmail-smtp-in.l.google.com. (142.250.1.26, the server for the domain gmail.com.)
Diagnostic-Code: smtp; 550-5.1.1 The email account that you tried to reach does not exist.
 550 5.1.1  https://support.google.com/mail/?p=NoSuchUser a1si123 - gsmtp
Last-Attempt-Date: Tue, 01 Dec 2026 01:03:00 -0800 (PST)

--000000000000gmail
Content-Type: message/rfc822

{_original(msgid, rcpt)}
Hello, our autumn sale starts today.

--000000000000gmail--
""".encode()


def yahoo_bounce(msgid: str, rcpt: str) -> bytes:
    """Yahoo's own format: no DSN, the failure as text, the original quoted after it."""
    return f"""Return-Path: <>
From: MAILER-DAEMON@yahoo.com
To: {SENDER}
Subject: Failure Notice
Message-ID: <1733043790.12345.yahoo-bounce@mta1001.mail.gq1.yahoo.com>
Date: Tue, 1 Dec 2026 09:03:10 +0000
X-Yahoo-Newman-Property: ymail-3
Content-Type: text/plain; charset=us-ascii

Sorry, we were unable to deliver your message to the following address.

<{rcpt}>:
554: delivery error: dd This user doesn't have a yahoo.com account ({rcpt}) [0] - mta1001.mail.gq1.yahoo.com

--- Below this line is a copy of the message.

{_original(msgid, rcpt)}
Hello, our autumn sale starts today.
""".encode()


def delayed_dsn(msgid: str, rcpt: str) -> bytes:
    """Postfix's delay warning: Action delayed, 4.4.1, nothing to suppress yet."""
    return f"""Return-Path: <>
From: MAILER-DAEMON@mx.shop.example (Mail Delivery System)
Subject: Delayed Mail (still being retried)
To: {SENDER}
Auto-Submitted: auto-replied
Message-Id: <20261201130000.7Gh3lr1Abc@mx.shop.example>
Date: Tue,  1 Dec 2026 13:00:00 +0000 (UTC)
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="7Gh3lr1Abc.1733058000/mx.shop.example"

--7Gh3lr1Abc.1733058000/mx.shop.example
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.shop.example.

####################################################################
# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #
####################################################################

Your message could not be delivered for 4.0 hours.
It will be retried until it is 5.0 days old.

--7Gh3lr1Abc.1733058000/mx.shop.example
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.shop.example
Arrival-Date: Tue,  1 Dec 2026 09:00:01 +0000 (UTC)

Final-Recipient: rfc822; {rcpt}
Original-Recipient: rfc822;{rcpt}
Action: delayed
Status: 4.4.1
Diagnostic-Code: X-Postfix; connect to mx.example.net[198.51.100.9]:25: Connection
    timed out
Will-Retry-Until: Sun,  6 Dec 2026 09:00:01 +0000 (UTC)

--7Gh3lr1Abc.1733058000/mx.shop.example
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

{_original(msgid, rcpt)}
--7Gh3lr1Abc.1733058000/mx.shop.example--
""".encode()


def arf_complaint(msgid: str, rcpt: str) -> bytes:
    """An ARF (RFC 5965) abuse report from a feedback loop, original attached."""
    return f"""From: Yahoo! Mail AntiSpam Feedback <feedback@arf.mail.yahoo.com>
To: fbl@shop.example
Subject: FW: Our autumn sale
Message-ID: <arf-20261201-0001@arf.mail.yahoo.com>
Date: Tue, 1 Dec 2026 10:00:00 +0000
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report;
\tboundary="arf_boundary"

--arf_boundary
Content-Type: text/plain; charset="US-ASCII"

This is an email abuse report for an email message received from IP 203.0.113.5 on Tue, 1 Dec 2026 09:00:00 +0000.

--arf_boundary
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: Yahoo!-Mail-Feedback/2.0
Version: 1
Original-Mail-From: <{SENDER}>
Original-Rcpt-To: <{rcpt}>
Arrival-Date: Tue, 1 Dec 2026 09:00:00 +0000
Source-IP: 203.0.113.5
Reported-Domain: shop.example

--arf_boundary
Content-Type: message/rfc822
Content-Disposition: inline

{_original(msgid, rcpt)}
Hello, our autumn sale starts today.

--arf_boundary--
""".encode()


def vacation_reply(msgid: str, rcpt: str) -> bytes:
    """An out-of-office reply (RFC 3834): in reply to our message, but no bounce."""
    return f"""From: Robin Recipient <{rcpt}>
To: {SENDER}
Subject: Automatic reply: Our autumn sale
Auto-Submitted: auto-replied
X-Autoreply: yes
Precedence: auto_reply
In-Reply-To: {msgid}
References: {msgid}
Message-ID: <ooo-5521@mail.example.org>
Date: Tue, 1 Dec 2026 09:00:30 +0000
Content-Type: text/plain; charset=utf-8

I am out of the office until 14 December with limited access to email.
For urgent matters contact 550 5.1.1 helpdesk@example.org.
""".encode()


def challenge_response(msgid: str, rcpt: str) -> bytes:
    """A challenge-response system asking the sender to prove it is human."""
    return f"""From: {rcpt}
To: {SENDER}
Subject: Please confirm your message (Ref: 88231)
Message-ID: <challenge-88231@spamarrest.example.org>
In-Reply-To: {msgid}
Date: Tue, 1 Dec 2026 09:00:40 +0000
Content-Type: text/plain; charset=utf-8

I protect myself from spam. Please click the link below to confirm you are a
person and your message (Message-ID: {msgid}) will be delivered:
https://challenge.example.org/confirm/88231
""".encode()


def unrelated_mail(msgid: str, rcpt: str) -> bytes:
    """A person writing to the sender address; quotes nothing of ours."""
    del msgid
    return f"""From: A Customer <{rcpt}>
To: {SENDER}
Subject: Question about my order
Message-ID: <q-1234@mail.example.org>
Date: Tue, 1 Dec 2026 11:00:00 +0000
Content-Type: text/plain; charset=utf-8

Hello, when does my order ship?
""".encode()


def foreign_dsn(msgid: str, rcpt: str) -> bytes:
    """A genuine DSN for a message Mailer did not send (someone else's Message-ID)."""
    del msgid
    return postfix_dsn("<not-ours-77@elsewhere.example>", rcpt).replace(
        b"<20261201090005.4Fh2kq0Xyz@mx.shop.example>", b"<20261201.foreign@mx.shop.example>"
    )


def bare_dsn(return_path: str, rcpt: str) -> bytes:
    """A DSN that returns nothing of the original (no headers, no Message-ID), sent to
    the envelope sender ``return_path``: only a VERP address can name the row."""
    return f"""Return-Path: <>
Delivered-To: {return_path}
From: MAILER-DAEMON@relay.example.net (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: {return_path}
Auto-Submitted: auto-replied
Message-Id: <20261201091500.9Kx1bare@relay.example.net>
Date: Tue,  1 Dec 2026 09:15:00 +0000 (UTC)
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="bare.9Kx1"

--bare.9Kx1
Content-Type: text/plain; charset=us-ascii

<{rcpt}>: host mx.example.net[198.51.100.7] said: 550 5.1.1 User unknown

--bare.9Kx1
Content-Type: message/delivery-status

Reporting-MTA: dns; relay.example.net
X-Postfix-Sender: rfc822; {return_path}

Final-Recipient: rfc822; {rcpt}
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 User unknown

--bare.9Kx1--
""".encode()


SAMPLES: dict[str, Callable[[str, str], bytes]] = {
    "postfix": postfix_dsn,
    "exim": exim_bounce,
    "exchange": exchange_ndr,
    "gmail": gmail_dsn,
    "yahoo": yahoo_bounce,
    "delayed": delayed_dsn,
    "arf": arf_complaint,
    "vacation": vacation_reply,
    "challenge": challenge_response,
    "unrelated": unrelated_mail,
    "foreign": foreign_dsn,
}
