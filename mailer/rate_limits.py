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

from mailer.sync_db import run_one

WINDOW_SECONDS = 60


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int

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
    row = run_one(conn, "count_api_request", {"key_id": api_key_id, "window": WINDOW_SECONDS})
    assert row is not None
    used = row["requests"]
    reset = max(1, math.ceil(row["reset_seconds"]))
    return RateDecision(used <= limit, limit, max(0, limit - used), reset)
