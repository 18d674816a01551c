"""Retry policy: what each error class does to its row."""

from __future__ import annotations

import random

from mailer.errors import (
    AccountError,
    InvalidMessageError,
    PermanentDeliveryError,
    TransientDeliveryError,
    UnknownOutcomeError,
)
from mailer.retry import decide, retry_delay


def _decide(error, attempts=1, max_attempts=5):
    return decide(
        error, attempts=attempts, max_attempts=max_attempts, base=60, cap=3600, rng=random.Random(1)
    )


def test_retry_delay_doubles_with_jitter_and_cap():
    rng = random.Random(7)
    for attempt, ceiling in [(1, 60), (2, 120), (3, 240), (10, 3600)]:
        delay = retry_delay(attempt, base=60, cap=3600, rng=rng)
        assert ceiling / 2 <= delay <= ceiling


def test_transient_retries_until_max_attempts():
    first = _decide(TransientDeliveryError("busy", code=451), attempts=1)
    assert (first.status, first.outcome, first.counted) == ("queued", "transient", True)
    assert 30 <= first.retry_seconds <= 60
    last = _decide(TransientDeliveryError("busy", code=451), attempts=5)
    assert (last.status, last.retry_seconds) == ("failed", None)


def test_network_failure_before_provider_does_not_count():
    decision = _decide(TransientDeliveryError("reset", reached_provider=False))
    assert decision.counted is False and decision.status == "queued"


def test_permanent_fails_at_once_and_hard_bounce_suppresses():
    bounce = _decide(PermanentDeliveryError("user unknown", code=550, hard_bounce=True))
    assert (bounce.status, bounce.suppress_reason) == ("failed", "hard_bounce")
    full = _decide(PermanentDeliveryError("mailbox full", code=552))
    assert (full.status, full.suppress_reason) == ("failed", None)


def test_account_errors_refund_the_attempt():
    decision = _decide(AccountError("535 bad credentials", kind="auth", code=535), attempts=5)
    assert (decision.status, decision.refund, decision.counted) == ("queued", True, False)


def test_invalid_rows_fail_without_counting():
    decision = _decide(InvalidMessageError("bad address"))
    assert (decision.status, decision.outcome, decision.counted) == ("failed", "invalid", False)


def test_unknown_outcome_counts_and_retries_with_the_same_row_or_fails_when_asked():
    lost = UnknownOutcomeError("connection lost after the end of DATA")
    retried = _decide(lost, attempts=1)
    assert (retried.status, retried.outcome, retried.counted) == ("queued", "unknown", True)
    assert retried.retry_seconds is not None and not retried.refund
    failed = decide(lost, attempts=1, max_attempts=5, base=60, cap=3600, fail_unknown=True)
    assert (failed.status, failed.outcome, failed.counted) == ("failed", "unknown", True)
    assert _decide(lost, attempts=5).status == "failed"
