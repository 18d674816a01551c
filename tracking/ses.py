"""Amazon SES notifications (the ``Message`` of an SNS Notification), read as pure data.

SES sends ``Bounce``, ``Complaint`` and ``Delivery`` notifications (``notificationType``;
event publishing says ``eventType``). :func:`parse_notification` turns one into a
:class:`SesNotification`: what happened, to which recipients, the ``Message-ID`` header
the message was sent with (how it is matched to its ``email_queue`` row) and which
suppression it calls for: a permanent bounce is a ``hard_bounce``, a transient or
undetermined one a ``soft_bounce`` (with an expiry), a complaint a ``complaint``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import Any

KINDS = {"Bounce": "bounce", "Complaint": "complaint", "Delivery": "delivery"}


class NotSesNotification(ValueError):
    """The message is not an SES notification this intake handles."""


@dataclass(frozen=True)
class SesNotification:
    """One SES notification, as the intake applies it."""

    kind: str  # bounce | complaint | delivery (email_events.type)
    recipients: tuple[str, ...]
    message_ids: tuple[str, ...]  # Message-ID header values, with angle brackets
    suppression: str | None  # hard_bounce | soft_bounce | complaint | None
    details: dict[str, Any] = field(default_factory=dict)  # email_events.data


def parse_notification(payload: Any) -> SesNotification:
    """Read an SES notification; NotSesNotification for anything else."""
    if not isinstance(payload, dict):
        raise NotSesNotification("SES notification is not a JSON object")
    kind = KINDS.get(payload.get("notificationType") or payload.get("eventType") or "")
    if kind is None:
        raise NotSesNotification(
            f"not a bounce, complaint or delivery: {payload.get('notificationType')!r}"
        )
    mail = _dict(payload.get("mail"))
    body = _dict(payload.get(kind))
    message_ids = _message_ids(mail)
    details: dict[str, Any] = {
        "source": "ses",
        "ses_message_id": mail.get("messageId"),
        "feedback_id": body.get("feedbackId"),
        "timestamp": body.get("timestamp"),
    }
    if kind == "bounce":
        bounce_type = str(body.get("bounceType") or "Undetermined")
        suppression = "hard_bounce" if bounce_type == "Permanent" else "soft_bounce"
        recipients = _addresses(body.get("bouncedRecipients"), "emailAddress")
        diagnostics = [r.get("diagnosticCode") for r in _list(body.get("bouncedRecipients"))]
        details |= {
            "kind": suppression,
            "bounce_type": bounce_type,
            "bounce_sub_type": body.get("bounceSubType"),
            "diagnostic": next((d for d in diagnostics if d), None),
        }
    elif kind == "complaint":
        suppression = "complaint"
        recipients = _addresses(body.get("complainedRecipients"), "emailAddress")
        details |= {
            "kind": "complaint",
            "feedback_type": body.get("complaintFeedbackType"),
            "complaint_sub_type": body.get("complaintSubType"),
            "user_agent": body.get("userAgent"),
        }
    else:
        suppression = None
        recipients = _addresses(body.get("recipients"), None) or _addresses(
            mail.get("destination"), None
        )
        details |= {
            "smtp_response": body.get("smtpResponse"),
            "processing_time_ms": body.get("processingTimeMillis"),
        }
    return SesNotification(
        kind,
        recipients,
        message_ids,
        suppression,
        {k: v for k, v in details.items() if v is not None},
    )


def bracketed(message_id: str) -> str:
    """``message_id`` as stored in ``email_queue.message_id``: ``<local@domain>``."""
    value = message_id.strip()
    return value if value.startswith("<") else f"<{value.strip('<>')}>"


def _message_ids(mail: dict[str, Any]) -> tuple[str, ...]:
    found = []
    common = _dict(mail.get("commonHeaders")).get("messageId")
    if isinstance(common, str) and common.strip():
        found.append(bracketed(common))
    for header in _list(mail.get("headers")):
        if str(header.get("name", "")).lower() == "message-id" and header.get("value"):
            found.append(bracketed(str(header["value"])))
    return tuple(dict.fromkeys(found))


def _addresses(items: Any, key: str | None) -> tuple[str, ...]:
    out = []
    for item in items if isinstance(items, list) else []:
        raw = item.get(key) if key and isinstance(item, dict) else item
        if isinstance(raw, str):
            address = parseaddr(raw)[1].strip()
            if "@" in address:
                out.append(address)
    return tuple(dict.fromkeys(out))


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
