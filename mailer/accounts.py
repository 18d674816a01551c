"""The accounts manager: sender accounts, their status, limits and backoff."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from mailer.account_validation import InvalidAccount, check_account
from mailer.credentials import CredentialBox
from mailer.db import Database
from mailer.errors import MailerError
from mailer.models import SenderAccount


class AccountNotFound(MailerError):
    """No sender account has that id."""


class AccountExists(MailerError):
    """Another account already sends as that address on that backend."""


class AccountInUse(MailerError):
    """The account cannot be removed: queued or sending rows are pinned to it."""


class AccountManager:
    """Domain operations on ``sender_accounts``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, account_id: int) -> SenderAccount:
        row = await self.db.fetch_one("get_account", {"account_id": account_id})
        if row is None:
            raise AccountNotFound(f"no sender account with id {account_id}")
        return SenderAccount.from_row(row)

    async def find(self, account_id: int) -> SenderAccount | None:
        row = await self.db.fetch_one("get_account", {"account_id": account_id})
        return None if row is None else SenderAccount.from_row(row)

    async def list(self) -> list[SenderAccount]:
        return [SenderAccount.from_row(r) for r in await self.db.fetch_all("list_accounts")]

    async def add(
        self,
        box: CredentialBox,
        *,
        email: str,
        password: str | None = None,
        gmail_credentials: str | None = None,
        **fields: Any,
    ) -> SenderAccount:
        """Create an account; ``password`` and ``gmail_credentials`` (the JSON of a
        credentials file) are stored encrypted, never in clear."""
        params: dict[str, Any] = {
            "display_name": None,
            "backend": "smtp",
            "status": "active",
            "daily_limit": 500,
            "hourly_limit": None,
            "min_delay_ms": 1000,
            "pool": "default",
            "smtp_host": None,
            "smtp_port": None,
            "smtp_username": None,
            "smtp_security": "starttls",
            "ehlo_hostname": None,
            "smtp_tls_ca_file": None,
            "smtp_tls_verify": True,
            "verp": False,
            "gmail_project": None,
        }
        params.update({k: v for k, v in fields.items() if v is not None})
        params["email"] = email.strip()
        check_account(params)
        taken = await self.db.fetch_one("account_email_taken", params)
        if taken is not None:
            raise AccountExists(
                f"account {taken['id']} already sends as {email} ({params['backend']}): "
                f"change it with `mailer accounts edit {taken['id']}`"
            )
        params["smtp_password_encrypted"] = box.encrypt(password) if password else None
        params["gmail_credentials_encrypted"] = (
            box.encrypt(gmail_credentials) if gmail_credentials else None
        )
        row = await self.db.fetch_one("insert_account", params)
        assert row is not None
        return SenderAccount.from_row(row)

    async def set_imap(
        self,
        box: CredentialBox,
        account_id: int,
        *,
        clear: bool = False,
        imap_password: str | None = None,
        **imap: Any,
    ) -> SenderAccount:
        """Set the bounce mailbox (``imap_host``, ``imap_port``, ``imap_security``,
        ``imap_username``; None keeps a value; the password is stored encrypted);
        ``clear`` removes it."""
        params = {
            "account_id": account_id,
            "clear": clear,
            "imap_host": imap.get("imap_host"),
            "imap_port": imap.get("imap_port"),
            "imap_security": imap.get("imap_security"),
            "imap_username": imap.get("imap_username"),
            "imap_password_encrypted": box.encrypt(imap_password) if imap_password else None,
        }
        row = await self.db.fetch_one("set_account_imap", params)
        if row is None:
            raise AccountNotFound(f"no sender account with id {account_id}")
        return SenderAccount.from_row(row)

    async def set_status(
        self, account_id: int, status: str, reason: str | None = None
    ) -> SenderAccount:
        row = await self.db.fetch_one(
            "set_account_status", {"account_id": account_id, "status": status, "reason": reason}
        )
        if row is None:
            raise AccountNotFound(f"no sender account with id {account_id}")
        return SenderAccount.from_row(row)

    async def set_limits(
        self,
        account_id: int,
        *,
        daily_limit: int | None = None,
        hourly_limit: int | None = None,
        clear_hourly: bool = False,
        min_delay_ms: int | None = None,
    ) -> SenderAccount:
        check_account(
            {"daily_limit": daily_limit, "hourly_limit": hourly_limit, "min_delay_ms": min_delay_ms}
        )
        row = await self.db.fetch_one(
            "set_account_limits",
            {
                "account_id": account_id,
                "daily_limit": daily_limit,
                "hourly_limit": hourly_limit,
                "clear_hourly": clear_hourly,
                "min_delay_ms": min_delay_ms,
            },
        )
        if row is None:
            raise AccountNotFound(f"no sender account with id {account_id}")
        return SenderAccount.from_row(row)

    async def edit_smtp(
        self,
        box: CredentialBox,
        account_id: int,
        *,
        password: str | None = None,
        clear: frozenset[str] = frozenset(),
        **fields: Any,
    ) -> SenderAccount:
        """Change the SMTP settings given (None keeps a setting); ``clear`` names columns
        to set back to NULL (``smtp_port``, ``smtp_username`` with its password,
        ``ehlo_hostname``, ``smtp_tls_ca_file``)."""
        params: dict[str, Any] = {
            "account_id": account_id,
            "smtp_host": None,
            "smtp_port": None,
            "smtp_security": None,
            "smtp_username": None,
            "ehlo_hostname": None,
            "smtp_tls_ca_file": None,
            "smtp_tls_verify": None,
            "verp": None,
        }
        params.update(fields)
        check_account(params)
        params["smtp_password_encrypted"] = box.encrypt(password) if password else None
        for column in ("smtp_port", "smtp_username", "ehlo_hostname", "smtp_tls_ca_file"):
            params[f"clear_{column}"] = column in clear
        row = await self.db.fetch_one("edit_account_smtp", params)
        if row is None:
            raise AccountNotFound(f"no sender account with id {account_id}")
        return SenderAccount.from_row(row)

    async def edit_profile(
        self,
        box: CredentialBox,
        account_id: int,
        *,
        display_name: str | None = None,
        pool: str | None = None,
        gmail_credentials: str | None = None,
        gmail_project: str | None = None,
    ) -> SenderAccount:
        """Change the display name, the pool, or a Gmail account's credentials (stored
        encrypted) and project; None keeps a value."""
        check_account({"pool": pool})
        account = await self.get(account_id)
        if gmail_credentials is not None and account.backend != "gmail":
            raise InvalidAccount(f"account {account_id} is not a Gmail account")
        params = {
            "account_id": account_id,
            "display_name": display_name,
            "pool": pool,
            "gmail_credentials_encrypted": box.encrypt(gmail_credentials)
            if gmail_credentials
            else None,
            "gmail_project": gmail_project,
        }
        row = await self.db.fetch_one("edit_account_profile", params)
        if row is None:
            raise AccountNotFound(f"no sender account with id {account_id}")
        return SenderAccount.from_row(row)

    async def remove(self, account_id: int) -> str:
        """Delete the account; return its address. Its history stays (without it); refused
        with :class:`AccountInUse` while queued or sending rows are pinned to it."""
        try:
            row = await self.db.fetch_one("delete_account", {"account_id": account_id})
        except psycopg.errors.RestrictViolation as exc:
            raise AccountInUse(
                f"cannot remove: {exc.diag.message_primary}. {exc.diag.message_hint}"
            ) from None
        if row is None:
            raise AccountNotFound(f"no sender account with id {account_id}")
        return str(row["email"])

    async def suspend(self, account_id: int, reason: str) -> None:
        await self.db.execute("suspend_account", {"account_id": account_id, "reason": reason})

    async def back_off(
        self,
        account_id: int,
        reason: str,
        *,
        base_seconds: float,
        max_seconds: float,
        until: datetime | None = None,
    ) -> datetime:
        """Pause the account's sending until the returned time: ``until`` when given (the
        provider named it), else doubling per repeat."""
        row = await self.db.fetch_one(
            "back_off_account",
            {
                "account_id": account_id,
                "reason": reason,
                "base_seconds": base_seconds,
                "max_seconds": max_seconds,
                "until": until,
            },
        )
        assert row is not None
        return row["backoff_until"]

    async def back_off_project(self, account_id: int, reason: str, until: datetime) -> list[int]:
        """Back off every other active Gmail account of ``account_id``'s Cloud project
        until ``until``; return their ids."""
        rows = await self.db.fetch_all(
            "back_off_gmail_project", {"account_id": account_id, "reason": reason, "until": until}
        )
        return [r["id"] for r in rows]

    async def clear_backoff(self, account_id: int) -> None:
        await self.db.execute("clear_account_backoff", {"account_id": account_id})
