"""The reputation guard: pause an account whose recent mail bounces or is reported as spam.

Mailbox providers throttle and then block senders whose hard-bounce or complaint rates
stay high; pausing early protects the account (and its domain). :func:`verdict` is the
policy, a pure function of an account's recent numbers; :func:`enforce` reads them
(``reputation_stats``) and pauses the account (``pause_for_reputation``: status
``paused``, the reason in ``last_error``, an ``account_events`` row). Workers run it for
their own account from the heartbeat; the web app after bounce and complaint intake.
Resuming the account (``mailer accounts resume``) starts its record afresh.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Self

from psycopg.types.json import Jsonb

from mailer.config import Settings
from mailer.db import Database

log = logging.getLogger("mailer.reputation")


@dataclass(frozen=True)
class Thresholds:
    """When an account is paused (see the ``reputation_*`` settings)."""

    max_bounce_rate: float = 0.05
    max_complaint_rate: float = 0.003
    min_sends: int = 200
    window_seconds: float = 7 * 24 * 3600.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls(
            settings.reputation_max_bounce_rate,
            settings.reputation_max_complaint_rate,
            settings.reputation_min_sends,
            settings.reputation_window_hours * 3600,
        )


@dataclass(frozen=True)
class ReputationStats:
    """An account's sends that reached a verdict, and what came back, in the window."""

    sends: int
    hard_bounces: int
    complaints: int

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Self:
        return cls(int(row["sends"]), int(row["hard_bounces"]), int(row["complaints"]))


def verdict(stats: ReputationStats, thresholds: Thresholds) -> str | None:
    """Why the account must be paused, or None. Below ``min_sends`` sends nothing is
    judged; a rate must exceed its threshold."""
    if stats.sends <= 0 or stats.sends < thresholds.min_sends:
        return None
    bounce_rate = stats.hard_bounces / stats.sends
    if bounce_rate > thresholds.max_bounce_rate:
        return (
            f"paused by the reputation guard: hard-bounce rate {bounce_rate:.2%} "
            f"({stats.hard_bounces} of {stats.sends} recent sends) is over "
            f"{thresholds.max_bounce_rate:.2%}"
        )
    complaint_rate = stats.complaints / stats.sends
    if complaint_rate > thresholds.max_complaint_rate:
        return (
            f"paused by the reputation guard: complaint rate {complaint_rate:.2%} "
            f"({stats.complaints} of {stats.sends} recent sends) is over "
            f"{thresholds.max_complaint_rate:.2%}"
        )
    return None


def stats_params(account_id: int, thresholds: Thresholds) -> dict[str, Any]:
    """Parameters of the ``reputation_stats`` query."""
    return {"account_id": account_id, "window_seconds": thresholds.window_seconds}


def pause_params(account_id: int, reason: str, stats: ReputationStats) -> dict[str, Any]:
    """Parameters of the ``pause_for_reputation`` query."""
    return {
        "account_id": account_id,
        "reason": reason,
        "data": Jsonb(
            {
                "reason": reason,
                "sends": stats.sends,
                "hard_bounces": stats.hard_bounces,
                "complaints": stats.complaints,
            }
        ),
    }


async def enforce(db: Database, account_id: int, thresholds: Thresholds) -> str | None:
    """Pause ``account_id`` if its numbers say so; return the reason when this call
    paused it (None when it is fine, not active, or does not exist)."""
    row = await db.fetch_one("reputation_stats", stats_params(account_id, thresholds))
    if row is None or row["status"] != "active":
        return None
    stats = ReputationStats.from_row(row)
    reason = verdict(stats, thresholds)
    if reason is None:
        return None
    paused = await db.fetch_one("pause_for_reputation", pause_params(account_id, reason, stats))
    if paused is None:
        return None
    log.warning("account %s %s", account_id, reason)
    return reason
