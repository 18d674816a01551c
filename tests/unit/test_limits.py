"""The limit arithmetic, without I/O: rolling windows and pacing."""

from __future__ import annotations

import math

from mailer.limits import DAY, HOUR, Limits, SendWindow, remaining_sends, seconds_until_slot

NOW = 1_000_000.0


def test_empty_window_sends_now():
    assert seconds_until_slot([], Limits(10, 5, 1000), NOW) == 0.0
    assert remaining_sends([], Limits(10, 5, 1000), NOW) == 5


def test_min_delay_measured_from_last_send():
    assert seconds_until_slot([NOW - 0.25], Limits(10, None, 1000), NOW) == 0.75
    assert seconds_until_slot([NOW - 1.5], Limits(10, None, 1000), NOW) == 0.0


def test_hourly_limit_waits_for_oldest_send_in_window_to_leave():
    times = [NOW - 3000, NOW - 2000, NOW - 10]
    wait = seconds_until_slot(times, Limits(100, 3, 0), NOW)
    assert wait == (NOW - 3000 + HOUR) - NOW == 600
    assert remaining_sends(times, Limits(100, 3, 0), NOW) == 0


def test_send_exactly_one_window_ago_has_left_it():
    assert seconds_until_slot([NOW - HOUR], Limits(100, 1, 0), NOW) == 0.0
    assert seconds_until_slot([NOW - HOUR + 0.5], Limits(100, 1, 0), NOW) == 0.5


def test_daily_limit_counts_24_hours():
    times = [NOW - DAY + 100, NOW - 50]
    assert seconds_until_slot(times, Limits(2, None, 0), NOW) == 100
    assert seconds_until_slot(times, Limits(3, None, 0), NOW) == 0


def test_lowered_limit_waits_until_enough_sends_expire():
    times = [NOW - 3500, NOW - 3400, NOW - 3300, NOW - 5]
    # lowered to 2 while 4 are in the window: the third-newest must leave first
    assert seconds_until_slot(times, Limits(100, 2, 0), NOW) == (NOW - 3300 + HOUR) - NOW


def test_zero_limit_never_sends():
    assert seconds_until_slot([], Limits(0, None, 0), NOW) == math.inf
    assert remaining_sends([], Limits(0, None, 0), NOW) == 0


def test_send_window_records_and_prunes():
    window = SendWindow([NOW - DAY - 1, NOW - 10])
    window.record(NOW - 20)
    window.prune(NOW)
    assert window.times == [NOW - 20, NOW - 10]
    assert window.remaining(Limits(3, None, 0), NOW) == 1
