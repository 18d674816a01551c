"""The reputation guard's policy."""

from __future__ import annotations

from mailer.config import Settings
from mailer.reputation import ReputationStats, Thresholds, verdict

T = Thresholds(max_bounce_rate=0.05, max_complaint_rate=0.003, min_sends=200)


def test_defaults_come_from_settings():
    assert Thresholds.from_settings(Settings()) == Thresholds(0.05, 0.003, 200, 168 * 3600.0)


def test_small_samples_are_not_judged():
    assert verdict(ReputationStats(sends=199, hard_bounces=150, complaints=50), T) is None
    assert verdict(ReputationStats(sends=0, hard_bounces=3, complaints=3), T) is None


def test_bounce_rate_over_the_threshold_pauses():
    assert verdict(ReputationStats(1000, 50, 0), T) is None  # exactly 5 %: not over
    reason = verdict(ReputationStats(1000, 51, 0), T)
    assert reason is not None and "hard-bounce rate 5.10%" in reason and "51 of 1000" in reason


def test_complaint_rate_over_the_threshold_pauses():
    assert verdict(ReputationStats(1000, 0, 3), T) is None
    reason = verdict(ReputationStats(1000, 0, 4), T)
    assert reason is not None and "complaint rate 0.40%" in reason
