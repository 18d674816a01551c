"""Chaos schedules are pure functions of their seed, and every fault kind they draw has
an injector."""

from __future__ import annotations

from chaos.faults import Injector
from chaos.schedule import FAULT_KINDS, make_schedule
from chaos.smtp_servers import Behaviour


def test_a_seed_names_one_schedule() -> None:
    assert make_schedule(7).as_dict() == make_schedule(7).as_dict()
    assert make_schedule(7).as_dict() != make_schedule(8).as_dict()


def test_schedules_have_tight_accounts_pinned_and_pooled_rows_and_timed_faults() -> None:
    schedule = make_schedule(3, duration=12.0, outage_seconds=4.0)
    assert 3 <= len(schedule.accounts) <= 4
    assert any(a.hourly_limit is not None and a.hourly_limit < 50 for a in schedule.accounts)
    assert all(20 <= a.min_delay_ms <= 60 for a in schedule.accounts)
    assert 200 <= len(schedule.rows) <= 400
    pinned = [r for r in schedule.rows if r.account is not None]
    assert 0 < len(pinned) < len(schedule.rows) / 2
    assert all(0 < f.at < 12.0 for f in schedule.faults)
    assert [f.at for f in schedule.faults] == sorted(f.at for f in schedule.faults)


def test_every_fault_kind_is_drawn_and_injectable() -> None:
    drawn = {f.kind for seed in range(40) for f in make_schedule(seed).faults}
    assert drawn == set(FAULT_KINDS)
    assert all(callable(getattr(Injector, "_" + kind, None)) for kind in FAULT_KINDS)


def test_the_outage_length_is_the_one_asked_for() -> None:
    outages = [
        f
        for seed in range(60)
        for f in make_schedule(seed, outage_seconds=90.0).faults
        if f.kind == "pg_outage"
    ]
    assert outages and all(f.params["seconds"] == 90.0 for f in outages)


def test_server_behaviour_counts_uses_and_expires() -> None:
    behaviour = Behaviour()
    behaviour.apply({"op": "drop_after_data", "times": 2})
    behaviour.apply({"op": "refuse", "code": 451, "seconds": 60})
    behaviour.apply({"op": "slow_greeting", "seconds": -1})
    assert behaviour.take("drop_after_data") and behaviour.take("drop_after_data")
    assert behaviour.take("drop_after_data") is None
    assert behaviour.take("refuse") == {"op": "refuse", "code": 451, "seconds": 60}
    assert behaviour.take("slow_greeting") is None
    behaviour.apply({"op": "clear", "which": "refuse"})
    assert behaviour.take("refuse") is None
