"""The bounce parser on real-world style samples: what each one is, and what it says."""

from __future__ import annotations

import pytest

from mailer.bounces.parse import (
    COMPLAINT,
    DSN,
    IGNORED,
    NONSTANDARD,
    RecipientStatus,
    bounce_kind,
    parse_report,
)
from tests.support.bounce_samples import SAMPLES

MSGID = "<20261201.42.abcdef@shop.example>"
RCPT = "robin@example.org"

#: sample -> (kind, [(action, status, bounce kind)], a word of the diagnostic)
EXPECTED = {
    "postfix": (DSN, [("failed", "5.1.1", "hard_bounce")], "User unknown"),
    "exim": (NONSTANDARD, [("failed", "5.1.1", "hard_bounce")], "No such user"),
    "exchange": (DSN, [("failed", "5.1.10", "hard_bounce")], "RecipientNotFound"),
    "gmail": (DSN, [("failed", "5.1.1", "hard_bounce")], "does not exist"),
    "yahoo": (NONSTANDARD, [("failed", None, "hard_bounce")], "doesn't have a yahoo.com"),
    "delayed": (DSN, [("delayed", "4.4.1", "soft_bounce")], "Connection timed out"),
    "arf": (COMPLAINT, [("complaint", None, "complaint")], None),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_reports_are_read(name: str) -> None:
    kind, recipients, word = EXPECTED[name]
    report = parse_report(SAMPLES[name](MSGID, RCPT))
    assert report.kind == kind
    assert report.original_message_ids == (MSGID,)
    assert [(r.action, r.status, bounce_kind(r)) for r in report.recipients] == recipients
    assert [r.address for r in report.recipients] == [RCPT]
    if word:
        assert word in (report.recipients[0].diagnostic or "")
    assert report.report_key.startswith("<") and report.report_key != MSGID


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("vacation", "auto-reply (Auto-Submitted: auto-replied)"),
        ("challenge", "not a bounce or complaint report"),
        ("unrelated", "not a bounce or complaint report"),
    ],
)
def test_non_reports_are_ignored(name: str, why: str) -> None:
    report = parse_report(SAMPLES[name](MSGID, RCPT))
    assert (report.kind, report.why_ignored) == (IGNORED, why)
    assert report.recipients == () and report.original_message_ids == ()


def test_a_dsn_is_read_whatever_its_auto_submitted_header_says() -> None:
    raw = SAMPLES["gmail"](MSGID, RCPT)
    assert b"Auto-Submitted: auto-replied" in raw
    assert parse_report(raw).kind == DSN


def test_other_auto_reply_markers_are_ignored() -> None:
    base = SAMPLES["unrelated"](MSGID, RCPT)
    for header in (b"X-Autoreply: yes\n", b"Precedence: auto_reply\n", b"X-Autorespond: 1\n"):
        report = parse_report(header + base)
        assert report.kind == IGNORED and report.why_ignored.startswith("auto-reply")


def test_foreign_dsn_names_the_foreign_message() -> None:
    report = parse_report(SAMPLES["foreign"](MSGID, RCPT))
    assert report.kind == DSN
    assert report.original_message_ids == ("<not-ours-77@elsewhere.example>",)


def test_delivered_recipients_of_a_dsn_are_not_bounces() -> None:
    raw = SAMPLES["postfix"](MSGID, RCPT).replace(b"Action: failed", b"Action: delivered")
    assert parse_report(raw).recipients == ()


def test_report_without_message_id_is_keyed_by_its_bytes() -> None:
    raw = SAMPLES["postfix"](MSGID, RCPT).replace(b"Message-Id: <2026", b"X-Old-Id: <2026")
    key = parse_report(raw).report_key
    assert key.startswith("sha256:") and key == parse_report(raw).report_key


@pytest.mark.parametrize(
    ("recipient", "kind"),
    [
        (RecipientStatus(RCPT, "failed", "5.1.1", None, True), "hard_bounce"),
        (RecipientStatus(RCPT, "failed", "5.7.1", "blocked as spam", True), "policy_block"),
        (RecipientStatus(RCPT, "failed", "4.2.2", None, False), "soft_bounce"),
        (RecipientStatus(RCPT, "delayed", "4.4.1", None, False), "soft_bounce"),
        (RecipientStatus(RCPT, "complaint", None, None, True), "complaint"),
    ],
)
def test_bounce_kind(recipient: RecipientStatus, kind: str) -> None:
    assert bounce_kind(recipient) == kind


def test_a_failed_action_with_a_4xx_status_is_temporary() -> None:
    raw = SAMPLES["postfix"](MSGID, RCPT).replace(b"Status: 5.1.1", b"Status: 4.2.2")
    (recipient,) = parse_report(raw).recipients
    assert (recipient.status, recipient.permanent) == ("4.2.2", False)
