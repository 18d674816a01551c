"""Console users (``admin_users``): created with ``mailer admin create-user``, passwords
hashed with argon2id (argon2-cffi), and logins checked against the per-address and per-IP
rate limits kept in ``login_attempts``."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import psycopg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from mailer.suppressions import checked_email
from mailer.sync_db import run, run_one

#: argon2-cffi's defaults are argon2id with RFC 9106's low-memory profile (64 MiB, t=3).
_HASHER = PasswordHasher()
#: Shortest password ``create-user`` accepts.
MIN_PASSWORD_LENGTH = 12
#: Longest password hashed (a bound on the work one login can cost).
MAX_PASSWORD_LENGTH = 1024


@functools.cache
def _dummy_hash() -> str:
    """A hash verified when the address is unknown, so both cases take the same time.
    Made on first use, not on import: hashing costs about 0.16 s of CPU, which
    every ``mailer`` process (the orchestrator, its template, its companions) paid."""
    return _HASHER.hash("not a password of anyone's")


@dataclass(frozen=True)
class AdminUser:
    id: int
    email: str


@dataclass(frozen=True)
class LoginLimits:
    """Failures allowed in ``window_seconds`` per address and per IP."""

    per_email: int
    per_ip: int
    window_seconds: float


@dataclass(frozen=True)
class LoginResult:
    """``user`` when the password was right; ``refused`` when the rate limit said no
    (nothing was checked then)."""

    user: AdminUser | None
    refused: bool = False


def login_allowed(failures_by_email: int, failures_by_ip: int, limits: LoginLimits) -> bool:
    """Whether another attempt may be checked, given the recent failures."""
    return failures_by_email < limits.per_email and failures_by_ip < limits.per_ip


def checked_password(password: str) -> str:
    """``password`` if long enough to use, else ValueError saying why."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValueError(f"the password must have at most {MAX_PASSWORD_LENGTH} characters")
    return password


class AdminUsers:
    """Console users and logins, on a synchronous autocommit connection."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def create(self, email: str, password: str, *, replace: bool = False) -> AdminUser:
        """Add a user (ValueError for a bad address or password, or one that exists
        unless ``replace``, which sets the existing user's password)."""
        params = {
            "email": checked_email(email),
            "password_hash": _HASHER.hash(checked_password(password)),
        }
        row = run_one(self.conn, "admin_create_user", params)
        if row is None and replace:
            row = run_one(self.conn, "admin_set_password", params)
        if row is None:
            raise ValueError(f"an admin user {params['email']} exists (--reset-password)")
        return AdminUser(row["id"], row["email"])

    def login(self, email: str, password: str, ip: str, limits: LoginLimits) -> LoginResult:
        """Check ``password`` unless the rate limit refuses; record the attempt."""
        email = email.strip()[:320]
        params = {"email": email, "ip": ip, "window_seconds": limits.window_seconds}
        counts = run_one(self.conn, "admin_login_failures", params) or {}
        if not login_allowed(counts.get("by_email", 0), counts.get("by_ip", 0), limits):
            return LoginResult(None, refused=True)
        user = self._verify(email, password[:MAX_PASSWORD_LENGTH])
        attempt = {"email": email, "ip": ip, "succeeded": user is not None}
        run(self.conn, "admin_record_login_attempt", attempt)
        if user is not None:
            run(self.conn, "admin_prune_login_attempts")
        return LoginResult(user)

    def _verify(self, email: str, password: str) -> AdminUser | None:
        dummy = _dummy_hash()  # made before the lookup: the first login of either kind pays
        row = run_one(self.conn, "admin_user_by_email", {"email": email})
        known = row is not None and row["disabled_at"] is None
        stored = row["password_hash"] if known else dummy
        try:
            _HASHER.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if row is None or not known:
            return None
        if _HASHER.check_needs_rehash(stored):
            run(
                self.conn,
                "admin_set_password",
                {"email": email, "password_hash": _HASHER.hash(password)},
            )
        return AdminUser(row["id"], row["email"])
