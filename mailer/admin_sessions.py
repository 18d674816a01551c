"""Console sessions (``admin_sessions``): the cookie carries a random token, the table only
its SHA-256, with the session's CSRF token. A login always starts a new session (and ends
the one the browser came with), so a session id planted before login is worthless."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

import psycopg

from mailer.sync_db import run, run_one


@dataclass(frozen=True)
class AdminSession:
    user_id: int
    email: str
    csrf_token: str

    def csrf_ok(self, sent: str | None) -> bool:
        """Whether ``sent`` is this session's CSRF token (constant-time)."""
        return bool(sent) and hmac.compare_digest(sent.encode(), self.csrf_token.encode())


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "replace")).digest()


class AdminSessions:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def start(self, user_id: int, ip: str, lifetime_seconds: float) -> str:
        """A new session for ``user_id``; returns the cookie's token."""
        token = secrets.token_urlsafe(32)
        params = {
            "token_hash": token_hash(token),
            "user_id": user_id,
            "csrf_token": secrets.token_urlsafe(32),
            "ip": ip,
            "lifetime_seconds": lifetime_seconds,
        }
        run(self.conn, "admin_prune_sessions")
        run(self.conn, "admin_create_session", params)
        return token

    def get(self, token: str | None) -> AdminSession | None:
        """The live session of ``token`` (None: none, expired, or its user disabled)."""
        if not token:
            return None
        row = run_one(self.conn, "admin_session", {"token_hash": token_hash(token)})
        return AdminSession(row["user_id"], row["email"], row["csrf_token"]) if row else None

    def end(self, token: str | None) -> None:
        if token:
            run(self.conn, "admin_delete_session", {"token_hash": token_hash(token)})
