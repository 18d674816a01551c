"""Tracking tokens: compact, URL-safe, sealed with ``MAILER_SECRET_KEY``.

A token carries everything its route needs (the queue row, when the message was
rendered, the link), so the open pixel and the click redirect answer without the
database. Tokens are sealed with AES-SIV, a deterministic authenticated encryption whose
16-byte tag is a MAC under a key derived from the secret: a token that was altered or
made up fails to open, and a recipient's address or link cannot be read from the URL.
The token's kind is authenticated too, so an open token never works as a click token.

Layout: ``base64url(AES-SIV(key, flag || payload, associated_data=kind))`` without
padding, where ``payload`` is compact JSON, deflated when that is shorter (``flag``).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import zlib
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

from mailer.credentials import derive_key
from mailer.errors import MailerError

#: Longest token accepted; longer input is rejected before any cryptography.
MAX_TOKEN_LENGTH = 4096
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{22,}$")
_RAW, _DEFLATED = b"j", b"z"
#: Shorter payloads (opens, most unsubscribes) are sealed as they are: deflate rarely
#: shortens them and costs more than the rest of the sealing.
_WORTH_DEFLATING = 64
_KINDS = {
    "open": b"mailer/open/1",
    "click": b"mailer/click/1",
    "unsubscribe": b"mailer/unsubscribe/1",
}


class InvalidToken(MailerError):
    """The token was not issued by this secret for this purpose (forged, altered, cut)."""


@dataclass(frozen=True)
class OpenToken:
    """The open pixel of message ``queue_id``, rendered at ``issued_at`` (Unix seconds)."""

    queue_id: int
    issued_at: int


@dataclass(frozen=True)
class ClickToken:
    """Link number ``link`` (its position in the HTML) of message ``queue_id``: ``url``."""

    queue_id: int
    issued_at: int
    link: int
    url: str


@dataclass(frozen=True)
class UnsubscribeToken:
    """Unsubscribe ``email``, the recipient of message ``queue_id``."""

    queue_id: int
    email: str


class TokenCodec:
    """Seals and opens tokens with a key derived from the secret."""

    def __init__(self, secret: str) -> None:
        self._siv = AESSIV(derive_key(secret, "mailer tracking tokens v1"))

    def open_token(self, token: OpenToken) -> str:
        return self._seal("open", [token.queue_id, token.issued_at])

    def click_token(self, token: ClickToken) -> str:
        return self._seal("click", [token.queue_id, token.issued_at, token.link, token.url])

    def unsubscribe_token(self, token: UnsubscribeToken) -> str:
        return self._seal("unsubscribe", [token.queue_id, token.email])

    def read_open(self, text: str) -> OpenToken:
        """The open token ``text``; InvalidToken unless this codec sealed it as one."""
        queue_id, issued_at = self._fields(self._open("open", text), (int, int))
        return OpenToken(queue_id, issued_at)

    def read_click(self, text: str) -> ClickToken:
        """The click token ``text``; InvalidToken unless this codec sealed it as one."""
        queue_id, issued_at, link, url = self._fields(
            self._open("click", text), (int, int, int, str)
        )
        return ClickToken(queue_id, issued_at, link, url)

    def read_unsubscribe(self, text: str) -> UnsubscribeToken:
        """The unsubscribe token ``text``; InvalidToken unless this codec sealed it."""
        queue_id, email = self._fields(self._open("unsubscribe", text), (int, str))
        return UnsubscribeToken(queue_id, email)

    def _seal(self, kind: str, fields: list[Any]) -> str:
        raw = json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()
        plain = _RAW + raw
        if len(raw) >= _WORTH_DEFLATING:
            deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
            packed = deflater.compress(raw) + deflater.flush()
            if len(packed) < len(raw):
                plain = _DEFLATED + packed
        sealed = self._siv.encrypt(plain, [_KINDS[kind]])
        return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")

    def _open(self, kind: str, text: str) -> Any:
        if not isinstance(text, str) or len(text) > MAX_TOKEN_LENGTH or not _TOKEN.match(text):
            raise InvalidToken("malformed token")
        try:
            sealed = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            plain = self._siv.decrypt(sealed, [_KINDS[kind]])
        except (InvalidTag, binascii.Error, ValueError):
            raise InvalidToken("token does not verify") from None
        return json.loads(_unpack(plain))

    @staticmethod
    def _fields(value: Any, types: tuple[type, ...]) -> list[Any]:
        if not isinstance(value, list) or len(value) != len(types):
            raise InvalidToken("unexpected token payload")
        for item, kind in zip(value, types, strict=True):
            if not isinstance(item, kind) or isinstance(item, bool):
                raise InvalidToken("unexpected token payload")
        return value


def _unpack(plain: bytes) -> bytes:
    flag, body = plain[:1], plain[1:]
    if flag == _RAW:
        return body
    if flag == _DEFLATED:
        inflater = zlib.decompressobj(-15)
        data = inflater.decompress(body, MAX_TOKEN_LENGTH * 8)
        if inflater.unconsumed_tail:
            raise InvalidToken("token payload too large")
        return data
    raise InvalidToken("unknown token format")
