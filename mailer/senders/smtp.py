"""SMTP sender over aiosmtplib: one reused connection per worker.

The connection is opened lazily (or by :meth:`SmtpSender.ready`), reused across messages,
re-opened when the server drops it and after ``messages_per_connection`` messages. The
mail transaction (MAIL, RCPT, DATA) is driven here rather than by aiosmtplib's
``sendmail`` so that the sender knows

- when the server answered MAIL FROM (``mail_from_at``: what pacing measures from);
- whether the end of the data was written before the line went quiet
  (:class:`~mailer.errors.UnknownOutcomeError`: the message may have been delivered);
- what the server advertised: a message larger than its ``SIZE`` fails before MAIL FROM,
  ``SMTPUTF8`` is used for a non-ASCII local part (or the row fails clearly), and an IDN
  domain goes out as punycode.

A refused transaction is reset (RSET) so one bad recipient never poisons the next
message. :mod:`mailer.senders.smtp_replies` says what each reply means.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import ssl
import time
from functools import cache

import aiosmtplib
from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings

from mailer.config import Settings
from mailer.credentials import CredentialBox, SecretKeyError
from mailer.errors import (
    AccountError,
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
    UnknownOutcomeError,
)
from mailer.models import SenderAccount
from mailer.render import RenderedMessage
from mailer.senders import SendResult
from mailer.senders.smtp_replies import classify_response

__all__ = [
    "SmtpSender",
    "classify",
    "classify_response",
    "drop_connection",
    "ehlo_hostname",
    "greet",
    "tls_context",
]

log = logging.getLogger("mailer.smtp")

_CONNECTION_LOST = (
    aiosmtplib.SMTPServerDisconnected,
    aiosmtplib.SMTPTimeoutError,
    ConnectionError,
    TimeoutError,
    OSError,
)


@cache
def _host_fqdn() -> str:
    return socket.getfqdn()


def ehlo_hostname(account: SenderAccount, settings: Settings) -> str:
    """The name said in EHLO: the account's own, else ``MAILER_EHLO_HOSTNAME``, else the
    host's fully qualified name."""
    return account.ehlo_hostname or settings.ehlo_hostname or _host_fqdn()


def is_fully_qualified(name: str) -> bool:
    """True for a dotted domain name (or an address literal) that strict servers accept."""
    if name.startswith("[") and name.endswith("]"):
        return True
    labels = name.rstrip(".").split(".")
    return len(labels) >= 2 and all(labels) and name.lower() not in ("localhost.localdomain",)


_warned_names: set[str] = set()


def warn_if_not_fully_qualified(name: str) -> None:
    """Log (once per name and process) that strict servers will refuse this EHLO name."""
    if is_fully_qualified(name) or name in _warned_names:
        return
    _warned_names.add(name)
    log.warning(
        "EHLO name %r is not a fully qualified domain name; strict servers (Postfix with "
        "reject_non_fqdn_helo_hostname) refuse it: set MAILER_EHLO_HOSTNAME or the "
        "account's --ehlo-hostname",
        name,
    )


