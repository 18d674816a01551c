"""A real, scriptable SMTP server (aiosmtpd) for integration tests.

:class:`ScriptedSMTPServer` listens on 127.0.0.1 on a free port in a background thread and
accepts everything unless scripted otherwise. Rules answer like a real provider: a refused
recipient, a rate limit, a full mailbox, a dropped line, a slow server, and (with ``auth``)
bad credentials. Rules of one kind are consulted in the order they were added; the first
matching rule with uses left is applied and uses one of its ``times`` (``None`` = forever).

Example::

    with ScriptedSMTPServer() as smtp:
        smtp.reply_rcpt("550 5.1.1 <x@y>: Recipient address rejected: User unknown")
        ...  # send through smtp.host, smtp.port
        [message] = smtp.wait_for(1)
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from typing import Literal, NoReturn, cast

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from mailer.sink import SMTPServerThread

Stage = Literal["mail", "rcpt", "data"]
_STAGES = ("mail", "rcpt", "data")
_REPLY = re.compile(r"^[2-5]\d\d( |$)")
#: Largest message the scripted server accepts, in bytes (like a generous provider).
DATA_SIZE_LIMIT = 64 * 1024 * 1024


class _HideLoginDataDeprecation(logging.Filter):
    """aiosmtpd logs a deprecation warning on every successful AUTH (its own code sets
    ``Session.login_data``); hide that noise from test logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "login_data is deprecated" not in record.getMessage()


logging.getLogger("mail.log").addFilter(_HideLoginDataDeprecation())


