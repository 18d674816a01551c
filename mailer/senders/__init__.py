"""Senders: one interface over every way Mailer hands a message to a provider.

A sender belongs to one worker and one account. ``send`` either returns the provider's
acceptance or raises a :class:`~mailer.errors.DeliveryError` subclass; it never decides
what happens to the row. Backends: SMTP (:mod:`mailer.senders.smtp`) and the Gmail API
(:mod:`mailer.senders.gmail`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from mailer.config import Settings
from mailer.credentials import CredentialBox
from mailer.errors import AccountError
from mailer.models import SenderAccount
from mailer.render import RenderedMessage


@dataclass(frozen=True)
class SendResult:
    """The provider accepted the message."""

    code: int
    response: str
    #: ``time.monotonic()`` when the server answered MAIL FROM: the start of the mail
    #: transaction as the server saw it, which ``min_delay_ms`` paces.
    mail_from_at: float | None = None


class Sender(Protocol):
    """What a worker needs from a backend."""

    async def ready(self) -> None:
        """Open the connection now if there is none (connect, greeting, EHLO, STARTTLS,
        AUTH), raising AccountError on failure, so that pacing measures from the mail
        transaction and not from connection set-up. Call it before waiting for a slot."""
        ...

    async def send(self, message: RenderedMessage) -> SendResult:
        """Transmit one message; raise a DeliveryError subclass on failure."""
        ...

    async def close(self) -> None:
        """Release connections; the sender may be used again afterwards."""
        ...


def make_sender(account: SenderAccount, settings: Settings, box: CredentialBox) -> Sender:
    """The sender for ``account.backend``."""
    if account.backend == "smtp":
        from mailer.senders.smtp import SmtpSender

        return SmtpSender(account, settings, box)
    if account.backend == "gmail":
        from mailer.senders.gmail import GmailSender

        return GmailSender(account, settings, box)
    raise AccountError(
        f"backend {account.backend!r} is not available in this version", kind="config"
    )
