"""How many rows the worker marks ahead of their turn (mailer/lookahead.py): as many as
go out in about AHEAD_SECONDS at the recent pace, bounded by the limits and the batch."""

from __future__ import annotations

from mailer.lookahead import AHEAD_SECONDS, MAX_AHEAD, SLOW_SEND_SECONDS, ahead_count


def test_one_row_while_the_pace_is_unknown():
    assert ahead_count(None, remaining=100, usable=10) == 1


def test_fast_sends_mark_as_many_as_go_out_within_the_window():
    assert ahead_count(AHEAD_SECONDS / 5, remaining=100, usable=50) == 5
    assert ahead_count(0.0001, remaining=1_000, usable=100) == MAX_AHEAD


def test_slow_sends_mark_nothing_ahead():
    assert ahead_count(SLOW_SEND_SECONDS * 1.01, remaining=100, usable=10) == 0
    assert ahead_count(SLOW_SEND_SECONDS, remaining=100, usable=10) == 1


def test_the_row_on_the_wire_keeps_its_room_in_the_limits():
    assert ahead_count(0.001, remaining=4, usable=50) == 3
    assert ahead_count(0.001, remaining=1, usable=50) == 0
    assert ahead_count(None, remaining=1, usable=50) == 0


def test_never_past_the_rows_that_may_be_marked_ahead():
    assert ahead_count(0.001, remaining=100, usable=2) == 2
    assert ahead_count(0.001, remaining=100, usable=0) == 0
