"""A sender that DKIM-signs each message before another sender transmits it.

The worker wraps an SMTP account's sender in :class:`DkimSigningSender` when the domain
of the account's From address has a key (``mailer dkim add|generate``). Gmail accounts
are not wrapped: Google signs their mail with the domain's key set up in Workspace.
"""

from __future__ import annotations

from dataclasses import replace

from mailer.dkim_keys import DkimKey
from mailer.render import RenderedMessage
from mailer.senders import Sender, SendResult


class DkimSigningSender:
    """Signs with ``key``, then hands the message to ``inner``."""

    def __init__(self, inner: Sender, key: DkimKey) -> None:
        self.inner = inner
        self.key = key

    async def ready(self) -> None:
        await self.inner.ready()

    async def send(self, message: RenderedMessage) -> SendResult:
        signed = replace(message, data=self.key.sign(message.data))
        return await self.inner.send(signed)

    async def close(self) -> None:
        await self.inner.close()
