"""The limit gate: fed by every counted attempt, paced on the MAIL FROM reply."""

from __future__ import annotations

import pytest

from mailer.gate import LimitGate, WindowEntry
from mailer.limits import HOUR, Limits


class Clocks:
    """A database clock and a monotonic clock that move together (or not)."""

    def __init__(self) -> None:
        self.db = 1_000_000.0
        self.mono = 50.0

    def advance(self, seconds: float) -> None:
        self.db += seconds
        self.mono += seconds


def gate(limits: Limits, clocks: Clocks) -> LimitGate:
    return LimitGate(limits, db_now=lambda: clocks.db, mono=lambda: clocks.mono)


def test_rows_left_in_flight_count_at_load_and_not_again_when_recovered():
    clocks = Clocks()
    g = gate(Limits(daily_limit=3, hourly_limit=None, min_delay_ms=0), clocks)
    g.load([WindowEntry(clocks.db - 60), WindowEntry(clocks.db, in_flight_id=7)])
    assert g.remaining() == 1
    assert g.record_recovered([7]) == 0  # already counted
    assert g.remaining() == 1
    assert g.record_recovered([8]) == 1  # a row not seen at load
    assert g.remaining() == 0 and g.wait() > 0


def test_min_delay_is_paced_from_the_mail_from_reply_not_from_before_connecting():
    clocks = Clocks()
    g = gate(Limits(daily_limit=100, hourly_limit=None, min_delay_ms=30), clocks)
    connect_started = clocks.mono
    clocks.advance(0.025)  # connection set-up and greeting
    g.record_start(clocks.mono)  # the server answered MAIL FROM now
    assert g.wait() == pytest.approx(0.030)
    assert connect_started + 0.030 < clocks.mono + g.wait()


def test_pacing_survives_a_database_clock_jump():
    clocks = Clocks()
    g = gate(Limits(daily_limit=100, hourly_limit=None, min_delay_ms=1000), clocks)
    g.record_start()
    clocks.db += 5.0  # the clock sync moved the database clock, not time itself
    assert g.wait() == pytest.approx(1.0)


def test_a_lowered_limit_counts_the_sends_already_in_the_window():
    clocks = Clocks()
    g = gate(Limits(daily_limit=100, hourly_limit=10, min_delay_ms=0), clocks)
    g.load(WindowEntry(clocks.db - 600 + i) for i in range(5))
    assert g.wait() == 0
    assert g.apply(Limits(daily_limit=100, hourly_limit=5, min_delay_ms=0))
    assert g.wait() == pytest.approx(HOUR - 600)
    assert not g.apply(Limits(daily_limit=100, hourly_limit=5, min_delay_ms=0))


def test_load_paces_from_the_latest_counted_attempt():
    clocks = Clocks()
    g = gate(Limits(daily_limit=100, hourly_limit=None, min_delay_ms=2000), clocks)
    g.load([WindowEntry(clocks.db - 0.5)])
    assert g.wait() == pytest.approx(1.5)