@dataclass(frozen=True)
class ReceivedMessage:
    """One message the server accepted with 250."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    received_at: float

    @property
    def message(self) -> EmailMessage:
        """``data`` parsed with the default (modern) email policy."""
        return cast(EmailMessage, BytesParser(policy=default_policy).parsebytes(self.data))


@dataclass
class _Rule:
    """One scripted behaviour; ``remaining`` None means it never runs out."""

    action: Literal["reply", "drop", "delay"]
    stage: Stage | Literal["greeting"]
    response: str = ""
    seconds: float = 0.0
    address: str | None = None
    remaining: int | None = 1

    def matches(self, action: str, stage: str, addresses: list[str]) -> bool:
        """True if this rule applies to ``action`` at ``stage`` for these addresses."""
        if self.action != action or self.stage != stage:
            return False
        return self.address is None or self.address in (a.lower() for a in addresses)


class ScriptedSMTPServer:
    """A scriptable aiosmtpd server; use as a context manager or call start()/stop().

    ``auth=(user, password)`` advertises AUTH PLAIN/LOGIN without TLS, answers 535 5.7.8
    to wrong credentials and 530 to MAIL FROM before a successful AUTH.
    """

    def __init__(
        self,
        auth: tuple[str, str] | None = None,
        *,
        size_limit: int = DATA_SIZE_LIMIT,
        smtputf8: bool = True,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        """``size_limit`` is advertised as SIZE in EHLO (0: none, nor enforced);
        ``smtputf8`` False: the server does not offer SMTPUTF8; ``tls_context`` offers
        STARTTLS with that certificate."""
        self.auth = auth
        self.tls_context = tls_context
        self.size_limit = size_limit
        self.smtputf8 = smtputf8
        #: The name each session gave in EHLO/HELO, in order (one per transaction).
        self.ehlo_names: list[str] = []
        #: ``time.monotonic()`` of each MAIL FROM the server answered, in order.
        self.mail_from_times: list[float] = []
        self.host = "127.0.0.1"
        self.port = 0
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._rules: list[_Rule] = []
        self._received: list[ReceivedMessage] = []
        self._thread: SMTPServerThread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> ScriptedSMTPServer:
        """Bind 127.0.0.1 on a free port and serve in a background thread."""
        if self._thread is not None:
            raise RuntimeError("server already started")
        thread = SMTPServerThread(
            _ScriptedHandler(self),
            self.host,
            0,
            smtp_class=_make_smtp_class(self),
            **self._smtp_kwargs(),
        )
        thread.start()
        self._thread, self.port = thread, thread.port
        return self

    def stop(self) -> None:
        """Stop serving and close every open connection (idempotent)."""
        if self._thread is not None:
            self._thread.stop()
            self._thread = None

    def __enter__(self) -> ScriptedSMTPServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _smtp_kwargs(self) -> dict[str, object]:
        kwargs: dict[str, object] = {
            "data_size_limit": self.size_limit or None,
            "enable_SMTPUTF8": self.smtputf8,
        }
        if self.tls_context is not None:
            kwargs.update(tls_context=self.tls_context)
        if self.auth is not None:
            kwargs.update(auth_require_tls=False, authenticator=self._authenticate)
        return kwargs

    # -- observations ----------------------------------------------------------------------

    @property
    def received(self) -> list[ReceivedMessage]:
        """A snapshot of the accepted messages, oldest first."""
        with self._lock:
            return list(self._received)

    @property
    def connections(self) -> int:
        """TCP connections accepted since start()."""
        return self._thread.connections if self._thread is not None else 0

    @property
    def pending_rules(self) -> int:
        """Scripted rules that still have uses left."""
        with self._lock:
            return len(self._rules)

    def wait_for(self, n: int, timeout: float = 10.0) -> list[ReceivedMessage]:
        """Block until at least ``n`` messages were accepted and return them all.

        Raises AssertionError on timeout. Do not call it from the event loop that is
        sending (it blocks that loop); use :meth:`wait_for_async` there.
        """
        with self._arrived:
            arrived = self._arrived.wait_for(lambda: len(self._received) >= n, timeout)
            received = list(self._received)
        if not arrived:
            raise AssertionError(self._timeout_message(n, timeout))
        return received

    async def wait_for_async(self, n: int, timeout: float = 10.0) -> list[ReceivedMessage]:
        """Like :meth:`wait_for` but polls without blocking the running event loop."""
        deadline = time.monotonic() + timeout
        while len(received := self.received) < n:
            if time.monotonic() >= deadline:
                raise AssertionError(self._timeout_message(n, timeout))
            await asyncio.sleep(0.01)
        return received

    def _timeout_message(self, n: int, timeout: float) -> str:
        got = self.received
        rcpts = [m.rcpt_tos for m in got]
        return f"expected at least {n} messages within {timeout}s, got {len(got)}: {rcpts}"

    # -- scripting -------------------------------------------------------------------------

    def reply_mail(self, response: str, *, times: int | None = 1) -> None:
        """Answer MAIL FROM with ``response`` (e.g. ``"552 5.3.4 Message size exceeds fixed
        limit"``). A 2xx accepts."""
        self._add(_Rule("reply", "mail", _check_reply(response), 0.0, None, times))

    def reply_rcpt(
        self, response: str, *, address: str | None = None, times: int | None = 1
    ) -> None:
        """Answer RCPT TO (for ``address``, or any) with ``response``, e.g.
        ``"550 5.1.1 <x@y>: Recipient address rejected: User unknown"``. A 2xx accepts."""
        self._add(_Rule("reply", "rcpt", _check_reply(response), 0.0, address, times))

    def reply_data(
        self, response: str, *, address: str | None = None, times: int | None = 1
    ) -> None:
        """Answer the end of DATA with ``response`` (e.g. ``"452 4.2.2 Mailbox full"``) when
        the envelope's recipients include ``address`` (or always). A 2xx accepts."""
        self._add(_Rule("reply", "data", _check_reply(response), 0.0, address, times))

    def drop_connection(self, *, stage: Stage = "data", times: int | None = 1) -> None:
        """Abort the TCP connection on MAIL FROM, RCPT TO, or after the message data was
        received but before answering it ("data"); nothing is recorded."""
        if stage not in _STAGES:
            raise ValueError(f"stage must be one of {_STAGES}, not {stage!r}")
        self._add(_Rule("drop", stage, remaining=times))

    def greet(self, response: str = "", *, delay: float = 0.0, times: int | None = 1) -> None:
        """The next ``times`` connections wait ``delay`` seconds before the greeting and,
        with ``response`` (e.g. ``"421 4.7.0 Too many connections"``), answer that instead
        of 220 and hang up."""
        if response:
            _check_reply(response)
        self._add(_Rule("reply", "greeting", response, delay, None, times))

    def delay_data(self, seconds: float, times: int | None = 1) -> None:
        """Sleep ``seconds`` after receiving the data, before answering it."""
        self._add(_Rule("delay", "data", seconds=seconds, remaining=times))

    def reset_script(self) -> None:
        """Forget every rule: accept everything again."""
        with self._lock:
            self._rules.clear()

    def _add(self, rule: _Rule) -> None:
        if rule.remaining is not None and rule.remaining < 1:
            raise ValueError("times must be None (forever) or at least 1")
        if rule.address is not None:
            rule.address = rule.address.strip("<> ").lower()
        with self._lock:
            self._rules.append(rule)

    def _take(self, action: str, stage: str, addresses: list[str]) -> _Rule | None:
        """The first matching rule with uses left, after using one of them."""
        with self._lock:
            for rule in self._rules:
                if rule.matches(action, stage, addresses):
                    if rule.remaining is not None:
                        rule.remaining -= 1
                        if rule.remaining == 0:
                            self._rules.remove(rule)
                    return rule
        return None

    def _record(self, envelope: Envelope) -> None:
        message = ReceivedMessage(
            mail_from=envelope.mail_from or "",
            rcpt_tos=list(envelope.rcpt_tos),
            data=bytes(envelope.original_content or b""),
            received_at=time.time(),
        )
        with self._arrived:
            self._received.append(message)
            self._arrived.notify_all()

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: object
    ) -> AuthResult:
        assert self.auth is not None
        user, password = self.auth
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            user.encode(),
            password.encode(),
        )
        return AuthResult(success=ok, handled=False)


