"""Reading SES notifications."""

from __future__ import annotations

import pytest

from tests.support.sns import ses_bounce, ses_complaint, ses_delivery
from tracking.ses import NotSesNotification, bracketed, parse_notification


def test_permanent_bounce_is_a_hard_bounce():
    n = parse_notification(ses_bounce("<1.abc@shop.example>", "Bob@Example.org"))
    assert (n.kind, n.suppression, n.recipients) == ("bounce", "hard_bounce", ("Bob@Example.org",))
    assert n.message_ids == ("<1.abc@shop.example>",)
    assert n.details["bounce_type"] == "Permanent"
    assert n.details["diagnostic"] == "smtp; 550 5.1.1 user unknown"
    assert n.details["kind"] == "hard_bounce"


@pytest.mark.parametrize("bounce_type", ["Transient", "Undetermined"])
def test_other_bounces_are_soft(bounce_type):
    n = parse_notification(ses_bounce("<1@x>", "bob@example.org", bounce_type=bounce_type))
    assert n.suppression == "soft_bounce"


def test_complaint_and_delivery():
    c = parse_notification(ses_complaint("1.abc@shop.example", "bob@example.org"))
    assert (c.kind, c.suppression, c.message_ids) == (
        "complaint",
        "complaint",
        ("<1.abc@shop.example>",),
    )
    d = parse_notification(ses_delivery("<1@x>", "bob@example.org"))
    assert (d.kind, d.suppression, d.recipients) == ("delivery", None, ("bob@example.org",))
    assert d.details["smtp_response"].startswith("250")


def test_event_publishing_format_is_understood():
    payload = ses_bounce("<1@x>", "bob@example.org")
    payload["eventType"] = payload.pop("notificationType")
    assert parse_notification(payload).kind == "bounce"


@pytest.mark.parametrize(
    "payload",
    [
        [],
        "text",
        {},
        {"notificationType": "AmazonSnsSubscriptionSucceeded"},
        {"eventType": "Open"},
    ],
)
def test_anything_else_is_not_an_ses_notification(payload):
    with pytest.raises(NotSesNotification):
        parse_notification(payload)


def test_garbage_fields_do_not_crash():
    n = parse_notification(
        {
            "notificationType": "Bounce",
            "bounce": {
                "bounceType": "Permanent",
                "bouncedRecipients": ["x", {"emailAddress": 3}, {"emailAddress": '"B" <b@x.org>'}],
            },
            "mail": {"headers": "nope", "commonHeaders": []},
        }
    )
    assert n.recipients == ("b@x.org",) and n.message_ids == ()


def test_bracketed():
    assert bracketed(" a@b ") == "<a@b>"
    assert bracketed("<a@b>") == "<a@b>"
