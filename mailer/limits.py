"""Account limits as pure functions over the times of an account's recent sends.

A send counts at the instant its attempt starts. ``daily_limit`` bounds the sends in any
rolling 24 hours, ``hourly_limit`` those in any rolling 60 minutes, and ``min_delay_ms``
the gap between two consecutive sends. Times are seconds on the database's clock.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from dataclasses import dataclass

DAY = 86_400.0
HOUR = 3_600.0


@dataclass(frozen=True)
class Limits:
    """What an admin sets on ``sender_accounts``."""

    daily_limit: int
    hourly_limit: int | None
    min_delay_ms: int


def _window_wait(times: list[float], limit: int, span: float, now: float) -> float:
    """Seconds until fewer than ``limit`` of ``times`` fall within (now - span, now]."""
    if limit <= 0:
        return math.inf
    start = bisect.bisect_right(times, now - span)
    in_window = len(times) - start
    if in_window < limit:
        return 0.0
    frees_at = times[start + in_window - limit] + span
    return max(frees_at - now, 0.0)


def seconds_until_slot(times: list[float], limits: Limits, now: float) -> float:
    """How long until the next send may start; 0 means now, ``inf`` means a limit of 0.

    ``times`` must be sorted ascending.
    """
    waits = [_window_wait(times, limits.daily_limit, DAY, now)]
    if limits.hourly_limit is not None:
        waits.append(_window_wait(times, limits.hourly_limit, HOUR, now))
    if times and limits.min_delay_ms > 0:
        waits.append(times[-1] + limits.min_delay_ms / 1000.0 - now)
    return max(max(waits), 0.0)


def remaining_sends(times: list[float], limits: Limits, now: float) -> int:
    """How many more sends the rolling windows allow right now (pacing aside)."""
    day_used = len(times) - bisect.bisect_right(times, now - DAY)
    left = limits.daily_limit - day_used
    if limits.hourly_limit is not None:
        hour_used = len(times) - bisect.bisect_right(times, now - HOUR)
        left = min(left, limits.hourly_limit - hour_used)
    return max(left, 0)


class SendWindow:
    """The account's counted send times of the last 24 hours, kept sorted."""

    def __init__(self, times: Iterable[float] = ()) -> None:
        self.times: list[float] = sorted(times)

    def record(self, at: float) -> None:
        """Count a send that started at ``at``."""
        bisect.insort(self.times, at)

    def prune(self, now: float) -> None:
        """Forget sends that left the 24-hour window."""
        del self.times[: bisect.bisect_right(self.times, now - DAY)]

    def wait(self, limits: Limits, now: float) -> float:
        """See :func:`seconds_until_slot`."""
        return seconds_until_slot(self.times, limits, now)

    def remaining(self, limits: Limits, now: float) -> int:
        """See :func:`remaining_sends`."""
        return remaining_sends(self.times, limits, now)
