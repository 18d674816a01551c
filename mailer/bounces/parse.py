"""Reading bounce and complaint mail (pure: bytes in, a :class:`Report` out).

What a message is decides everything else:

- ``multipart/report; report-type=delivery-status`` (RFC 3464): a DSN. Each
  per-recipient block gives Action, Status and Diagnostic-Code; the returned message (a
  ``message/rfc822`` or ``text/rfc822-headers`` part) gives the original Message-ID. A
  DSN is read whatever its ``Auto-Submitted`` header says (real DSNs, Gmail's included,
  carry ``Auto-Submitted: auto-replied``).
- ``multipart/report; report-type=feedback-report`` (RFC 5965, ARF): a complaint.
- Mail from a delivery system (``MAILER-DAEMON``/``postmaster``, an empty Return-Path, or
  ``X-Failed-Recipients``) that is not a DSN: flufl.bounce's ``all_failures()`` finds the
  failed addresses in the many non-standard formats (Exim, Yahoo, old Exchange ...); the
  status code, when the text has one, comes from the body. Exim marks its bounces
  ``Auto-Submitted: auto-replied`` too, so this is asked before that header.
- Anything else is ignored: automatic replies (RFC 3834 ``Auto-Submitted`` other than
  ``no``, ``X-Autoreply``, ``X-Autorespond``, ``Precedence: auto_reply``) such as vacation
  notices, challenge-response mail, and mail that is no report at all.

A :class:`Report` only says what the message claims; whether its original Message-ID is
one of ours is the reader's question (see :mod:`mailer.bounces.reader`). It also lists the
report's ``return_paths``: the addresses it was delivered to (To, Delivered-To,
X-Original-To, Envelope-To) and those it names as the original envelope sender (a DSN's
``X-Postfix-Sender``, the returned or quoted original's Return-Path, ARF's
``Original-Mail-From``),
where a VERP address (see :mod:`mailer.verp`) names the row when the Message-ID cannot.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email.message import Message

from flufl.bounce import all_failures

#: Report kinds (``bounce_messages.kind``); ``ignored`` is never stored.
DSN, NONSTANDARD, COMPLAINT, IGNORED = "dsn", "nonstandard", "complaint", "ignored"

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_MESSAGE_ID_LINE = re.compile(r"^\s*Message-ID:\s*(<[^>\s]+>)", re.IGNORECASE | re.MULTILINE)
_HEADER_PARTS = ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers")
_ENVELOPE_PARTS = ("message/delivery-status", "message/feedback-report")
_DELIVERED_TO = ("To", "Delivered-To", "X-Original-To", "Envelope-To")
_SENDER_FIELDS = ("X-Postfix-Sender", "Original-Mail-From", "Original-Envelope-From")
_RETURN_PATH_LINE = re.compile(r"^Return-Path:\s*(.+)$", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class RecipientStatus:
    """One recipient's fate as the report tells it."""

    address: str
    action: str  # failed | delayed | complaint
    status: str | None  # the enhanced status code, e.g. "5.1.1"
    diagnostic: str | None
    permanent: bool


@dataclass(frozen=True)
class Report:
    """What one message of the bounce mailbox is."""

    kind: str  # dsn | nonstandard | complaint | ignored
    report_key: str  # the report's own Message-ID, else a hash of its bytes
    subject: str | None
    original_message_ids: tuple[str, ...] = ()
    recipients: tuple[RecipientStatus, ...] = ()
    feedback_type: str | None = None
    why_ignored: str | None = None
    return_paths: tuple[str, ...] = ()


