"""What an SMTP reply means for the row and the account (pure functions, no I/O).

The enhanced status code (RFC 3463, ``class.subject.detail`` at the start of the reply
text) decides first; the reply text is read only where a server gives no enhanced code,
and to tell who was refused (Postfix reports sender, HELO and client refusals at RCPT,
as ``<x>: Sender address rejected: ...``, so the code alone cannot say).

Outcomes, in the order they are checked:

- authentication replies: the account (suspend);
- a size refusal (x.3.4 / x.2.3, or 552 at MAIL or DATA): that row fails, nothing else;
- the sender, our HELO name or our host refused (at MAIL FROM, or reported at RCPT): the
  account (5xx suspends with what to fix, 4xx backs off); rows keep their attempts;
- 421/454 and 4xx "slow down" texts: throttling, the account backs off;
- a 4xx of the mail-system or network class (4.3.x, 4.4.x): the server's problem, the
  account backs off and the row's attempt is refunded;
- other 4xx: the row retries; other 5xx: the row fails, and it is a hard bounce
  (suppressed) only for an address that does not exist (5.1.1, 5.1.2, 5.1.10, 5.2.1 ...;
  a 5.7.x policy refusal never is).
"""

from __future__ import annotations

import re

from mailer.errors import (
    AccountError,
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
)

EnhancedCode = tuple[int, int, int]

_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
#: Enhanced codes of an address that does not exist (or never will take mail): these
#: hard-bounce and suppress it. 5.1.0 is too vague: its text decides.
HARD_BOUNCE_CODES = frozenset({(5, 1, 1), (5, 1, 2), (5, 1, 3), (5, 1, 6), (5, 1, 10), (5, 2, 1)})
#: "message too big": fails that row only.
SIZE_CODES = frozenset({(5, 3, 4), (5, 2, 3), (4, 3, 4), (4, 2, 3)})
#: The sender's address (bad mailbox / system): the account's problem wherever reported.
SENDER_CODES = frozenset({(1, 7), (1, 8)})

_THROTTLE_TEXT = re.compile(
    r"rate|too many|too much|throttl|\blimit|slow down|temporarily deferred",
    re.IGNORECASE,
)
_SIZE_TEXT = re.compile(r"\bsize\b|too (large|big)|message length", re.IGNORECASE)
_UNKNOWN_USER = re.compile(
    r"user unknown|unknown user|no such (user|mailbox|recipient)|does not exist|"
    r"mailbox unavailable|invalid recipient|address not found|unknown recipient",
    re.IGNORECASE,
)
_SENDER_REFUSED = re.compile(r"sender address rejected", re.IGNORECASE)
_HELO_REFUSED = re.compile(r"helo command rejected", re.IGNORECASE)
_CLIENT_REFUSED = re.compile(r"client host rejected", re.IGNORECASE)


def enhanced_code(message: str) -> EnhancedCode | None:
    """The RFC 3463 code at the start of the reply text, e.g. ``(5, 1, 1)``."""
    match = _ENHANCED.match(message)
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def is_size_refusal(code: int, message: str, *, stage: str) -> bool:
    """The server refused the message for its size (the row fails, nothing else)."""
    status = enhanced_code(message)
    if status is not None:
        return status in SIZE_CODES
    if code == 552 and stage in ("mail", "data"):  # RFC 5321: 552 at RCPT is a full mailbox
        return True
    return code >= 500 and bool(_SIZE_TEXT.search(message))


def is_hard_bounce(code: int, message: str) -> bool:
    """The recipient address does not exist: suppress it. Never for a policy refusal."""
    if code < 500:
        return False
    status = enhanced_code(message)
    if status is not None and status != (5, 1, 0):
        return status in HARD_BOUNCE_CODES
    return code in (550, 551, 553) and bool(_UNKNOWN_USER.search(message))


def account_refusal(code: int, message: str, *, stage: str) -> tuple[str, str] | None:
    """``(what was refused, what to fix)`` when the server refused the account (sender,
    HELO name, client host) rather than the recipient or the message; else None."""
    status = enhanced_code(message)
    if _HELO_REFUSED.search(message):
        return (
            "EHLO name refused",
            "set MAILER_EHLO_HOSTNAME (or the account's --ehlo-hostname) to this host's "
            "fully qualified domain name",
        )
    if _CLIENT_REFUSED.search(message):
        return (
            "client host refused",
            "the server refuses this host (its IP address or reverse DNS): allow it on the "
            "server or send from another host",
        )
    if (
        stage == "mail"
        or _SENDER_REFUSED.search(message)
        or (status is not None and status[1:] in SENDER_CODES)
    ):
        return (
            "sender refused",
            "check the account's --email and that its SMTP user may send as that address",
        )
    return None


def is_throttle(code: int, message: str) -> bool:
    """A reply asking us to slow down (the adaptive rate halves): its text says so, or a
    421/454 with a policy (4.7.x) status, as providers' rate limits answer. A 421 that
    says the server is shutting down (4.3.2) or has a network problem only backs off."""
    if _THROTTLE_TEXT.search(message):
        return True
    status = enhanced_code(message)
    if code == 454:
        return status is None or status[1] == 7
    return code == 421 and status is not None and status[1] == 7


def classify_response(
    code: int,
    message: str,
    *,
    recipient: str | None = None,
    stage: str = "rcpt",
    mail_from_at: float | None = None,
) -> DeliveryError:
    """The DeliveryError an SMTP reply means; ``stage`` is greeting/mail/rcpt/data/auth."""
    kwargs = {"code": code, "recipient": recipient, "mail_from_at": mail_from_at, "stage": stage}
    status = enhanced_code(message)
    if code in (530, 534, 535, 538) or stage == "auth":
        return AccountError(f"authentication failed: {message}", kind="auth", **kwargs)
    if stage == "greeting":
        if code >= 500:
            return AccountError(
                f"the server refuses connections from us: {message}", kind="config", **kwargs
            )
        kind = "throttle" if code == 421 and _THROTTLE_TEXT.search(message) else "unavailable"
        return AccountError(f"server not ready: {message}", kind=kind, **kwargs)
    if code >= 400 and is_size_refusal(code, message, stage=stage):
        return PermanentDeliveryError(
            f"message too large for the server: {message}", hard_bounce=False, **kwargs
        )
    refusal = account_refusal(code, message, stage=stage)
    if refusal is not None:
        what, fix = refusal
        if is_throttle(code, message):
            kind = "throttle"
        else:
            kind = "unavailable" if code < 500 else "config"
        text = f"{what}: {message}" + (f" ({fix})" if kind == "config" else "")
        return AccountError(text, kind=kind, reached_provider=True, **kwargs)
    if 400 <= code < 500 and is_throttle(code, message):
        return AccountError(message, kind="throttle", reached_provider=True, **kwargs)
    if code == 421:  # the server is going away or cannot serve us now: not a rate
        return AccountError(message, kind="unavailable", reached_provider=True, **kwargs)
    if 400 <= code < 500 and status is not None and status[1] in (3, 4):
        return AccountError(
            f"server-side temporary failure: {message}",
            kind="unavailable",
            reached_provider=True,
            **kwargs,
        )
    if 400 <= code < 500:
        return TransientDeliveryError(message, **kwargs)
    if code >= 500:
        hard = stage == "rcpt" and is_hard_bounce(code, message)
        return PermanentDeliveryError(message, hard_bounce=hard, **kwargs)
    return TransientDeliveryError(f"unexpected reply: {code} {message}", **kwargs)
