"""Placement of accounts on hosts: fair shares by count, caps, claims and releases."""

from __future__ import annotations

import pytest

from orchestrator.placement_policy import HostCap, decide_placement, fair_shares


def test_even_split_differs_by_at_most_one_and_adds_up():
    for accounts in range(0, 40):
        for n in range(1, 6):
            shares = fair_shares(accounts, [HostCap(f"h{i}") for i in range(n)])
            assert sum(shares.values()) == accounts
            assert max(shares.values()) - min(shares.values()) <= 1


def test_same_shares_whatever_order_the_hosts_come_in():
    hosts = [HostCap("b"), HostCap("a"), HostCap("c", 2)]
    assert fair_shares(10, hosts) == fair_shares(10, list(reversed(hosts)))


def test_a_capped_host_leaves_the_rest_to_the_others():
    assert fair_shares(10, [HostCap("a", 2), HostCap("b"), HostCap("c")]) == {
        "a": 2,
        "b": 4,
        "c": 4,
    }


def test_caps_below_the_accounts_leave_some_unplaced():
    assert fair_shares(10, [HostCap("a", 3), HostCap("b", 4)]) == {"a": 3, "b": 4}
    assert fair_shares(5, [HostCap("a", 0)]) == {"a": 0}


def test_a_lone_host_claims_every_free_account_in_order():
    d = decide_placement("a", active={3, 1, 2}, placements={}, live_hosts=[HostCap("a")])
    assert (d.share, d.claim, d.keep, d.release) == (3, (1, 2, 3), frozenset(), frozenset())


def test_a_new_host_makes_the_old_one_release_its_highest_accounts():
    placements = dict.fromkeys(range(1, 11), "a")
    hosts = [HostCap("a"), HostCap("b")]
    old = decide_placement("a", active=set(range(1, 11)), placements=placements, live_hosts=hosts)
    assert old.keep == frozenset(range(1, 6)) and old.release == frozenset(range(6, 11))
    assert old.claim == ()
    new = decide_placement("b", active=set(range(1, 11)), placements=placements, live_hosts=hosts)
    assert new.share == 5 and new.claim == ()  # nothing is free until "a" hands them back
    handed_back = {a: h for a, h in placements.items() if a <= 5}
    new = decide_placement("b", active=set(range(1, 11)), placements=handed_back, live_hosts=hosts)
    assert new.claim == (6, 7, 8, 9, 10)


def test_accounts_of_a_dead_host_are_free():
    placements = {1: "a", 2: "dead", 3: "dead", 4: "a"}
    d = decide_placement("a", active={1, 2, 3, 4}, placements=placements, live_hosts=[HostCap("a")])
    assert d.keep == frozenset({1, 4}) and d.claim == (2, 3)


def test_accounts_no_longer_active_are_released():
    d = decide_placement("a", active={1}, placements={1: "a", 2: "a"}, live_hosts=[HostCap("a")])
    assert d.keep == frozenset({1}) and d.release == frozenset({2})


@pytest.mark.parametrize("hosts", [[], [HostCap("b")]])
def test_this_host_counts_even_before_its_first_heartbeat_is_seen(hosts):
    d = decide_placement("a", active={1, 2}, placements={}, live_hosts=hosts)
    assert d.share == (2 if not hosts else 1)


def test_a_capped_host_claims_no_more_than_its_cap():
    d = decide_placement("a", active=set(range(1, 9)), placements={}, live_hosts=[HostCap("a", 3)])
    assert d.share == 3 and d.claim == (1, 2, 3)