def _check_reply(response: str) -> str:
    if not _REPLY.match(response):
        raise ValueError(f"not an SMTP reply (3-digit code first): {response!r}")
    return response


class _ScriptedHandler:
    """aiosmtpd hooks applying the owner's script. A separate object because aiosmtpd
    treats every ``auth_*`` attribute of a handler as an AUTH mechanism."""

    def __init__(self, owner: ScriptedSMTPServer) -> None:
        self.owner = owner

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        """530 before AUTH (when auth is on), a scripted drop, else accept the sender."""
        if self.owner.auth is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        if self.owner._take("drop", "mail", []):
            _drop(server)
        with self.owner._lock:
            self.owner.ehlo_names.append(session.host_name or "")
            self.owner.mail_from_times.append(time.monotonic())
        rule = self.owner._take("reply", "mail", [])
        if rule is not None and not rule.response.startswith("2"):
            return await _answer(server, rule.response)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        """A scripted drop or reply, else accept the recipient."""
        if self.owner._take("drop", "rcpt", [address]):
            _drop(server)
        rule = self.owner._take("reply", "rcpt", [address])
        if rule is not None and not rule.response.startswith("2"):
            return await _answer(server, rule.response)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return rule.response if rule is not None else "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """A scripted drop, delay and/or reply; a 2xx answer records the message."""
        if self.owner._take("drop", "data", []):
            _drop(server)
        delay = self.owner._take("delay", "data", [])
        if delay is not None:
            await asyncio.sleep(delay.seconds)
        rule = self.owner._take("reply", "data", list(envelope.rcpt_tos))
        if rule is not None and not rule.response.startswith("2"):
            return await _answer(server, rule.response)
        self.owner._record(envelope)
        return rule.response if rule is not None else "250 OK"


def _make_smtp_class(owner: ScriptedSMTPServer) -> type[SMTP]:
    """aiosmtpd's SMTP with a scriptable greeting (see :meth:`ScriptedSMTPServer.greet`)."""

    class _ScriptedSMTP(SMTP):
        async def _handle_client(self) -> None:
            rule = owner._take("reply", "greeting", [])
            if rule is not None:
                await asyncio.sleep(rule.seconds)
                if rule.response:  # refuse the session, as a busy or blocking server does
                    await self.push(rule.response)
                    assert self.transport is not None
                    self.transport.close()
                    return
            await super()._handle_client()

    return _ScriptedSMTP


def _drop(server: SMTP) -> NoReturn:
    """Reset the connection now and end this session's task (aiosmtpd closes its writer)."""
    assert server.transport is not None
    server.transport.abort()
    raise asyncio.CancelledError


async def _answer(server: SMTP, response: str) -> str:
    """Return ``response`` for aiosmtpd to send, except 421: send it and hang up, as
    real servers do."""
    if not response.startswith("421"):
        return response
    await server.push(response)
    assert server.transport is not None
    server.transport.close()
    raise asyncio.CancelledError
