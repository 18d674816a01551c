"""Applying SES notifications to the database: suppressions, events, the reputation guard.

One SNS message is applied in one transaction, keyed by its ``MessageId``
(``claim_sns_message``): a redelivered or replayed message changes nothing. Rows are
matched by the ``Message-ID`` header they were sent with. After a hard bounce or a
complaint the reputation guard judges the accounts that sent the matched rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from psycopg.types.json import Jsonb

from mailer.bounces.records import match_row
from mailer.config import Settings
from mailer.reputation import (
    ReputationStats,
    Thresholds,
    pause_params,
    stats_params,
    verdict,
)
from tracking.ses import SesNotification
from tracking.store import Row, Store, run

log = logging.getLogger("tracking.intake")


@dataclass(frozen=True)
class IntakeResult:
    """What applying one notification did."""

    duplicate: bool = False
    matched_rows: int = 0
    suppressed: list[str] = field(default_factory=list)
    events: int = 0
    paused_accounts: list[int] = field(default_factory=list)


def suppression_rows(
    notification: SesNotification, *, source: str, soft_expires_at: datetime
) -> list[dict[str, Any]]:
    """``upsert_suppressions`` input for the notification's recipients (none for a
    delivery); a soft bounce expires at ``soft_expires_at``."""
    reason = notification.suppression
    if reason is None:
        return []
    expires = soft_expires_at.isoformat() if reason == "soft_bounce" else None
    return [
        {"email": r, "reason": reason, "source": source, "expires_at": expires}
        for r in notification.recipients
    ]


def event_rows(notification: SesNotification, rows: list[Row]) -> list[dict[str, Any]]:
    """``insert_events`` input: one event per recipient, on its queue row when matched."""
    events = []
    for recipient in notification.recipients or ("",):
        row = match_row(recipient, rows) if recipient else None
        data = notification.details | {
            "recipient": recipient or None,
            "message_id": next(iter(notification.message_ids), None),
        }
        events.append(
            {
                "queue_id": row["id"] if row else None,
                "type": notification.kind,
                "data": {k: v for k, v in data.items() if v is not None},
                "suspected_bot": False,
                "created_at": None,
            }
        )
    return events


def apply_notification(
    store: Store,
    settings: Settings,
    sns_message: dict[str, Any],
    notification: SesNotification,
    now: datetime,
) -> IntakeResult:
    """Apply ``notification`` (from SNS message ``sns_message``) once."""
    source = f"ses:{notification.details.get('bounce_type', notification.kind)}".lower()
    soft_expires = now + timedelta(hours=settings.soft_bounce_suppression_hours)
    with store.transaction() as conn:
        claimed = run(
            conn,
            "claim_sns_message",
            {
                "message_id": sns_message["MessageId"],
                "topic_arn": sns_message["TopicArn"],
                "type": sns_message["Type"],
                "keep_seconds": settings.sns_max_age_seconds * 2,
            },
        )
        if not claimed:
            return IntakeResult(duplicate=True)
        rows = run(
            conn, "queue_rows_by_message_id", {"message_ids": list(notification.message_ids)}
        )
        suppress = suppression_rows(notification, source=source, soft_expires_at=soft_expires)
        changed = run(conn, "upsert_suppressions", {"rows": Jsonb(suppress)}) if suppress else []
        events = event_rows(notification, rows)
        run(
            conn,
            "insert_events",
            {"events": Jsonb(events), "burst_seconds": settings.scanner_burst_seconds},
        )
    paused = []
    if notification.suppression in ("hard_bounce", "complaint"):
        thresholds = Thresholds.from_settings(settings)
        for account_id in sorted(
            {r["sent_by_account_id"] for r in rows if r["sent_by_account_id"] is not None}
        ):
            if enforce_reputation(store, account_id, thresholds):
                paused.append(account_id)
    return IntakeResult(False, len(rows), [c["email"] for c in changed], len(events), paused)


def enforce_reputation(store: Store, account_id: int, thresholds: Thresholds) -> str | None:
    """The web app's side of :func:`mailer.reputation.enforce` (same queries, sync)."""
    row = store.fetch_one("reputation_stats", stats_params(account_id, thresholds))
    if row is None or row["status"] != "active":
        return None
    stats = ReputationStats.from_row(row)
    reason = verdict(stats, thresholds)
    if (
        reason is None
        or store.fetch_one("pause_for_reputation", pause_params(account_id, reason, stats)) is None
    ):
        return None
    log.warning("account %s %s", account_id, reason)
    return reason
