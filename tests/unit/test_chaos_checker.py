"""The chaos checker on synthetic histories: a clean one passes, and each invariant
catches a history built to break it (and tolerates what the contract allows)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from chaos.checker import check
from chaos.history import (
    Account,
    Attempt,
    Change,
    Delivery,
    History,
    Row,
    Suppression,
    load_deliveries,
    load_history,
    save_history,
)

T0 = 1_000_000.0
A = Account(1, "a@chaos.example.com", "default", "active", 100, 6, 50)
B = Account(2, "b@chaos.example.com", "default", "active", 100, None, 20)


def mid(n: int) -> str:
    return f"<{n}.x@chaos.example.com>"


def delivery(n: int, at: float, account: Account = A, acked: bool = True) -> Delivery:
    return Delivery(
        account.email, mid(n), account.email, (f"user{n}@example.org",), at, at + 0.01, acked
    )


def sent_row(n: int, account_id: int | None = None) -> Row:
    return Row(n, "sent", f"user{n}@example.org", account_id, "default", mid(n), T0)


def attempt(n: int, account: Account = A, outcome: str = "sent", response: str = "") -> Attempt:
    return Attempt(n, account.id, outcome, True, response, T0 + n)


def clean_history(count: int = 4, gap: float = 0.1) -> History:
    """``count`` rows sent once each through account A, ``gap`` seconds apart."""
    return History(
        deliveries=[delivery(n, T0 + n * gap) for n in range(1, count + 1)],
        rows=[sent_row(n) for n in range(1, count + 1)],
        attempts=[attempt(n) for n in range(1, count + 1)],
        initial=[A, B],
        final=[A, B],
        ended_at=T0 + 60,
    )


def test_a_clean_history_passes_every_invariant() -> None:
    report = check(clean_history())
    assert report.ok, report.violations
    assert report.deliveries == 4
    assert not report.duplicates and not report.waiting


# -- terminal -----------------------------------------------------------------------------


def test_a_row_left_sending_is_lost() -> None:
    history = clean_history()
    history.rows.append(Row(9, "sending", "user9@example.org", None, "default", None, T0))
    report = check(history)
    assert report.failed_invariants() == ["terminal"]
    assert "row 9" in report.violations["terminal"][0]


def test_a_queued_row_an_active_account_could_send_is_lost() -> None:
    history = clean_history()
    history.rows.append(Row(9, "queued", "user9@example.org", 2, "default", None, T0))
    assert check(history).failed_invariants() == ["terminal"]


def test_a_row_pinned_to_a_suspended_account_is_lost() -> None:
    history = clean_history()
    history.final = [A, replace(B, status="suspended")]
    history.rows.append(Row(9, "queued", "user9@example.org", 2, "default", None, T0))
    assert check(history).failed_invariants() == ["terminal"]


def test_rows_waiting_for_a_paused_or_full_account_are_reported_not_failed() -> None:
    history = clean_history(count=6)  # A's hourly limit is 6: A is full
    history.final = [A, replace(B, status="paused")]
    history.rows.append(Row(9, "queued", "user9@example.org", 2, "default", None, T0))
    history.rows.append(Row(10, "queued", "user10@example.org", 1, "default", None, T0))
    history.rows.append(Row(11, "queued", "user11@example.org", None, "default", None, T0))
    report = check(history)
    assert report.ok, report.violations
    assert report.waiting == {
        "account paused": 1,
        "account at hourly limit": 1,
        "account at hourly limit; account paused": 1,
    }


# -- at most once -------------------------------------------------------------------------


def test_an_unexplained_duplicate_fails() -> None:
    history = clean_history()
    history.deliveries.append(delivery(2, T0 + 5))
    report = check(history)
    assert report.failed_invariants() == ["at_most_once"]
    assert report.duplicates == {"unexplained": 1}


def test_a_duplicate_after_a_lost_reply_logged_as_transient_fails() -> None:
    history = clean_history()
    history.deliveries.append(delivery(2, T0 + 5, acked=False))
    history.attempts.append(attempt(2, outcome="transient", response="connection lost"))
    report = check(history)
    assert report.failed_invariants() == ["at_most_once"]
    assert report.duplicates == {"unexplained, a reply was lost": 1}


def test_a_duplicate_after_a_late_reply_logged_as_transient_fails() -> None:
    history = clean_history()
    history.deliveries.append(replace(delivery(2, T0 + 5), reply_seconds=3.8))
    history.attempts.append(attempt(2, outcome="transient", response="timed out"))
    report = check(history)
    assert report.failed_invariants() == ["at_most_once"]
    assert report.duplicates == {"unexplained, a reply was late": 1}


def test_duplicates_explained_by_unknown_outcomes_are_counted_by_cause() -> None:
    history = clean_history()
    history.deliveries += [delivery(2, T0 + 5), delivery(3, T0 + 6, acked=False)]
    history.attempts += [
        attempt(2, outcome="unknown", response="worker died while sending this row"),
        attempt(3, outcome="unknown", response="no reply after the end of DATA"),
    ]
    report = check(history)
    assert report.ok, report.violations
    assert report.duplicates == {"crash in flight": 1, "reply lost": 1}


def test_one_unknown_outcome_explains_one_extra_delivery_only() -> None:
    history = clean_history()
    history.deliveries += [delivery(2, T0 + 5), delivery(2, T0 + 7)]
    history.attempts.append(attempt(2, outcome="unknown", response="worker died"))
    report = check(history)
    assert report.failed_invariants() == ["at_most_once"]
    assert report.duplicates == {"crash in flight": 1, "unexplained": 1}


# -- limits -------------------------------------------------------------------------------


def test_more_sends_than_the_hourly_limit_in_an_hour_fail() -> None:
    report = check(clean_history(count=7))
    assert report.failed_invariants() == ["limits"]
    assert len(report.violations["limits"]) == 1


def test_the_hourly_window_rolls() -> None:
    history = clean_history(count=6)
    history.deliveries.append(delivery(7, T0 + 3_601))
    history.rows.append(sent_row(7))
    history.attempts.append(attempt(7))
    history.ended_at = T0 + 3_700
    assert check(history).ok


def test_a_lowered_limit_counts_the_sends_already_in_its_window() -> None:
    history = clean_history(count=4, gap=1.0)  # sends at +1 .. +4 s
    history.changes.append(Change(1, T0 + 2.2, daily_limit=3))
    report = check(history)  # the 4th send (+4 s) is past the change and its grace
    assert report.failed_invariants() == ["limits"]
    assert "over limit 3, set 1.8s earlier" in report.violations["limits"][0]


def test_a_send_within_the_grace_of_a_change_may_use_the_old_limit() -> None:
    history = clean_history(count=4, gap=1.0)
    history.changes.append(Change(1, T0 + 3.8, daily_limit=3))
    assert check(history, grace=0.5).ok


# -- min_delay ----------------------------------------------------------------------------


def test_sends_closer_than_min_delay_fail() -> None:
    report = check(clean_history(gap=0.030))  # A's min_delay_ms is 50
    assert report.failed_invariants() == ["min_delay"]
    assert len(report.violations["min_delay"]) == 3


def test_min_delay_allows_the_tolerance() -> None:
    assert check(clean_history(gap=0.049), tolerance=0.002).ok
    assert not check(clean_history(gap=0.047), tolerance=0.002).ok


def test_a_longer_min_delay_holds_after_its_grace() -> None:
    history = clean_history(count=4, gap=0.1)
    history.changes.append(Change(1, T0 - 1, min_delay_ms=150))
    assert check(history).failed_invariants() == ["min_delay"]


def test_min_delay_is_per_account() -> None:
    history = clean_history(count=2, gap=0.1)
    history.deliveries.append(delivery(3, T0 + 0.105, account=B))
    history.rows.append(sent_row(3))
    history.attempts.append(attempt(3, account=B))
    assert check(history).ok


# -- suppression --------------------------------------------------------------------------


def test_a_delivery_after_the_suppression_committed_fails() -> None:
    history = clean_history(count=4, gap=1.0)
    history.suppressions.append(Suppression("USER4@example.org", T0 + 2.0))
    report = check(history)
    assert report.failed_invariants() == ["suppression"]
    assert "user4@example.org" in report.violations["suppression"][0]


def test_a_delivery_within_the_grace_of_a_suppression_passes() -> None:
    history = clean_history(count=4, gap=1.0)
    history.suppressions.append(Suppression("user4@example.org", T0 + 3.7))
    assert check(history, grace=0.5).ok


# -- agreement ----------------------------------------------------------------------------


def test_a_delivery_without_its_row_fails() -> None:
    history = clean_history()
    history.deliveries.append(delivery(42, T0 + 9))
    report = check(history)
    assert report.failed_invariants() == ["agreement"]
    assert "no email_queue row" in report.violations["agreement"][0]


def test_a_delivery_without_a_send_log_fails() -> None:
    history = clean_history()
    history.attempts = [a for a in history.attempts if a.queue_id != 2]
    assert check(history).failed_invariants() == ["agreement"]


def test_a_sent_row_that_no_server_received_fails() -> None:
    history = clean_history()
    history.deliveries = [d for d in history.deliveries if d.message_id != mid(3)]
    report = check(history)
    assert report.failed_invariants() == ["agreement"]
    assert "row 3 is 'sent'" in report.violations["agreement"][0]


# -- the servers' record files ------------------------------------------------------------


def test_deliveries_load_from_record_lines_with_their_acknowledgement(tmp_path: Path) -> None:
    lines = [
        {"event": "data", "n": 1, "server": "a", "message_id": mid(1), "mail_from": "a",
         "rcpt_tos": ["x@example.org"], "mail_at": T0 + 1, "data_end_at": T0 + 1.1},
        {"event": "data", "n": 2, "server": "a", "message_id": mid(2), "mail_from": "a",
         "rcpt_tos": ["y@example.org"], "mail_at": T0, "data_end_at": T0 + 0.1},
        {"event": "ack", "n": 1, "server": "a", "at": T0 + 1.2},
    ]  # fmt: skip
    path = tmp_path / "a.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    first, second = load_deliveries([path])
    assert (first.message_id, first.acked) == (mid(2), False)
    assert (second.message_id, second.acked, second.rcpt_tos) == (mid(1), True, ("x@example.org",))
    assert first.reply_seconds is None and second.reply_seconds == pytest.approx(0.1)


def test_a_pacing_violation_says_when_it_straddles_a_new_connection() -> None:
    history = clean_history(count=6, gap=0.030)
    connections = ["5001", "5001", "5001", "5002", "5002", "5002"]
    history.deliveries = [
        replace(d, connection=c) for d, c in zip(history.deliveries, connections, strict=True)
    ]
    notes = [
        line.split(" at ")[0].split("previous one")[1]
        for line in check(history).violations["min_delay"]
    ]
    opened, fresh = ", which opened its connection", " on a new connection"
    assert notes == [opened, "", fresh, opened, ""]


def test_a_saved_history_loads_back_equal(tmp_path: Path) -> None:
    history = clean_history()
    history.changes.append(Change(1, T0 + 1, daily_limit=3))
    history.suppressions.append(Suppression("user1@example.org", T0 + 2))
    save_history(history, tmp_path / "history.json")
    assert load_history(tmp_path / "history.json") == history
