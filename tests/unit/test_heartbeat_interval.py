"""The worker heartbeat's pace: busy, settling (first lease period) and idle."""

from __future__ import annotations

import time

import pytest

from mailer.config import Settings
from mailer.heartbeat import IDLE_HEARTBEAT_SECONDS, PARENT_IDLE_SECONDS, Heartbeat


def heartbeat(*, holding: bool, age: float, rand: float = 0.5, **settings: float) -> Heartbeat:
    """A heartbeat whose worker started ``age`` seconds ago (its database parts unused)."""
    return Heartbeat(
        settings=Settings(**settings),  # type: ignore[arg-type]
        worker_id="w",
        session=None,  # type: ignore[arg-type]
        leases=None,  # type: ignore[arg-type]
        journal=None,  # type: ignore[arg-type]
        holding=lambda: holding,
        refresh_account=None,  # type: ignore[arg-type]
        stop=lambda reason: None,
        stopping=lambda: False,
        started=time.monotonic() - age,
        rand=lambda: rand,
    )


def test_a_busy_worker_beats_every_heartbeat_seconds():
    assert heartbeat(holding=True, age=0).interval() == 2.0
    assert heartbeat(holding=True, age=3600).interval() == 2.0


def test_an_idle_worker_beats_every_minute_once_past_its_first_lease_period():
    assert heartbeat(holding=False, age=3600).interval() == IDLE_HEARTBEAT_SECONDS == 60.0
    past = heartbeat(holding=False, age=91, lease_seconds=60.0)
    assert not past.settling() and past.interval() == 60.0


def test_a_new_idle_worker_beats_every_quarter_lease_to_recover_its_predecessors_rows():
    new = heartbeat(holding=False, age=0, lease_seconds=60.0)
    assert new.settling() and new.interval() == 15.0
    assert heartbeat(holding=False, age=89, lease_seconds=60.0).interval() == 15.0
    # never faster than the busy pace
    assert (
        heartbeat(holding=False, age=0, lease_seconds=4.0, heartbeat_seconds=2.0).interval() == 2.0
    )


def test_idle_beats_are_spread_so_a_fleet_started_together_does_not_beat_in_step():
    assert heartbeat(holding=False, age=3600, rand=0.0).interval() == 30.0
    assert heartbeat(holding=False, age=3600, rand=0.999).interval() == pytest.approx(89.94)
    # the busy and settling paces stay exact
    assert heartbeat(holding=True, age=3600, rand=0.0).interval() == 2.0
    assert heartbeat(holding=False, age=0, rand=0.0, lease_seconds=60.0).interval() == 15.0


def test_an_idle_worker_under_mailer_run_beats_every_ten_minutes_its_orchestrator_proves_it_alive():
    idle = heartbeat(holding=False, age=3600)
    idle.under_parent = True
    assert idle.interval() == PARENT_IDLE_SECONDS == 600.0
    settling = heartbeat(holding=False, age=0, lease_seconds=60.0)
    settling.under_parent = True
    assert settling.interval() == 15.0  # it still recovers its predecessor's rows
    busy = heartbeat(holding=True, age=3600)
    busy.under_parent = True
    assert busy.interval() == 2.0


def test_a_new_worker_whose_start_left_nothing_to_settle_beats_at_the_idle_pace_at_once():
    clean = heartbeat(holding=False, age=0, lease_seconds=60.0)
    clean.predecessor_rows = False
    assert clean.settling()  # standalone: it recovers its pool's expired leases
    clean.under_parent = True
    assert not clean.settling() and clean.interval() == PARENT_IDLE_SECONDS
    busy = heartbeat(holding=True, age=0)
    busy.predecessor_rows = False
    assert busy.interval() == 2.0
