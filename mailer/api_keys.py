"""API keys: created once and shown once, stored only as a SHA-256 hash.

A key reads ``mk_<prefix>_<secret>``: the 8-character prefix is stored in clear so admins
recognise a key in ``mailer api-keys list`` and the app finds its row with one indexed
lookup; the secret carries 256 random bits, so a plain SHA-256 (compared in constant time)
is enough: there is nothing to brute-force. Scopes nest: ``read`` < ``send`` < ``admin``.
A key restricted to pools sends only through them and sees only the rows it submitted.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from mailer.sync_db import run, run_one

SCOPES = ("read", "send", "admin")
_RANK = {scope: rank for rank, scope in enumerate(SCOPES)}
PREFIX_CHARS = 8


@dataclass(frozen=True)
class ApiKey:
    """An API key as stored (never the secret)."""

    id: int
    name: str
    prefix: str
    scope: str
    pools: tuple[str, ...]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ApiKey:
        return cls(
            id=row["id"],
            name=row["name"],
            prefix=row["prefix"],
            scope=row["scope"],
            pools=tuple(row["pools"] or ()),
            created_at=row["created_at"],
            last_used_at=row["last_used_at"],
            revoked_at=row["revoked_at"],
        )

    def allows(self, scope: str) -> bool:
        """Whether this key's scope covers ``scope``."""
        return _RANK[self.scope] >= _RANK[scope]

    @property
    def restricted(self) -> bool:
        """True when the key is limited to pools (and so to its own rows)."""
        return bool(self.pools)

    @property
    def owner_filter(self) -> int | None:
        """The ``api_key_id`` a query must match: this key's id when restricted, else None."""
        return self.id if self.restricted else None


@dataclass(frozen=True)
class CreatedKey:
    """A new key and its secret, which exists only in this object."""

    key: ApiKey
    secret: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def split_prefix(secret: str) -> str | None:
    """The prefix part of a presented key, or None when it is not shaped like one."""
    parts = secret.split("_")
    if len(parts) != 3 or parts[0] != "mk" or len(parts[1]) != PREFIX_CHARS:
        return None
    return f"mk_{parts[1]}"


class ApiKeyManager:
    """Create, list, revoke and verify keys on one synchronous connection."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def create(self, name: str, scope: str, pools: tuple[str, ...] = ()) -> CreatedKey:
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
        if not name.strip():
            raise ValueError("a key needs a name")
        middle = secrets.token_hex(PREFIX_CHARS // 2)
        secret = f"mk_{middle}_{secrets.token_urlsafe(32).replace('_', '-')}"
        row = run_one(
            self.conn,
            "insert_api_key",
            {
                "name": name.strip(),
                "prefix": f"mk_{middle}",
                "key_hash": hash_secret(secret),
                "scope": scope,
                "pools": list(pools),
            },
        )
        assert row is not None
        return CreatedKey(ApiKey.from_row(row), secret)

    def list(self) -> list[ApiKey]:
        return [ApiKey.from_row(r) for r in run(self.conn, "list_api_keys")]

    def revoke(self, key: str) -> ApiKey | None:
        """Revoke the live key with this id or prefix; None when there is none."""
        row = run_one(self.conn, "revoke_api_key", {"key": key})
        return ApiKey.from_row(row) if row else None

    def verify(self, secret: str) -> ApiKey | None:
        """The live key ``secret`` is, or None (unknown, malformed or revoked)."""
        prefix = split_prefix(secret)
        if prefix is None:
            return None
        row = run_one(self.conn, "touch_api_key", {"prefix": prefix})
        if row is None or not hmac.compare_digest(row["key_hash"], hash_secret(secret)):
            return None
        return ApiKey.from_row(row)
