"""A fault schedule drawn from a seed: the accounts, the mail and the fault timeline.

Pure: :func:`make_schedule` uses only ``random.Random(seed)``, so a seed names one
schedule exactly and a failing run can be replayed with ``--seed``. Times are seconds
from the start of the run.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any

#: Every fault kind, in the order the report lists them.
FAULT_KINDS = (
    "kill_worker",
    "kill_in_flight",
    "kill_at_limit",
    "kill_orchestrator",
    "stop_worker",
    "second_orchestrator",
    "pg_restart",
    "pg_outage",
    "smtp_drop_after_data",
    "smtp_slow_reply",
    "smtp_slow_greeting",
    "smtp_refuse_storm",
    "smtp_reset",
    "lower_limits",
    "pause_account",
    "suppress",
)
#: Relative frequency of each kind in a timeline.
_WEIGHTS = {
    "kill_worker": 3,
    "kill_in_flight": 3,
    "kill_at_limit": 1.5,
    "kill_orchestrator": 1,
    "stop_worker": 1,
    "second_orchestrator": 1,
    "pg_restart": 1,
    "pg_outage": 0.5,
    "smtp_drop_after_data": 2,
    "smtp_slow_reply": 2,
    "smtp_slow_greeting": 2,
    "smtp_refuse_storm": 2,
    "smtp_reset": 2,
    "lower_limits": 2,
    "pause_account": 1,
    "suppress": 2,
}


@dataclass(frozen=True)
class AccountSpec:
    """One sender account (and its own SMTP server)."""

    email: str
    daily_limit: int
    hourly_limit: int | None
    min_delay_ms: int


@dataclass(frozen=True)
class RowSpec:
    """One queued email: its recipient, pinned account (index) or pool, and when due."""

    to_address: str
    account: int | None
    due_in: float


@dataclass(frozen=True)
class Fault:
    """One fault at ``at`` seconds; ``params`` depend on the kind (see chaos.faults)."""

    at: float
    kind: str
    params: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"t={self.at:6.2f}s {self.kind}({args})"


@dataclass(frozen=True)
class Schedule:
    """Everything one run does, drawn from ``seed``."""

    seed: int
    duration: float
    outage_seconds: float
    accounts: list[AccountSpec]
    rows: list[RowSpec]
    faults: list[Fault]

    def replay(self) -> str:
        """The command that runs this schedule again."""
        return (
            f"python -m chaos --seeds {self.seed} --duration {self.duration:g} "
            f"--outage-seconds {self.outage_seconds:g}"
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_schedule(
    seed: int, duration: float = 20.0, outage_seconds: float = 8.0, lease_seconds: float = 5.0
) -> Schedule:
    """The schedule of ``seed``: 3-4 accounts, a few hundred rows due over ``duration``
    seconds, and faults at random moments of it (a PostgreSQL outage lasts
    ``outage_seconds``; a stopped worker stays stopped beyond ``lease_seconds``)."""
    rng = random.Random(seed)
    accounts = _accounts(rng)
    rows = _rows(rng, len(accounts), duration)
    faults = _faults(rng, accounts, rows, duration, outage_seconds, lease_seconds)
    return Schedule(seed, duration, outage_seconds, accounts, rows, faults)


def _accounts(rng: random.Random) -> list[AccountSpec]:
    count = rng.randint(3, 4)
    tight = rng.randrange(count)
    accounts = []
    for i in range(count):
        hourly = rng.randint(25, 45) if i == tight else rng.choice([None, rng.randint(150, 400)])
        accounts.append(
            AccountSpec(
                email=f"sender{i}@chaos{i}.example.com",
                daily_limit=rng.randint(120, 500),
                hourly_limit=hourly,
                min_delay_ms=rng.randint(20, 60),
            )
        )
    return accounts


def _rows(rng: random.Random, accounts: int, duration: float) -> list[RowSpec]:
    count = rng.randint(200, 400)
    rows = []
    for i in range(count):
        pinned = rng.randrange(accounts) if rng.random() < 0.2 else None
        due_in = 0.0 if rng.random() < 0.2 else round(rng.uniform(0, duration * 0.9), 3)
        rows.append(RowSpec(f"user{i}@example.org", pinned, due_in))
    return rows


def _faults(
    rng: random.Random,
    accounts: list[AccountSpec],
    rows: list[RowSpec],
    duration: float,
    outage_seconds: float,
    lease_seconds: float,
) -> list[Fault]:
    kinds = list(_WEIGHTS)
    weights = [_WEIGHTS[k] for k in kinds]
    count = max(3, round(duration / 2.5))
    faults = []
    for _ in range(count):
        kind = rng.choices(kinds, weights)[0]
        # the tight account reaches its limit within seconds: watch for it early
        early = kind == "kill_at_limit"
        at = round(rng.uniform(0.5, 3.0) if early else rng.uniform(1.0, duration * 0.85), 2)
        params = _params(rng, kind, accounts, rows, outage_seconds, lease_seconds)
        faults.append(Fault(at, kind, params))
    return sorted(faults, key=lambda f: f.at)


def _params(
    rng: random.Random,
    kind: str,
    accounts: list[AccountSpec],
    rows: list[RowSpec],
    outage_seconds: float,
    lease_seconds: float,
) -> dict[str, Any]:
    account = rng.randrange(len(accounts))
    match kind:
        case "kill_worker" | "kill_in_flight":
            return {"account": account}
        case "kill_at_limit":
            return {"account": _tightest(accounts)}
        case "kill_orchestrator":
            return {"restart_after": round(rng.uniform(0.2, 2.0), 2)}
        case "stop_worker":
            return {"account": account, "seconds": round(lease_seconds + rng.uniform(1, 3), 2)}
        case "second_orchestrator":
            return {"seconds": round(rng.uniform(2, 6), 2), "kill": rng.random() < 0.5}
        case "pg_restart":
            return {"mode": rng.choice(["fast", "immediate"])}
        case "pg_outage":
            return {"seconds": outage_seconds}
        case "smtp_drop_after_data" | "smtp_reset":
            return {"account": account, "times": rng.randint(1, 3)}
        case "smtp_slow_reply":
            return {"account": account, "times": rng.randint(1, 4), "seconds": _slow(rng)}
        case "smtp_slow_greeting":
            return {"account": account, "seconds": round(rng.uniform(2, 6), 2)}
        case "smtp_refuse_storm":
            code = rng.choice([421, 451])
            return {"account": account, "code": code, "seconds": round(rng.uniform(0.5, 3), 2)}
        case "lower_limits":
            return {"account": account, **_lowered(rng)}
        case "pause_account":
            return {"account": account, "seconds": round(rng.uniform(1, 4), 2)}
        case "suppress":
            picked = rng.sample(range(len(rows)), k=min(len(rows), rng.randint(3, 10)))
            return {"addresses": [rows[i].to_address for i in sorted(picked)]}
    raise ValueError(f"unknown fault kind {kind!r}")


def _tightest(accounts: list[AccountSpec]) -> int:
    """The account with the smallest hourly limit."""
    limits = [a.hourly_limit or a.daily_limit for a in accounts]
    return limits.index(min(limits))


def _slow(rng: random.Random) -> float:
    """A slow final reply: mostly under the client's timeout, sometimes beyond it."""
    return round(rng.choice([rng.uniform(0.2, 1.5), rng.uniform(3.5, 5.0)]), 2)


def _lowered(rng: random.Random) -> dict[str, Any]:
    """Which limit an admin tightens: a fraction of the daily or hourly limit, or a
    longer ``min_delay_ms``."""
    which = rng.choice(["daily_limit", "hourly_limit", "min_delay_ms"])
    if which == "min_delay_ms":
        return {"min_delay_ms": rng.randint(60, 150)}
    return {which + "_fraction": round(rng.uniform(0.2, 0.8), 2)}
