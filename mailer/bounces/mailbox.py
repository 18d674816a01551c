"""Bounce mailboxes: list new messages, fetch their bytes, mark them processed.

:class:`Mailbox` is what the reader needs of any mailbox; :class:`ImapMailbox` implements
it over ``imaplib`` (blocking: the reader calls it in a thread).
:class:`~mailer.bounces.gmail_mailbox.GmailMailbox` implements it over the Gmail API
(``users.messages.list`` / ``get`` with ``format=raw`` / ``modify`` adding a label) and
is what :func:`open_mailbox` returns for ``backend = 'gmail'`` accounts.

Nothing here deletes or changes a message except :meth:`Mailbox.mark_processed`: IMAP
fetches use ``BODY.PEEK[]`` (no ``\\Seen``), and a processed message gets the keyword
``$MailerProcessed``. A cursor (IMAP: ``UIDVALIDITY:last UID``) says where the reader
stopped, so mail it leaves untouched (auto-replies, unrelated mail) is read once, not at
every poll; if the server's UIDVALIDITY changes the mailbox is read again from the start
(the keyword and the reader's idempotent records keep that harmless).
"""

from __future__ import annotations

import contextlib
import imaplib
import re
import ssl
from dataclasses import dataclass
from typing import Any, Protocol

from mailer.config import Settings
from mailer.credentials import CredentialBox
from mailer.errors import MailerError
from mailer.models import SenderAccount

#: The IMAP keyword a processed report gets.
PROCESSED_KEYWORD = "$MailerProcessed"
DEFAULT_PORTS = {"tls": 993, "starttls": 143, "none": 143}
_UIDVALIDITY = re.compile(rb"UIDVALIDITY (\d+)")


class MailboxError(MailerError):
    """The mailbox cannot be reached, logged into or read (the reason, never a secret)."""


@dataclass(frozen=True)
class MailboxBatch:
    """Messages to read, oldest first (opaque references)."""

    refs: tuple[str, ...]


class Mailbox(Protocol):
    """What the bounce reader needs of a mailbox (blocking calls)."""

    def list_new(self, cursor: str | None, limit: int) -> MailboxBatch:
        """Up to ``limit`` unprocessed messages after ``cursor`` (None: from the start)."""
        ...

    def fetch(self, ref: str) -> bytes:
        """The message's raw bytes, leaving it unread."""
        ...

    def mark_processed(self, ref: str) -> None:
        """Flag or label the message so it is never listed again."""
        ...

    def cursor_after(self, ref: str) -> str:
        """The cursor that resumes after ``ref``."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ImapSettings:
    """Where an account's bounces arrive (the password in clear: keep it in memory only)."""

    host: str
    port: int
    security: str  # tls | starttls | none
    username: str
    password: str = ""
    folder: str = "INBOX"
    timeout: float = 30.0

    def __repr__(self) -> str:
        return f"ImapSettings({self.username}@{self.host}:{self.port}, {self.security})"


def imap_settings(account: SenderAccount, box: CredentialBox, timeout: float) -> ImapSettings:
    """The account's IMAP settings, password decrypted (its SMTP username by default)."""
    if not account.imap_host:
        raise MailboxError(f"account {account.id} has no bounce mailbox (--imap-host)")
    security = account.imap_security or "tls"
    password = account.imap_password_encrypted
    return ImapSettings(
        host=account.imap_host,
        port=account.imap_port or DEFAULT_PORTS[security],
        security=security,
        username=account.imap_username or account.smtp_username or account.email,
        password=box.decrypt(password) if password else "",
        timeout=timeout,
    )


def open_mailbox(account: SenderAccount, settings: Settings, box: CredentialBox) -> Mailbox:
    """A connected mailbox for ``account``: its IMAP mailbox when it has one, else (a
    ``gmail`` account) its Gmail mailbox through the API."""
    if account.backend == "gmail" and not account.imap_host:
        mailbox = gmail_mailbox(account, settings, box)
    else:
        mailbox = ImapMailbox(imap_settings(account, box, settings.imap_timeout_seconds))
    mailbox.connect()
    return mailbox