def parse_report(raw: bytes) -> Report:
    """Classify and read one message (see the module docstring)."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    key = report_key(msg, raw)
    subject = _header(msg, "Subject")
    report_type = (msg.get_param("report-type", header="content-type") or "").lower()
    paths = return_paths(msg)
    if msg.get_content_type() == "multipart/report" and report_type == "delivery-status":
        recipients = tuple(dsn_recipients(msg))
        return Report(DSN, key, subject, original_message_ids(msg), recipients, return_paths=paths)
    if msg.get_content_type() == "multipart/report" and report_type == "feedback-report":
        return complaint_report(msg, key, subject, paths)
    recipients = tuple(nonstandard_recipients(msg)) if from_delivery_system(msg) else ()
    if recipients:
        ids = original_message_ids(msg)
        return Report(NONSTANDARD, key, subject, ids, recipients, return_paths=paths)
    why = auto_reply_marker(msg) or "not a bounce or complaint report"
    return Report(IGNORED, key, subject, why_ignored=why)


def bounce_kind(recipient: RecipientStatus) -> str:
    """``email_events.data->>'kind'``: ``complaint``, ``soft_bounce`` (temporary),
    ``policy_block`` (5.7.x: the receiver refused the sender or the content, not the
    address, so it is never suppressed) or ``hard_bounce``."""
    if recipient.action == "complaint":
        return "complaint"
    if not recipient.permanent:
        return "soft_bounce"
    if (recipient.status or "").startswith("5.7."):
        return "policy_block"
    return "hard_bounce"


def from_delivery_system(msg: Message) -> bool:
    """Whether ``msg`` comes from a mail system rather than a person."""
    sender = email.utils.parseaddr(_header(msg, "From") or "")[1].lower()
    local = sender.partition("@")[0]
    return (
        local in ("mailer-daemon", "postmaster", "mail-daemon", "mailer_daemon")
        or (_header(msg, "Return-Path") or "").strip() == "<>"
        or msg.get("X-Failed-Recipients") is not None
    )


def report_key(msg: Message, raw: bytes) -> str:
    """The report's own Message-ID, or ``sha256:<hex>`` of its bytes when it has none."""
    found = _MESSAGE_ID_LINE.findall(f"Message-ID: {msg.get('Message-ID', '')}")
    return found[0] if found else "sha256:" + hashlib.sha256(raw).hexdigest()


def auto_reply_marker(msg: Message) -> str | None:
    """Why ``msg`` is an automatic reply (RFC 3834 and common vendor headers), or None."""
    auto = (_header(msg, "Auto-Submitted") or "no").split(";")[0].strip().lower()
    if auto != "no":
        return f"auto-reply (Auto-Submitted: {auto})"
    if msg.get("X-Autoreply") or msg.get("X-Autorespond"):
        return "auto-reply (X-Autoreply)"
    if (_header(msg, "Precedence") or "").strip().lower() == "auto_reply":
        return "auto-reply (Precedence: auto_reply)"
    return None


def dsn_recipients(msg: Message) -> Iterator[RecipientStatus]:
    """The failed and delayed recipients of a DSN's delivery-status part(s); delivered,
    relayed and expanded recipients are not bounces and are skipped."""
    for part in msg.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = part.get_payload()
        for block in blocks[1:] if isinstance(blocks, list) else ():
            status = recipient_status(block)
            if status is not None:
                yield status


def recipient_status(block: Message) -> RecipientStatus | None:
    """One per-recipient block of a delivery-status part, or None if not a failure."""
    action = (_header(block, "Action") or "").strip().lower()
    address = _typed_address(block, "Final-Recipient") or _typed_address(
        block, "Original-Recipient"
    )
    if action not in ("failed", "delayed") or not address:
        return None
    code = _STATUS.search(_header(block, "Status") or "")
    status = code.group(0) if code else None
    permanent = action == "failed" and not (status or "").startswith("4")
    return RecipientStatus(address, action, status, _diagnostic(block), permanent)


def complaint_report(
    msg: Message, key: str, subject: str | None, paths: tuple[str, ...] = ()
) -> Report:
    """An ARF feedback report: the complained-about recipient (when not redacted)."""
    fields = Message()
    for part in msg.walk():
        if part.get_content_type() == "message/feedback-report":
            fields = _feedback_fields(part)
            break
    feedback = (_header(fields, "Feedback-Type") or "abuse").strip().lower()
    address = (_header(fields, "Original-Rcpt-To") or "").strip().strip("<>")
    recipients = (RecipientStatus(address, "complaint", None, None, True),) if address else ()
    ids = original_message_ids(msg)
    return Report(COMPLAINT, key, subject, ids, recipients, feedback, return_paths=paths)


