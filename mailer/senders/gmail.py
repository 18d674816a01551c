"""Gmail API sender: ``users.messages.send`` with the rendered bytes as ``raw``.

The message is the same bytes Mailer renders for SMTP (Message-ID, List-Unsubscribe,
tracking). google-api-python-client blocks, so each call runs in a thread under
``MAILER_GMAIL_TIMEOUT_SECONDS`` (plus a margin: the socket timeout normally ends it
first). The client is built once (:func:`mailer.gmail.client_for_account`); ``ready``
refreshes the access token when it is missing or expiring, which costs nothing otherwise.
Failures are mapped by :func:`mailer.gmail.classify`.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from typing import Any, TypeVar

from mailer.config import Settings
from mailer.credentials import CredentialBox
from mailer.gmail import GmailClient, classify, client_for_account
from mailer.models import SenderAccount
from mailer.render import RenderedMessage
from mailer.senders import SendResult

T = TypeVar("T")
ClientFactory = Callable[[SenderAccount, Settings, CredentialBox], GmailClient]
#: Added to the socket timeout for the thread as a whole (token refresh + request).
TIMEOUT_MARGIN_SECONDS = 5.0


class GmailSender:
    """Sends through one Gmail account (see module docstring)."""

    def __init__(
        self,
        account: SenderAccount,
        settings: Settings,
        box: CredentialBox,
        *,
        client_factory: ClientFactory = client_for_account,
    ) -> None:
        self.account = account
        self.settings = settings
        self._box = box
        self._factory = client_factory
        self._client: GmailClient | None = None

    async def ready(self) -> None:
        await self._authorized()

    async def send(self, message: RenderedMessage) -> SendResult:
        client = await self._authorized()
        raw = base64.urlsafe_b64encode(message.data).decode("ascii")
        request = client.service.users().messages().send(userId="me", body={"raw": raw})
        started = time.monotonic()
        try:
            response: dict[str, Any] = await self._call(request.execute)
        except Exception as exc:
            error = classify(exc, message.recipient)
            error.mail_from_at = started
            raise error from exc
        return SendResult(200, f"gmail id {response.get('id', '?')}", started)

    async def close(self) -> None:
        self._client = None

    async def _authorized(self) -> GmailClient:
        if self._client is None:
            self._client = self._factory(self.account, self.settings, self._box)
        try:
            await self._call(self._client.authorize)
        except Exception as exc:
            raise classify(exc) from exc
        return self._client

    async def _call(self, fn: Callable[[], T]) -> T:
        timeout = self.settings.gmail_timeout_seconds + TIMEOUT_MARGIN_SECONDS
        return await asyncio.wait_for(asyncio.to_thread(fn), timeout)
