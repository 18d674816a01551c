"""When the console recounts a snapshot (:func:`mailer.console_snapshots.plan`) and how a
campaign's line mixes saved and live figures."""

from __future__ import annotations

from datetime import UTC, datetime

from mailer.console_campaigns import campaign_row
from mailer.console_snapshots import INLINE_MS, Action, plan


def test_nothing_saved_yet_is_counted_during_the_view():
    assert plan(None, None, max_age=60) is Action.RECOUNT_NOW


def test_a_cheap_snapshot_is_recounted_on_every_view_however_fresh():
    assert plan(0.0, INLINE_MS - 1, max_age=60) is Action.RECOUNT_NOW


def test_a_costly_snapshot_is_shown_while_fresh_and_recounted_in_the_background_when_stale():
    assert plan(59.0, INLINE_MS, max_age=60) is Action.USE
    assert plan(61.0, 300.0, max_age=60) is Action.RECOUNT_LATER


def test_a_campaign_line_adds_live_pending_rows_to_the_saved_finished_ones():
    saved = {
        "campaign": "spring",
        "sent": 7,
        "failed": 1,
        "suppressed": 1,
        "cancelled": 0,
        "last_sent_at": "2026-12-01T10:00:00.5+00:00",
    }
    row = campaign_row(saved, {"campaign": "spring", "pending": 3, "state": "paused"})
    assert (row["total"], row["pending"], row["sent"], row["state"]) == (12, 3, 7, "paused")
    assert row["last_sent_at"] == datetime(2026, 12, 1, 10, 0, 0, 500000, tzinfo=UTC)
    assert campaign_row(saved | {"last_sent_at": None}, row)["last_sent_at"] is None
