"""The placement manager on a real database, without processes: two hosts' passes split
the accounts, a claim never takes an account from a live host, a dead host's accounts
are taken, and a host leaving hands everything back."""

from __future__ import annotations

import asyncio

from orchestrator.placement import PLACED_ELSEWHERE, HostIdentity, HostPlacement
from tests.support.mailer_env import add_account


class _Smtp:
    host, port = "127.0.0.1", 2525


def host(host_id: str, cap: int | None = None) -> HostPlacement:
    return HostPlacement(HostIdentity(host_id, "vm", 1, cap, dead_seconds=10.0))


async def runs(placement: HostPlacement, db, statuses, running=()) -> set[int]:
    restricted = await placement.restrict(db, statuses, set(running))
    return {a for a, status in restricted.items() if status == "active"}


def placements(sql) -> dict[int, str]:
    rows = sql.execute("SELECT account_id, host_id FROM account_placements").fetchall()
    return {r["account_id"]: r["host_id"] for r in rows}


async def test_two_hosts_split_and_a_dead_one_is_taken_over(sql, db):
    ids = [add_account(sql, _Smtp, email=f"p{i}@example.com") for i in range(5)]
    statuses = dict.fromkeys(ids, "active")
    a, b = host("a"), host("b")
    # Started together: each first pass registers and waits, so neither claims it all
    # (both may go for the same accounts: the loser claims the rest on its next pass).
    first = await asyncio.gather(runs(a, db, statuses), runs(b, db, statuses))
    assert all(len(mine) <= 3 for mine in first)
    mine_a = await runs(a, db, statuses)
    mine_b = await runs(b, db, statuses)
    assert mine_a | mine_b == set(ids) and not mine_a & mine_b
    assert sorted([len(mine_a), len(mine_b)]) == [2, 3]
    # "b" cannot take what "a" holds while "a" is alive, whatever it asks for
    won = await b._claim(db, tuple(sorted(mine_a)))
    assert won == frozenset() and placements(sql) == {**dict.fromkeys(mine_a, "a"),
                                                      **dict.fromkeys(mine_b, "b")}  # fmt: skip
    sql.execute("UPDATE worker_hosts SET heartbeat_at = now() - interval '11 seconds' "
                "WHERE host_id = 'a'")  # fmt: skip
    assert await runs(b, db, statuses) == set(ids)
    assert set(placements(sql).values()) == {"b"}


async def test_over_its_share_a_host_hands_back_only_stopped_workers(sql, db):
    ids = [add_account(sql, _Smtp, email=f"s{i}@example.com") for i in range(4)]
    statuses = dict.fromkeys(ids, "active")
    a, b = host("a"), host("b", cap=1)
    await runs(a, db, statuses)
    assert await runs(a, db, statuses) == set(ids)
    await runs(b, db, statuses)  # joins (capped at one account)
    restricted = await a.restrict(db, statuses, set(ids))  # all four still running
    assert list(restricted.values()).count(PLACED_ELSEWHERE) == 1
    assert len(placements(sql)) == 4  # the released one stays placed until it stops
    assert len(await runs(a, db, statuses, running=ids[:3])) == 3
    assert await runs(b, db, statuses) == {ids[3]}
    await b.leave(db.url)
    assert await runs(a, db, statuses) == set(ids)
