"""VERP return paths: an envelope sender that names the queue row it carries.

With ``sender_accounts.verp`` on, an SMTP account's MAIL FROM for row 1234 is
``news+b-1234-<mac>@shop.example`` instead of ``news@shop.example``. Bounces go to the
envelope sender, so a bounce names the row even when it quotes nothing of the original
message (no returned headers, or a Message-ID a relay rewrote). ``<mac>`` is the first
12 hex digits of HMAC-SHA256 over the account's address and the row id, keyed with a
key derived from ``MAILER_SECRET_KEY``: nobody else can make an address that names one of
our rows, and an altered id or address does not verify. The address is checked without
regard to case (some systems lowercase local parts).

Mail still reaches the account's own mailbox: ``local+anything@domain`` is delivered to
``local@domain`` by Gmail, Workspace, Microsoft 365, Postfix (``recipient_delimiter``)
and most others. A local part that would exceed 64 octets with the suffix keeps the plain
address.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable

from mailer.credentials import derive_key
from mailer.models import QueuedEmail, SenderAccount

_MAC_HEX = 12
_MAX_LOCAL = 64
_VERP = re.compile(
    r"^(?P<local>.+)\+b-(?P<id>[1-9][0-9]{0,18})-(?P<mac>[0-9a-f]{12})@(?P<domain>[^@\s]+)$",
    re.IGNORECASE,
)


class VerpCodec:
    """Makes and verifies VERP addresses with a key derived from the secret."""

    def __init__(self, secret: str) -> None:
        self._key = derive_key(secret, "mailer verp return path v1")

    def address(self, sender: str, queue_id: int) -> str:
        """The VERP form of ``sender`` for row ``queue_id`` (``sender`` itself when the
        local part would grow too long)."""
        local, _, domain = sender.rpartition("@")
        suffix = f"+b-{queue_id}-{self._mac(sender, queue_id)}"
        if len((local + suffix).encode()) > _MAX_LOCAL:
            return sender
        return f"{local}{suffix}@{domain}"

    def queue_id(self, address: str) -> int | None:
        """The row ``address`` names, or None: not a VERP address, or not one we made."""
        found = _VERP.match(address.strip().strip("<>"))
        if found is None:
            return None
        queue_id = int(found["id"])
        sender = f"{found['local']}@{found['domain']}"
        expected = self._mac(sender, queue_id)
        return queue_id if hmac.compare_digest(expected, found["mac"].lower()) else None

    def queue_ids(self, addresses: Iterable[str]) -> list[int]:
        """The rows the genuine VERP addresses among ``addresses`` name, in order, once."""
        found = (self.queue_id(a) for a in addresses)
        return list(dict.fromkeys(i for i in found if i is not None))

    def envelope_from(self, row: QueuedEmail, account: SenderAccount, default: str) -> str:
        """The envelope sender of ``row``: VERP for an SMTP account that enables it."""
        if account.verp and account.backend == "smtp":
            return self.address(default, row.id)
        return default

    def _mac(self, sender: str, queue_id: int) -> str:
        message = f"{sender.lower()}\0{queue_id}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:_MAC_HEX]
