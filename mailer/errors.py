"""One exception tree for everything that can go wrong delivering a row.

Senders translate their backend's failures into these classes; the retry policy
(:mod:`mailer.retry`) is a pure function of the class and its fields, so no other module
inspects SMTP codes or API statuses.
"""

from __future__ import annotations

from datetime import datetime


class MailerError(Exception):
    """Base of Mailer's own errors."""


class DeliveryError(MailerError):
    """A send attempt failed. ``code`` is the SMTP/API status when there was one."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        recipient: str | None = None,
        reached_provider: bool = True,
        mail_from_at: float | None = None,
        stage: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.recipient = recipient
        #: The attempt opened a transaction with the provider and counts against limits.
        self.reached_provider = reached_provider
        #: ``time.monotonic()`` when the server answered MAIL FROM (what pacing measures
        #: from); None when the transaction never started at the server.
        self.mail_from_at = mail_from_at
        #: The SMTP step that failed (greeting, mail, rcpt, data, auth), when known.
        self.stage = stage

    def __str__(self) -> str:
        return f"{self.code} {self.message}" if self.code else self.message


class TransientDeliveryError(DeliveryError):
    """The row may succeed later (SMTP 4xx, dropped connection, timeout): retry it."""


class UnknownOutcomeError(TransientDeliveryError):
    """The message data was sent but no reply came: it may have been delivered.

    Raised when the connection drops or times out after the final ``.`` of DATA was
    written and before the server's reply arrived. It counts against the limits; a retry
    keeps the row's Message-ID so receivers can de-duplicate.
    """


class DestinationThrottledError(TransientDeliveryError):
    """One destination (a provider's MX group) asked us to slow down: the row waits
    ``retry_seconds`` without using an attempt, sends elsewhere go on."""

    def __init__(self, message: str, *, retry_seconds: float, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_seconds = retry_seconds


class PermanentDeliveryError(DeliveryError):
    """The row will never succeed (SMTP 5xx for the recipient): fail it now.

    ``hard_bounce`` marks an address that does not exist; it gets suppressed.
    """

    def __init__(self, message: str, *, hard_bounce: bool = False, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.hard_bounce = hard_bounce


class AccountError(DeliveryError):
    """The account, not the row, is the problem; rows go back without losing an attempt.

    ``kind`` is ``auth`` (bad credentials) or ``config`` (the account cannot work as set
    up): both suspend the account; ``throttle`` (the provider asks us to slow down) or
    ``unavailable`` (server unreachable): both back the account off.

    ``until``: the provider said when sending may resume (the backoff lasts until then
    instead of doubling). ``scope``: ``account``, or ``project`` when the quota of the
    provider project behind the account (Gmail's Cloud project) ran out, so every account
    of that project backs off.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        until: datetime | None = None,
        scope: str = "account",
        **kwargs: object,
    ) -> None:
        kwargs.setdefault("reached_provider", False)
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        if kind not in ("auth", "config", "throttle", "unavailable"):
            raise ValueError(f"unknown AccountError kind {kind!r}")
        if scope not in ("account", "project"):
            raise ValueError(f"unknown AccountError scope {scope!r}")
        self.kind = kind
        self.until = until
        self.scope = scope


class InvalidMessageError(MailerError):
    """The row itself is malformed (bad address, CR/LF in a header, template error,
    oversize body); it fails at once with this message and nothing is sent."""
