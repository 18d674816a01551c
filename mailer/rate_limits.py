"""Per-key request rate limits, shared by every web process through PostgreSQL.

A fixed one-minute window per key (``api_rate_windows``): each request adds one with a
single upsert and learns the new count, so two processes never both let the last request
of a window through. :class:`RateDecision` carries what the ``RateLimit-*`` and
``Retry-After`` headers say.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import psycopg

from mailer.sync_db import run

WINDOW_SECONDS = 60


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int
    #: the first request of this key's window
    first: bool = False

    def headers(self) -> dict[str, str]:
        """The ``RateLimit-*`` headers (IETF draft), plus ``Retry-After`` when refused."""
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
            "RateLimit-Policy": f"{self.limit};w={WINDOW_SECONDS}",
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.reset_seconds)
        return headers


def count_request(conn: psycopg.Connection[Any], api_key_id: int, limit: int) -> RateDecision:
    """Count one request of ``api_key_id`` against ``limit`` per window."""
    params = {"key_id": api_key_id, "window": WINDOW_SECONDS}
    row = run(conn, "count_api_request", params)[0]
    used = row["requests"]
    reset = max(1, math.ceil(row["reset_seconds"]))
    return RateDecision(used <= limit, limit, max(0, limit - used), reset, first=used == 1)


def prune(conn: psycopg.Connection[Any]) -> None:
    """Forget past windows and expired Idempotency-Keys, a bounded batch of each; the API
    runs it with the first request of a key's window, so no cron job is needed."""
    run(conn, "prune_api_rate_windows")
    run(conn, "prune_idempotency_keys")
