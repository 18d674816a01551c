"""Which accounts this host runs: pure functions, no database, no clock.

Several orchestrators (hosts) share one database. Each registers itself in
``worker_hosts`` with a heartbeat; the live hosts split the active accounts by count.
:func:`fair_shares` gives every live host its share: the accounts divided as evenly as
the hosts' caps (``MAILER_MAX_ACCOUNTS_PER_HOST``) allow, so two hosts' shares differ by
at most one unless a cap holds one of them back. Shares are computed the same way on
every host (hosts in one order), so they add up to the number of accounts and no two
hosts aim for the same account.

:func:`decide_placement` says, for one host, which accounts placed on it (rows of
``account_placements``) it keeps, which it gives back because it holds more than its
share (a new host joined), and which unplaced accounts (never placed, or placed on a host
whose heartbeat stopped) it tries to claim. A claim may lose a race to another host;
the next pass tries again, so hosts converge within a few passes.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class HostCap:
    """A live host and the most accounts it will run (None: no cap)."""

    host_id: str
    max_accounts: int | None = None


@dataclass(frozen=True)
class PlacementDecision:
    """What one host does with the accounts: ``keep`` runs, ``release`` (over its share)
    stop and are handed back once their workers exited, ``claim`` are tried in order."""

    share: int
    keep: frozenset[int]
    release: frozenset[int]
    claim: tuple[int, ...]


def _cap_key(host: HostCap) -> tuple[float, str]:
    return (math.inf if host.max_accounts is None else host.max_accounts, host.host_id)


def fair_shares(accounts: int, hosts: Iterable[HostCap]) -> dict[str, int]:
    """Each host's share of ``accounts``: water-filling from the most capped host, each
    taking the even split of what is left (rounded up) or its cap if lower. The shares
    add up to ``accounts`` unless the caps together are lower."""
    ordered = sorted(hosts, key=_cap_key)
    shares: dict[str, int] = {}
    remaining = max(accounts, 0)
    for index, host in enumerate(ordered):
        share = math.ceil(remaining / (len(ordered) - index))
        if host.max_accounts is not None:
            share = min(share, max(host.max_accounts, 0))
        shares[host.host_id] = share
        remaining -= share
    return shares


def decide_placement(
    me: str,
    *,
    active: Collection[int],
    placements: Mapping[int, str],
    live_hosts: Sequence[HostCap],
) -> PlacementDecision:
    """The decision of host ``me``.

    ``active``: the active accounts; ``placements``: account id -> host id of every
    placement; ``live_hosts``: hosts whose heartbeat is fresh (``me`` among them).
    Placements on ``me`` of accounts no longer active are released; over its share it
    releases its highest account ids; under it, it claims the lowest free ones."""
    hosts = list(live_hosts)
    if all(h.host_id != me for h in hosts):
        hosts.append(HostCap(me))
    share = fair_shares(len(active), hosts)[me]
    live = {h.host_id for h in hosts}
    mine = sorted(a for a, host in placements.items() if host == me)
    active_mine = [a for a in mine if a in active]
    keep = active_mine[:share]
    release = set(mine) - set(keep)
    free = sorted(a for a in active if placements.get(a) not in live)
    wanted = max(share - len(keep), 0)
    return PlacementDecision(
        share=share,
        keep=frozenset(keep),
        release=frozenset(release),
        claim=tuple(free[:wanted]),
    )