def classify(
    exc: Exception, recipient: str, *, stage: str | None = None, mail_from_at: float | None = None
) -> DeliveryError:
    """The DeliveryError an aiosmtplib exception means (``stage`` when the caller knows
    which command failed)."""
    kwargs = {"recipient": recipient, "mail_from_at": mail_from_at}
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        first = exc.recipients[0]
        return classify_response(first.code, first.message, stage="rcpt", **kwargs)
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return classify_response(exc.code, exc.message, stage="auth")
    if isinstance(exc, aiosmtplib.SMTPConnectResponseError):
        return classify_response(exc.code, exc.message, stage="greeting")
    verify = _certificate_error(exc)
    if verify is not None:
        return AccountError(
            f"TLS certificate verification failed ({verify}): if the server uses a "
            "private CA, give its certificate with `mailer accounts edit ID --tls-ca-file "
            "PEM`; check smtp_host matches the certificate's name",
            kind="config",
        )
    if isinstance(exc, aiosmtplib.SMTPConnectError | aiosmtplib.SMTPConnectTimeoutError):
        return AccountError(f"cannot connect: {exc}", kind="unavailable")
    if isinstance(exc, aiosmtplib.SMTPHeloError):
        return AccountError(
            f"EHLO refused: {exc.code} {exc.message} (set MAILER_EHLO_HOSTNAME or the "
            "account's --ehlo-hostname to this host's fully qualified name)",
            kind="config",
            code=exc.code,
        )
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        if stage is None:
            if isinstance(exc, aiosmtplib.SMTPSenderRefused):
                stage = "mail"
            elif isinstance(exc, aiosmtplib.SMTPRecipientRefused):
                stage = "rcpt"
            else:
                stage = "data"
        return classify_response(exc.code, exc.message, stage=stage, **kwargs)
    if isinstance(exc, _CONNECTION_LOST):
        return TransientDeliveryError(f"connection lost: {exc or type(exc).__name__}", **kwargs)
    if isinstance(exc, aiosmtplib.SMTPNotSupported | ValueError):
        return PermanentDeliveryError(f"cannot send: {exc}", reached_provider=False, **kwargs)
    return TransientDeliveryError(f"{type(exc).__name__}: {exc}", **kwargs)


def starttls_unsupported(exc: BaseException, account: SenderAccount) -> str | None:
    """When ``exc`` says the server offers no STARTTLS: what to change, in words."""
    if not isinstance(exc, aiosmtplib.SMTPException) or "STARTTLS" not in str(exc):
        return None
    return (
        f"{account.smtp_host} does not offer STARTTLS (the account's --smtp-security is "
        f"starttls): change it with `mailer accounts edit {account.id} --smtp-security none` "
        "for a plain server such as `mailer sink`, or `--smtp-security tls` for TLS from "
        f"the first byte (port 465); then `mailer accounts resume {account.id}`"
    )


def _certificate_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


#: What an envelope address may contain to go on the command line as it is: Mailer's
#: renderer validated it, so this only guards that promise.
_PLAIN_ADDRESS = re.compile(r"[^\s<>()\[\]\\,;:\"@]+@[^\s<>()\[\]\\,;:\"@]+")


async def _envelope_command(
    client: aiosmtplib.SMTP, verb: str, address: str, options: list[str], encoding: str
) -> None:
    """``MAIL FROM`` or ``RCPT TO`` as aiosmtplib's ``mail()``/``rcpt()`` send it (same
    bytes, same exceptions), without their per-call address parsing (``email.utils``,
    a tenth of a worker's CPU): the address was validated when the message was rendered.
    Anything unexpected takes aiosmtplib's own path."""
    if client.is_ehlo_or_helo_needed or not _PLAIN_ADDRESS.fullmatch(address):
        send = client.mail if verb == "mail" else client.rcpt
        await send(address, options=options, encoding=encoding)
        return
    command, prefix = (b"MAIL", b"FROM:") if verb == "mail" else (b"RCPT", b"TO:")
    argument = prefix + b"<" + address.encode(encoding) + b">"
    reply = await client.execute_command(
        command, argument, *(option.encode("ascii") for option in options)
    )
    if verb == "mail" and reply.code != 250:
        raise aiosmtplib.SMTPSenderRefused(reply.code, reply.message, address)
    if verb == "rcpt" and reply.code not in (250, 251):
        raise aiosmtplib.SMTPRecipientRefused(reply.code, reply.message, address)


def _ascii_address(address: str) -> tuple[str, bool]:
    """``address`` with an IDN domain in punycode, and whether it still needs SMTPUTF8
    (a non-ASCII local part)."""
    local, at, domain = address.rpartition("@")
    if not at:
        return address, not address.isascii()
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            return address, True
    return f"{local}@{domain}", not local.isascii()


async def greet(client: aiosmtplib.SMTP) -> aiosmtplib.SMTPResponse:
    """EHLO, or HELO when a connected server refuses EHLO (a server without ESMTP)."""
    try:
        return await client.ehlo()
    except aiosmtplib.SMTPHeloError:
        if not client.is_connected:
            raise
        return await client.helo()


