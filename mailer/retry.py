"""Retry policy: what a failed attempt does to its row, as pure functions.

``decide`` maps an error and the row's attempt count to the row's next state. It is the
only place that turns error classes into queue states.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from mailer.errors import (
    AccountError,
    DeliveryError,
    DestinationThrottledError,
    InvalidMessageError,
    PermanentDeliveryError,
    TransientDeliveryError,
    UnknownOutcomeError,
)


@dataclass(frozen=True)
class Decision:
    """The row's next state after an attempt."""

    status: str  # queued | failed
    outcome: str  # send_logs.outcome
    counted: bool  # counts against the account's limits
    retry_seconds: float | None = None
    refund: bool = False  # the attempt does not count towards max_attempts
    suppress_reason: str | None = None


def retry_delay(
    attempt: int, *, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """Seconds before retry number ``attempt`` (1-based): ``base * 2**(attempt-1)`` capped
    at ``cap``, with jitter drawn from the upper half so retries of one batch spread out."""
    ceiling = min(cap, base * 2 ** max(attempt - 1, 0))
    return (rng or random).uniform(ceiling / 2, ceiling)


def decide(
    error: Exception,
    *,
    attempts: int,
    max_attempts: int,
    base: float,
    cap: float,
    rng: random.Random | None = None,
    fail_unknown: bool = False,
) -> Decision:
    """The row's fate after ``error`` on its ``attempts``-th attempt. An unknown outcome
    (reply lost after DATA) counts and is retried like a transient failure, or fails at
    once with ``fail_unknown``."""
    if isinstance(error, InvalidMessageError):
        return Decision(status="failed", outcome="invalid", counted=False)
    if isinstance(error, AccountError):
        return Decision(status="queued", outcome="account", counted=False, refund=True)
    counted = isinstance(error, DeliveryError) and error.reached_provider
    if isinstance(error, PermanentDeliveryError):
        reason = "hard_bounce" if error.hard_bounce else None
        return Decision(
            status="failed", outcome="permanent", counted=counted, suppress_reason=reason
        )
    if isinstance(error, DestinationThrottledError):  # that provider's slot, not the row's fault
        return Decision(
            status="queued",
            outcome="transient",
            counted=counted,
            retry_seconds=error.retry_seconds,
            refund=True,
        )
    # The data went out and no reply came: it may have been delivered, so it always counts
    # against the limits; the retry keeps the Message-ID (receivers de-duplicate on it).
    outcome = "unknown" if isinstance(error, UnknownOutcomeError) else "transient"
    counted = counted or outcome == "unknown"
    if attempts >= max_attempts or (outcome == "unknown" and fail_unknown):
        return Decision(status="failed", outcome=outcome, counted=counted)
    delay = retry_delay(attempts, base=base, cap=cap, rng=rng)
    return Decision(status="queued", outcome=outcome, counted=counted, retry_seconds=delay)


__all__ = ["Decision", "TransientDeliveryError", "decide", "retry_delay"]
