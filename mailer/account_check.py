"""``mailer accounts check``: does an account work, tested without sending anything.

SMTP: the TLS settings the worker uses (the account's CA file, or no verification),
connect (TLS from the start for ``tls``), EHLO with the worker's name (HELO if the
server has no ESMTP), STARTTLS (``starttls``), AUTH (when the account has a username),
QUIT. Gmail: build the client, get an access token, ``users.getProfile``, and compare
the mailbox with the account's address. Each step reports what it found in words; the
first failure ends the check.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiosmtplib

from mailer.config import Settings
from mailer.credentials import CredentialBox, SecretKeyError
from mailer.errors import AccountError, DeliveryError
from mailer.gmail import classify, client_for_account
from mailer.models import SenderAccount
from mailer.senders.smtp import (
    drop_connection,
    ehlo_hostname,
    greet,
    is_fully_qualified,
    starttls_unsupported,
    tls_context,
)


@dataclass(frozen=True)
class Step:
    name: str
    ok: bool
    detail: str


@dataclass
class Report:
    steps: list[Step] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(step.ok for step in self.steps)

    async def run(self, name: str, action: Callable[[], Awaitable[str]]) -> bool:
        """Run one step; record what it says, or its failure in words. False: failed."""
        try:
            detail = await action()
        except DeliveryError as exc:
            self.steps.append(Step(name, False, str(exc)))
            return False
        except (aiosmtplib.SMTPException, OSError, SecretKeyError) as exc:
            self.steps.append(Step(name, False, f"{type(exc).__name__}: {exc}"))
            return False
        self.steps.append(Step(name, True, detail))
        return True


async def check_account(account: SenderAccount, settings: Settings, box: CredentialBox) -> Report:
    """Check ``account`` by its backend."""
    if account.backend == "gmail":
        return await check_gmail(account, settings, box)
    return await check_smtp(account, settings, box)


async def check_smtp(account: SenderAccount, settings: Settings, box: CredentialBox) -> Report:
    report = Report()
    security = account.smtp_security
    port = account.smtp_port or {"tls": 465, "starttls": 587}.get(security, 25)
    context: ssl.SSLContext | None = None

    async def tls_settings() -> str:
        nonlocal context
        context = tls_context(account)
        if not account.smtp_tls_verify:
            return "certificate verification OFF (--tls-no-verify)"
        return f"verifying the server against {account.smtp_tls_ca_file or 'the system CAs'}"

    if security != "none" and not await report.run("TLS settings", tls_settings):
        return report
    name = ehlo_hostname(account, settings)
    client = aiosmtplib.SMTP(
        hostname=account.smtp_host or "",
        port=port,
        use_tls=security == "tls",
        start_tls=False,
        timeout=settings.smtp_timeout_seconds,
        local_hostname=name,
        tls_context=context,
    )

    async def connect() -> str:
        if not account.smtp_host:
            raise OSError("the account has no smtp_host")
        response = await client.connect()
        return f"{account.smtp_host}:{port} answered {response.code} {response.message}"

    async def ehlo() -> str:
        response = await greet(client)
        said = f"{name}: {response.code} {response.message.splitlines()[0]}"
        if not is_fully_qualified(name):
            said += " (not a fully qualified name: strict servers refuse it)"
        return said

    async def starttls() -> str:
        try:
            response = await client.starttls()
        except aiosmtplib.SMTPException as exc:
            hint = starttls_unsupported(exc, account)
            if hint is None:
                raise
            raise AccountError(hint, kind="config") from None
        return f"{response.code} {response.message}"

    async def login() -> str:
        password = box.decrypt(account.smtp_password_encrypted or "")
        response = await client.login(account.smtp_username or "", password)
        return f"{response.code} {response.message}"

    async def quit_() -> str:
        transport = client.transport
        response = await client.quit()
        await drop_connection(client, transport)
        return f"{response.code} {response.message}"

    try:
        ok = await report.run("connect", connect) and await report.run("EHLO", ehlo)
        if ok and security == "starttls":
            ok = await report.run("STARTTLS", starttls)
        if ok and account.smtp_username:
            ok = await report.run("AUTH", login)
        if ok:
            await report.run("QUIT", quit_)
    finally:
        await drop_connection(client, client.transport)
    return report


async def check_gmail(account: SenderAccount, settings: Settings, box: CredentialBox) -> Report:
    report = Report()
    client = None

    async def build() -> str:
        nonlocal client
        client = client_for_account(account, settings, box)
        return "credentials decrypted and loaded"

    async def blocking(fn: Callable[[], object]) -> object:
        try:
            return await asyncio.wait_for(asyncio.to_thread(fn), settings.gmail_timeout_seconds + 5)
        except Exception as exc:
            raise classify(exc) from exc

    async def token() -> str:
        assert client is not None
        await blocking(client.authorize)
        return "access token obtained"

    async def profile() -> str:
        assert client is not None
        found = await blocking(client.profile)
        mailbox = str(found.get("emailAddress", "")) if isinstance(found, dict) else ""
        if mailbox.lower() != account.email.lower():
            raise OSError(f"the credentials open mailbox {mailbox!r}, not {account.email!r}")
        return f"mailbox {mailbox}"

    if await report.run("credentials", build) and await report.run("token", token):
        await report.run("getProfile", profile)
    return report
