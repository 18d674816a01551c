"""SMTP sender over aiosmtplib: one reused connection per worker.

The connection is opened lazily, reused across messages, re-opened when the server drops
it and after ``messages_per_connection`` messages. aiosmtplib sends RSET after a refused
transaction, so one bad recipient never poisons the next message. ``classify`` turns
every aiosmtplib failure into Mailer's error tree.
"""

from __future__ import annotations

import re
import ssl
import time

import aiosmtplib

from mailer.config import Settings
from mailer.credentials import CredentialBox, SecretKeyError
from mailer.errors import (
    AccountError,
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from mailer.models import SenderAccount
from mailer.render import RenderedMessage
from mailer.senders import SendResult

_THROTTLE_TEXT = re.compile(
    r"rate|too many|throttl|limit|slow down|temporarily deferred",
    re.IGNORECASE,
)
_UNKNOWN_USER = re.compile(
    r"\b5\.1\.(1|0|10)\b|user unknown|unknown user|no such (user|mailbox|recipient)|"
    r"does not exist|mailbox unavailable|recipient address rejected|invalid recipient",
    re.IGNORECASE,
)


def classify_response(
    code: int, message: str, *, recipient: str | None = None, stage: str = "rcpt"
) -> DeliveryError:
    """The DeliveryError an SMTP reply means (pure; ``stage`` is mail/rcpt/data/auth)."""
    kwargs = {"code": code, "recipient": recipient}
    if code in (530, 534, 535, 538) or stage == "auth":
        return AccountError(f"authentication failed: {message}", kind="auth", **kwargs)
    if stage == "mail":  # the sender, not the recipient, was refused: an account matter
        kind = "throttle" if code < 500 or _THROTTLE_TEXT.search(message) else "config"
        return AccountError(
            f"sender refused: {message}", kind=kind, reached_provider=True, **kwargs
        )
    if code in (421, 454) or (code in (450, 451, 452) and _THROTTLE_TEXT.search(message)):
        return AccountError(message, kind="throttle", reached_provider=True, **kwargs)
    if 400 <= code < 500:
        return TransientDeliveryError(message, **kwargs)
    if code >= 500:
        hard = code in (550, 551, 553) and stage == "rcpt" and bool(_UNKNOWN_USER.search(message))
        return PermanentDeliveryError(message, hard_bounce=hard, **kwargs)
    return TransientDeliveryError(f"unexpected reply: {message}", **kwargs)


def classify(exc: Exception, recipient: str) -> DeliveryError:
    """The DeliveryError an aiosmtplib exception means."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        first = exc.recipients[0]
        return classify_response(first.code, first.message, recipient=recipient, stage="rcpt")
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return classify_response(exc.code, exc.message, stage="auth")
    if isinstance(exc, aiosmtplib.SMTPConnectError | aiosmtplib.SMTPConnectTimeoutError):
        return AccountError(f"cannot connect: {exc}", kind="unavailable")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        stage = "mail" if isinstance(exc, aiosmtplib.SMTPSenderRefused) else "data"
        return classify_response(exc.code, exc.message, recipient=recipient, stage=stage)
    if isinstance(
        exc,
        aiosmtplib.SMTPServerDisconnected
        | aiosmtplib.SMTPTimeoutError
        | ConnectionError
        | TimeoutError
        | OSError,
    ):
        return TransientDeliveryError(
            f"connection lost: {exc or type(exc).__name__}", recipient=recipient
        )
    if isinstance(exc, aiosmtplib.SMTPNotSupported | ValueError):
        return PermanentDeliveryError(
            f"cannot send: {exc}", recipient=recipient, reached_provider=False
        )
    return TransientDeliveryError(f"{type(exc).__name__}: {exc}", recipient=recipient)


class _TimedSMTP(aiosmtplib.SMTP):
    """Remembers when the server answered the last MAIL FROM (the limit gate paces the next
    transaction from that moment, not from before the connection was set up)."""

    mail_from_at: float | None = None

    async def mail(self, *args: object, **kwargs: object) -> aiosmtplib.SMTPResponse:
        self.mail_from_at = None
        response = await super().mail(*args, **kwargs)  # type: ignore[arg-type]
        self.mail_from_at = time.monotonic()
        return response


class SmtpSender:
    """Sends through one account's SMTP server (see module docstring)."""

    def __init__(self, account: SenderAccount, settings: Settings, box: CredentialBox) -> None:
        self.account = account
        self.settings = settings
        self._box = box
        self._client: _TimedSMTP | None = None
        self._sent_on_connection = 0

    async def ready(self) -> None:
        await self._connection()

    async def send(self, message: RenderedMessage) -> SendResult:
        client = await self._connection()
        client.mail_from_at = None
        try:
            _, response = await client.sendmail(
                message.envelope_from, [message.recipient], message.data
            )
        except Exception as exc:
            error = classify(exc, message.recipient)
            error.mail_from_at = client.mail_from_at
            if not client.is_connected or isinstance(error, AccountError):
                await self.close()
            raise error from exc
        self._sent_on_connection += 1
        return SendResult(250, response, client.mail_from_at)

    async def _connection(self) -> _TimedSMTP:
        if self._client is not None and (
            not self._client.is_connected
            or self._sent_on_connection >= self.settings.messages_per_connection
        ):
            await self.close()
        if self._client is None:
            self._client = await self._connect()
            self._sent_on_connection = 0
        return self._client

    async def _connect(self) -> _TimedSMTP:
        account = self.account
        if not account.smtp_host:
            raise AccountError("account has no smtp_host", kind="config")
        security = account.smtp_security
        client = _TimedSMTP(
            hostname=account.smtp_host,
            port=account.smtp_port or {"tls": 465, "starttls": 587}.get(security, 25),
            use_tls=security == "tls",
            start_tls=security == "starttls",
            timeout=self.settings.smtp_timeout_seconds,
            tls_context=ssl.create_default_context() if security != "none" else None,
        )
        password = self._password()
        try:
            await client.connect()
            if account.smtp_username:
                await client.login(account.smtp_username, password)
        except Exception as exc:
            if client.is_connected:
                client.close()
            error = classify(exc, "")
            if isinstance(error, AccountError):
                raise error from exc
            raise AccountError(
                f"cannot connect: {error}", kind="unavailable", code=error.code
            ) from exc
        return client

    def _password(self) -> str:
        if not self.account.smtp_username:
            return ""
        try:
            return self._box.decrypt(self.account.smtp_password_encrypted or "")
        except SecretKeyError as exc:
            raise AccountError(str(exc), kind="auth") from None

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            if client.is_connected:
                await client.quit(timeout=5)
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            client.close()