def return_paths(msg: Message) -> tuple[str, ...]:
    """Addresses that may be the original's envelope sender (see module docstring)."""
    values = [v for name in _DELIVERED_TO for v in msg.get_all(name) or []]
    for part in msg.walk():
        if part is msg:
            continue
        if part.get_content_type() in _ENVELOPE_PARTS:
            values += _envelope_fields(part)
        elif part.get_content_type() in _HEADER_PARTS:
            values += _RETURN_PATH_LINE.findall(_headers_text(part))
    for text in _text_parts(msg):  # non-standard bounces quote the original inline
        values += _RETURN_PATH_LINE.findall(text)
    found = (a for _, a in email.utils.getaddresses([_typed_value(str(v)) for v in values]))
    return tuple(dict.fromkeys(a for a in found if "@" in a))


def _envelope_fields(part: Message) -> list[str]:
    """The envelope-sender fields of a delivery-status or feedback-report part."""
    payload = part.get_payload()
    blocks = payload if isinstance(payload, list) else [_feedback_fields(part)]
    return [v for block in blocks for name in _SENDER_FIELDS for v in block.get_all(name) or []]


def _typed_value(value: str) -> str:
    """``rfc822; a@b`` -> ``a@b`` (other values unchanged)."""
    return value.partition(";")[2] if value.lower().startswith("rfc822;") else value


def nonstandard_recipients(msg: Message) -> Iterator[RecipientStatus]:
    """Failed addresses flufl.bounce finds; the status code comes from the text."""
    temporary, permanent = all_failures(msg)
    text = "\n".join(_text_parts(msg))
    code = _STATUS.search(text)
    status = code.group(0) if code else None
    diagnostic = _diagnostic_line(text)
    for address in sorted(permanent):
        yield RecipientStatus(_decode(address), "failed", status, diagnostic, True)
    for address in sorted(temporary - permanent):
        yield RecipientStatus(_decode(address), "delayed", status, diagnostic, False)


def original_message_ids(msg: Message) -> tuple[str, ...]:
    """Message-IDs of the returned original: its headers part first, then any
    ``Message-ID:`` line quoted in the text (non-standard bounces inline them)."""
    found: list[str] = []
    for part in msg.walk():
        if part is msg:
            continue
        if part.get_content_type() in _HEADER_PARTS:
            found += _MESSAGE_ID_LINE.findall(_headers_text(part))
    for text in _text_parts(msg):
        found += _MESSAGE_ID_LINE.findall(text)
    own = report_key(msg, b"")
    return tuple(dict.fromkeys(m for m in found if m != own))


def _headers_text(part: Message) -> str:
    payload = part.get_payload()
    if isinstance(payload, list):  # message/rfc822: the parsed original
        return "".join(f"{k}: {v}\n" for inner in payload for k, v in inner.items())
    raw = part.get_payload(decode=True) or b""
    return raw.decode("utf-8", "replace")


def _text_parts(msg: Message) -> Iterable[str]:
    for part in msg.walk():
        if part.get_content_maintype() == "text" and part.get_content_type() != "text/html":
            raw = part.get_payload(decode=True) or b""
            yield raw.decode(part.get_content_charset() or "utf-8", "replace")


def _feedback_fields(part: Message) -> Message:
    payload = part.get_payload()
    if isinstance(payload, list) and payload:
        return payload[0]
    text = (part.get_payload(decode=True) or b"").decode("utf-8", "replace")
    return email.message_from_string(text, policy=email.policy.compat32)


def _typed_address(block: Message, name: str) -> str | None:
    """``rfc822; user@example.org`` -> ``user@example.org``."""
    value = _header(block, name)
    if not value:
        return None
    address = value.partition(";")[2] if ";" in value else value
    return address.strip().strip("<>") or None


def _diagnostic(block: Message) -> str | None:
    value = _header(block, "Diagnostic-Code")
    if not value:
        return None
    text = value.partition(";")[2] if ";" in value else value
    return " ".join(text.split()) or None


def _diagnostic_line(text: str) -> str | None:
    for line in text.splitlines():
        if _STATUS.search(line) or re.search(r"\b[45]\d\d[ :-]", line):
            return " ".join(line.split())[:500]
    return None


def _header(msg: Message, name: str) -> str | None:
    value = msg.get(name)
    return None if value is None else " ".join(str(value).split())


def _decode(address: bytes | str) -> str:
    return address.decode("utf-8", "replace") if isinstance(address, bytes) else address
