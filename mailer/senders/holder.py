"""The account's sender, as its worker holds it across sends.

One sender (one SMTP connection or Gmail client) is reused for every send of the
account; it is made again when the account's connection settings change (an admin's
``accounts edit``). SMTP accounts whose From domain has a DKIM key get a signing sender.
"""

from __future__ import annotations

from collections.abc import Callable

from mailer.config import Settings
from mailer.credentials import CredentialBox, SecretKeyError
from mailer.db import Database
from mailer.dkim_keys import DkimKey, DkimKeyStore
from mailer.errors import AccountError
from mailer.models import SenderAccount
from mailer.senders import Sender
from mailer.senders.signing import DkimSigningSender

SenderFactory = Callable[[SenderAccount, Settings, CredentialBox], Sender]


class SenderHolder:
    """Makes, keeps and closes one account's sender."""

    def __init__(
        self, db: Database, settings: Settings, box: CredentialBox, factory: SenderFactory
    ) -> None:
        self.db = db
        self.settings = settings
        self.box = box
        self.factory = factory
        self.sender: Sender | None = None
        self._made_for: tuple[object, ...] = ()

    async def get(self, account: SenderAccount) -> Sender:
        """The sender for ``account`` as it is now set up."""
        settings = account.connection_settings()
        if self.sender is not None and settings != self._made_for:
            await self.close()
        if self.sender is None:
            sender = self.factory(account, self.settings, self.box)
            key = await self._dkim_key(account)
            self.sender = sender if key is None else DkimSigningSender(sender, key)
            self._made_for = settings
        return self.sender

    async def _dkim_key(self, account: SenderAccount) -> DkimKey | None:
        """The DKIM key of an SMTP account's From domain (read when the sender is made)."""
        if account.backend != "smtp":
            return None
        try:
            return await DkimKeyStore(self.db, self.box).for_domain(account.domain)
        except SecretKeyError as exc:
            raise AccountError(f"DKIM key of {account.domain}: {exc}", kind="config") from None

    async def close(self) -> None:
        sender, self.sender = self.sender, None
        if sender is not None:
            await sender.close()
