"""``Idempotency-Key``: a POST repeated with the same key replays the first response.

Keys live in PostgreSQL (``api_idempotency``), per API key, so the guarantee holds across
web processes and hosts. The first request claims the key with one INSERT; the claim
records a hash of the request (method, path and body). While it runs, a second request
with the same key gets :attr:`Claim.IN_PROGRESS` (409); afterwards the same request gets
the stored status and body back, a different one :attr:`Claim.MISMATCH` (409). A key is
good for 24 hours. A request that fails on the server's side releases its key. A claim
whose request never answered (its process was killed) is taken over by the same request
after ``stale_seconds``; the claim's time is its token, so the request that lost its claim
can neither complete nor release the new holder's (:meth:`IdempotencyKeys.complete` says
False, and the API then rolls that request's changes back).
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from mailer.sync_db import run, run_one

#: Longest Idempotency-Key accepted.
MAX_KEY_LENGTH = 255


class Claim(enum.Enum):
    NEW = "new"
    REPLAY = "replay"
    MISMATCH = "mismatch"
    IN_PROGRESS = "in_progress"


@dataclass(frozen=True)
class ClaimResult:
    """The outcome of :meth:`IdempotencyKeys.claim`; ``status_code`` and ``body`` are
    set for a replay."""

    claim: Claim
    status_code: int | None = None
    body: str | None = None
    #: For :attr:`Claim.NEW`: the claim's token, for :meth:`IdempotencyKeys.complete`.
    claimed_at: datetime | None = None


def request_hash(method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


class IdempotencyKeys:
    """Claim, complete and release keys of one API key."""

    def __init__(
        self, conn: psycopg.Connection[Any], api_key_id: int, *, stale_seconds: float = 60.0
    ) -> None:
        self.conn = conn
        self.api_key_id = api_key_id
        self.stale_seconds = stale_seconds

    def _params(self, idem_key: str) -> dict[str, Any]:
        return {"key_id": self.api_key_id, "idem_key": idem_key}

    def claim(self, idem_key: str, fingerprint: str) -> ClaimResult:
        params = self._params(idem_key) | {
            "request_hash": fingerprint,
            "stale_seconds": self.stale_seconds,
        }
        claimed = run(self.conn, "claim_idempotency_key", params)
        if claimed:
            return ClaimResult(Claim.NEW, claimed_at=claimed[0]["created_at"])
        row = run_one(self.conn, "get_idempotency_key", params)
        if row is None:  # released between the two statements: the caller may retry
            return ClaimResult(Claim.IN_PROGRESS)
        if row["request_hash"] != fingerprint:
            return ClaimResult(Claim.MISMATCH)
        if row["status_code"] is None:
            return ClaimResult(Claim.IN_PROGRESS)
        return ClaimResult(Claim.REPLAY, row["status_code"], row["response_body"])

    def complete(self, idem_key: str, claimed_at: datetime, status_code: int, body: str) -> bool:
        """Store the answer; False when the claim is no longer this request's."""
        params = self._params(idem_key) | {
            "claimed_at": claimed_at,
            "status_code": status_code,
            "response_body": body,
        }
        return bool(run(self.conn, "complete_idempotency_key", params))

    def release(self, idem_key: str, claimed_at: datetime) -> None:
        params = self._params(idem_key) | {"claimed_at": claimed_at}
        run(self.conn, "release_idempotency_key", params)