def gmail_mailbox(account: SenderAccount, settings: Settings, box: CredentialBox) -> Any:
    """The (unconnected) Gmail mailbox of a ``gmail`` account, with ``gmail.modify``."""
    # Imported here: gmail_mailbox builds on this module's interface.
    from mailer.bounces.gmail_mailbox import GmailMailbox
    from mailer.gmail import MODIFY_SCOPES, client_for_account

    try:
        return GmailMailbox(client_for_account(account, settings, box, MODIFY_SCOPES))
    except MailerError as exc:
        raise MailboxError(f"Gmail API: {exc}") from None


class ImapMailbox:
    """An IMAP folder as a :class:`Mailbox` (imaplib; one connection, used in turn)."""

    def __init__(self, settings: ImapSettings) -> None:
        self.settings = settings
        self._conn: imaplib.IMAP4 | None = None
        self._uidvalidity = ""

    def connect(self) -> None:
        s = self.settings
        try:
            self._conn = self._open()
            if s.password or s.username:
                self._conn.login(s.username, s.password)
            typ, _ = self._conn.select(_quoted(s.folder))
            if typ != "OK":
                raise MailboxError(f"IMAP folder {s.folder!r} cannot be selected")
            self._uidvalidity = self._read_uidvalidity()
        except (imaplib.IMAP4.error, OSError) as exc:
            self.close()
            raise MailboxError(f"IMAP {s.host}:{s.port} ({s.security}): {exc}") from None

    def _open(self) -> imaplib.IMAP4:
        s = self.settings
        if s.security == "tls":
            context = ssl.create_default_context()
            return imaplib.IMAP4_SSL(s.host, s.port, ssl_context=context, timeout=s.timeout)
        conn = imaplib.IMAP4(s.host, s.port, timeout=s.timeout)
        if s.security == "starttls":
            conn.starttls(ssl.create_default_context())
        return conn

    def _read_uidvalidity(self) -> str:
        _, data = self._imap.response("UIDVALIDITY")
        if data and data[0]:
            return data[0].decode() if isinstance(data[0], bytes) else str(data[0])
        _, status = self._imap.status(_quoted(self.settings.folder), "(UIDVALIDITY)")
        found = _UIDVALIDITY.search(status[0] or b"")
        return found.group(1).decode() if found else "0"

    @property
    def _imap(self) -> imaplib.IMAP4:
        if self._conn is None:
            raise MailboxError("IMAP mailbox is not connected")
        return self._conn

    def list_new(self, cursor: str | None, limit: int) -> MailboxBatch:
        validity, _, last = (cursor or "").partition(":")
        after = int(last) if validity == self._uidvalidity and last.isdigit() else 0
        data = self._command("SEARCH", f"UID {after + 1}:*", "UNKEYWORD", PROCESSED_KEYWORD)
        uids = sorted(int(u) for u in (data[0] or b"").split() if int(u) > after)
        return MailboxBatch(tuple(str(u) for u in uids[:limit]))

    def fetch(self, ref: str) -> bytes:
        data = self._command("FETCH", ref, "(BODY.PEEK[])")
        for item in data:
            if isinstance(item, tuple) and len(item) == 2:
                return bytes(item[1])
        raise MailboxError(f"IMAP message UID {ref} has disappeared")

    def mark_processed(self, ref: str) -> None:
        self._command("STORE", ref, "+FLAGS.SILENT", f"({PROCESSED_KEYWORD})")

    def cursor_after(self, ref: str) -> str:
        return f"{self._uidvalidity}:{ref}"

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            conn.logout()

    def _command(self, command: str, *args: str) -> list:
        try:
            typ, data = self._imap.uid(command, *args)
        except (imaplib.IMAP4.error, OSError) as exc:
            raise MailboxError(f"IMAP UID {command} failed: {exc}") from None
        if typ != "OK":
            raise MailboxError(f"IMAP UID {command} failed: {typ} {data!r}")
        return list(data)


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'