def tls_context(account: SenderAccount) -> ssl.SSLContext:
    """The TLS context for ``account``'s server: the system's trusted CAs, or the
    account's ``smtp_tls_ca_file``; no verification (logged as a warning) when
    ``smtp_tls_verify`` is off. AccountError (``config``) when the CA file cannot be read."""
    try:
        context = ssl.create_default_context(cafile=account.smtp_tls_ca_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise AccountError(
            f"cannot load the account's TLS CA file {account.smtp_tls_ca_file!r}: {exc} "
            f"(fix it with `mailer accounts edit {account.id} --tls-ca-file PEM`)",
            kind="config",
        ) from None
    if not account.smtp_tls_verify:
        log.warning(
            "account %s: TLS certificate verification is OFF (--tls-no-verify): anyone "
            "on the path to %s can read and change this mail and its password; use "
            "--tls-ca-file instead",
            account.id,
            account.smtp_host,
        )
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class SmtpSender:
    """Sends through one account's SMTP server (see module docstring)."""

    def __init__(self, account: SenderAccount, settings: Settings, box: CredentialBox) -> None:
        self.account = account
        self.settings = settings
        self._box = box
        self._client: aiosmtplib.SMTP | None = None
        self._sent_on_connection = 0
        self.ehlo_name = ehlo_hostname(account, settings)
        warn_if_not_fully_qualified(self.ehlo_name)

    async def ready(self) -> None:
        """Connect (greeting, EHLO, STARTTLS, AUTH) if not connected; AccountError if that
        fails. The worker calls this before waiting for its pacing slot."""
        await self._connection()

    async def send(self, message: RenderedMessage) -> SendResult:
        client = await self._connection()
        mail_from_at: float | None = None
        stage = "mail"
        end_written = False
        try:
            sender, recipient, options, encoding = self._envelope(client, message)
            try:
                await _envelope_command(client, "mail", sender, options, encoding)
            except aiosmtplib.SMTPResponseException:
                mail_from_at = time.monotonic()  # answered, if with a refusal
                raise
            mail_from_at = time.monotonic()
            stage = "rcpt"
            await _envelope_command(client, "rcpt", recipient, [], encoding)
            stage = "data"
            reply = await client.execute_command(b"DATA")
            if reply.code != 354:
                raise aiosmtplib.SMTPDataError(reply.code, reply.message)
            protocol = client.protocol
            if protocol is None:
                raise aiosmtplib.SMTPServerDisconnected("Connection lost")
            protocol.write(_dot_stuffed(message.data))
            end_written = True
            reply = await protocol.read_response(timeout=self.settings.smtp_timeout_seconds)
            if reply.code != 250:
                raise aiosmtplib.SMTPDataError(reply.code, reply.message)
        except DeliveryError as error:  # refused before anything was sent
            raise error
        except Exception as exc:
            if end_written and isinstance(exc, _CONNECTION_LOST):
                await self.close()
                raise UnknownOutcomeError(
                    "the message data was sent but no reply came: it may have been "
                    f"delivered ({exc or type(exc).__name__})",
                    recipient=message.recipient,
                    mail_from_at=mail_from_at,
                ) from exc
            error = classify(exc, message.recipient, stage=stage, mail_from_at=mail_from_at)
            await self._after_refusal(client, error)
            raise error from exc
        self._sent_on_connection += 1
        return SendResult(reply.code, reply.message, mail_from_at=mail_from_at)

    def _envelope(
        self, client: aiosmtplib.SMTP, message: RenderedMessage
    ) -> tuple[str, str, list[str], str]:
        """Sender, recipient, MAIL FROM options and the address encoding; refuses (before
        MAIL FROM) what this server cannot take."""
        sender, sender_utf8 = _ascii_address(message.envelope_from)
        recipient, recipient_utf8 = _ascii_address(message.recipient)
        options: list[str] = []
        encoding = "ascii"
        if sender_utf8 or recipient_utf8:
            if not client.supports_extension("smtputf8"):
                which = "recipient" if recipient_utf8 else "sender"
                raise PermanentDeliveryError(
                    f"the {which} address has a non-ASCII local part, which needs SMTPUTF8, "
                    "and this server does not offer SMTPUTF8",
                    recipient=message.recipient,
                    reached_provider=False,
                )
            options.append("SMTPUTF8")
            encoding = "utf-8"
            if client.supports_extension("8bitmime"):
                options.append("BODY=8BITMIME")
        if client.supports_extension("size"):
            size = len(message.data)
            limit = _advertised_size(client)
            if limit and size > limit:
                raise PermanentDeliveryError(
                    f"message too large for the server: {size} bytes, it accepts at most "
                    f"{limit} (SIZE in its EHLO reply)",
                    recipient=message.recipient,
                    reached_provider=False,
                )
            options.append(f"SIZE={size}")
        return sender, recipient, options, encoding

    async def _after_refusal(self, client: aiosmtplib.SMTP, error: DeliveryError) -> None:
        """Reset a refused transaction for the next message, or drop a broken connection."""
        if isinstance(error, AccountError) or not client.is_connected:
            await self.close()
            return
        try:
            await client.rset()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            await self.close()

    async def _connection(self) -> aiosmtplib.SMTP:
        if self._client is not None and (
            not self._client.is_connected
            or self._sent_on_connection >= self.settings.messages_per_connection
        ):
            await self.close()
        if self._client is None:
            self._client = await self._connect()
            self._sent_on_connection = 0
        return self._client

    async def _connect(self) -> aiosmtplib.SMTP:
        account = self.account
        if not account.smtp_host:
            raise AccountError("account has no smtp_host", kind="config")
        security = account.smtp_security
        client = aiosmtplib.SMTP(
            hostname=account.smtp_host,
            port=account.smtp_port or {"tls": 465, "starttls": 587}.get(security, 25),
            use_tls=security == "tls",
            start_tls=security == "starttls",
            timeout=self.settings.smtp_timeout_seconds,
            local_hostname=self.ehlo_name,
            tls_context=tls_context(account) if security != "none" else None,
        )
        password = self._password()
        try:
            await client.connect()
            if client.is_ehlo_or_helo_needed:
                await greet(client)
            if account.smtp_username:
                await client.login(account.smtp_username, password)
        except Exception as exc:
            await drop_connection(client, client.transport)
            if hint := starttls_unsupported(exc, account):
                raise AccountError(hint, kind="config") from exc
            error = classify(exc, "", stage="greeting")
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
        """QUIT and drop the connection; its socket is closed when this returns. Under TLS
        the socket is not left waiting for the server's close_notify (smtplib does not wait
        either): a worker stopping right after would leave it open behind its event loop."""
        client, self._client = self._client, None
        if client is None:
            return
        transport = client.transport
        try:
            if client.is_connected:
                await client.quit(timeout=5)
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            pass
        finally:
            await drop_connection(client, transport)


async def drop_connection(client: aiosmtplib.SMTP, transport: asyncio.BaseTransport | None) -> None:
    """Close ``client`` and the socket under it now, TLS or not (asyncio would keep a
    TLS connection's socket open until the server's close_notify, past the end of a
    worker or command that stops right after). ``transport``: the client's, read before
    a QUIT, which forgets it."""
    client.close()
    if transport is not None:
        transport.abort()
        await asyncio.sleep(0)  # the loop closes an aborted socket on its next turn


def _advertised_size(client: aiosmtplib.SMTP) -> int:
    """The SIZE limit of the server's EHLO reply in bytes (0: none declared)."""
    value = client.esmtp_extensions.get("size", "").strip()
    return int(value) if value.isdigit() else 0


def _dot_stuffed(data: bytes) -> bytes:
    """The DATA payload as aiosmtplib would write it: CRLF lines, leading dots doubled,
    ending in CRLF.CRLF."""
    payload = PERIOD_REGEX.sub(b"..", normalize_message_line_endings(data))
    return payload + b".\r\n"
