"""Fault injection: each fault kind of chaos.schedule done for real to a
:class:`~chaos.system.System`.

:meth:`Injector.inject` applies a fault now and returns the follow-ups it needs later
(SIGCONT a stopped worker, resume a paused account, start PostgreSQL again, ...) as
``(delay, label, action)``; the runner calls them at their time, or at once when the
fault window ends. A fault that finds nothing to act on (no live worker, the database
down for an admin UPDATE) is counted as skipped, not injected. Admin changes are
recorded with the time their transaction committed, for the checker.
"""

from __future__ import annotations

import contextlib
import math
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import psutil
import psycopg

from bench.env import connect, pg_ctl
from chaos.history import Change, Suppression, load_deliveries
from chaos.schedule import Fault
from chaos.system import System, q

#: How long a server holds the reply of a message whose worker is then killed, and how
#: long the harness waits for such a message to arrive.
HOLD_SECONDS = 2.0
HOLD_WAIT_SECONDS = 3.0
#: How long a kill at the limit waits for the account to near its limit.
AT_LIMIT_WAIT_SECONDS = 6.0

FollowUp = tuple[float, str, Callable[[], None]]


class Skipped(Exception):
    """The fault found nothing to act on."""


class Injector:
    """Applies faults to ``system``; counts them and records admin changes."""

    def __init__(self, system: System, seed: int) -> None:
        self.system = system
        self.rng = random.Random(seed ^ 0x5EED)
        self.injected: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self.changes: list[Change] = []
        self.suppressions: list[Suppression] = []
        self.log: list[str] = []

    def inject(self, fault: Fault) -> list[FollowUp]:
        action = getattr(self, "_" + fault.kind)
        try:
            follow_ups = action(**fault.params) or []
        except (Skipped, psycopg.Error, psutil.Error) as exc:
            self.skipped[fault.kind] += 1
            self.log.append(f"{fault.describe()} skipped: {type(exc).__name__} {exc}".strip())
            return []
        self.injected[fault.kind] += 1
        self.log.append(f"{fault.describe()} done at {time.time():.3f}")
        return follow_ups

    # -- processes -----------------------------------------------------------------------

    def _worker(self, account: int) -> psutil.Process:
        workers = self.system.workers(account)
        if not workers:
            raise Skipped(f"no live worker for account #{account}")
        return self.rng.choice(workers)

    def _kill_worker(self, account: int) -> None:
        self._worker(account).kill()

    def _kill_in_flight(self, account: int) -> None:
        """Hold the next reply after the final dot and kill the worker during the hold."""
        self._worker(account)
        smtp = self.system.smtp[account]
        if not smtp.hold_next(HOLD_SECONDS, HOLD_WAIT_SECONDS):
            raise Skipped("no message arrived to hold")
        talking = [w for w in self.system.workers(account) if _connected(w, smtp.port)]
        if not talking:
            raise Skipped("the sender of the held message is gone")
        for worker in talking:
            worker.kill()

    def _kill_at_limit(self, account: int) -> None:
        """Kill the worker while its account's last allowed message is held in flight
        (then its successor must count that message before sending another)."""
        limit = self._limit_now(account)
        path = self.system.record_path(self.system.smtp[account].name)
        deadline = time.monotonic() + AT_LIMIT_WAIT_SECONDS
        while (sent := len(load_deliveries([path]))) < limit - 1:
            if time.monotonic() > deadline:
                raise Skipped(f"only {sent} of {limit} sent")
            time.sleep(0.01)
        if sent >= limit:
            raise Skipped(f"already at its limit ({sent} of {limit})")
        self._kill_in_flight(account)

    def _limit_now(self, account: int) -> int:
        with connect(self.system.url, connect_timeout=2) as conn:
            row = conn.execute(q("account_limits"), {"id": self.system.account_ids[account]})
            limits = row.fetchone()
        return min(v for v in (limits["daily_limit"], limits["hourly_limit"]) if v is not None)

    def _kill_orchestrator(self, restart_after: float) -> list[FollowUp]:
        live = self.system.live_orchestrators()
        if not live:
            raise Skipped("no live orchestrator")
        live[0].process.kill()
        live[0].proc.wait()
        return [(restart_after, "start orchestrator", self._ensure_orchestrator)]

    def _ensure_orchestrator(self) -> None:
        if not self.system.live_orchestrators():
            self.system.start_orchestrator()

    def _stop_worker(self, account: int, seconds: float) -> list[FollowUp]:
        worker = self._worker(account)
        worker.suspend()
        return [(seconds, "SIGCONT worker", lambda: _quietly(worker.resume))]

    def _second_orchestrator(self, seconds: float, kill: bool) -> list[FollowUp]:
        run = self.system.start_orchestrator()
        signal_it = run.process.kill if kill else lambda: run.proc.send_signal(signal.SIGTERM)

        def stop() -> None:
            # Wait for it to be gone: one orchestrator must keep running, as under a
            # process supervisor, and one that is dying still counts as live.
            _quietly(signal_it)
            with contextlib.suppress(subprocess.TimeoutExpired):
                run.proc.wait(timeout=30)
            self._ensure_orchestrator()

        return [(seconds, "stop second orchestrator", stop)]

    # -- PostgreSQL ----------------------------------------------------------------------

    def _pg_restart(self, mode: str) -> None:
        pg_ctl(self.system.server, "-w", "-m", mode, "restart")

    def _pg_outage(self, seconds: float) -> list[FollowUp]:
        pg_ctl(self.system.server, "-w", "-m", "immediate", "stop")
        return [(seconds, "start PostgreSQL", self._pg_start)]

    def _pg_start(self) -> None:
        pg_ctl(self.system.server, "-w", "start")

    # -- SMTP servers --------------------------------------------------------------------

    def _smtp_drop_after_data(self, account: int, times: int) -> None:
        self.system.smtp[account].command("drop_after_data", times=times)

    def _smtp_reset(self, account: int, times: int) -> None:
        self.system.smtp[account].command("reset", times=times)

    def _smtp_slow_reply(self, account: int, times: int, seconds: float) -> None:
        self.system.smtp[account].command("slow_reply", times=times, seconds=seconds)

    def _smtp_slow_greeting(self, account: int, seconds: float) -> None:
        self.system.smtp[account].command("slow_greeting", seconds=seconds)

    def _smtp_refuse_storm(self, account: int, code: int, seconds: float) -> None:
        self.system.smtp[account].command("refuse", code=code, seconds=seconds)

    # -- admins --------------------------------------------------------------------------

    def _lower_limits(self, account: int, **how: Any) -> None:
        account_id = self.system.account_ids[account]
        with connect(self.system.url, connect_timeout=2) as conn:
            current = conn.execute(q("account_limits"), {"id": account_id}).fetchone()
            values = _tightened(current, how)
            conn.execute(q("set_limits"), {"id": account_id, **values})
            self.changes.append(Change(account_id, time.time(), **values))

    def _pause_account(self, account: int, seconds: float) -> list[FollowUp]:
        if not self._set_status(account, "pause_account", "paused"):
            raise Skipped("account not active")
        return [(seconds, "resume account", lambda: self._resume(account))]

    def _resume(self, account: int) -> None:
        with contextlib.suppress(psycopg.Error):
            self._set_status(account, "resume_account", "active")

    def _set_status(self, account: int, query: str, status: str) -> bool:
        account_id = self.system.account_ids[account]
        with connect(self.system.url, connect_timeout=2) as conn:
            changed = conn.execute(q(query), {"id": account_id}).fetchone() is not None
        if changed:
            self.changes.append(Change(account_id, time.time(), status=status))
        return changed

    def _suppress(self, addresses: list[str]) -> None:
        with connect(self.system.url, connect_timeout=2) as conn:
            for address in addresses:
                conn.execute(q("suppress"), {"email": address})
                self.suppressions.append(Suppression(address, time.time()))


def _tightened(current: dict[str, Any], how: dict[str, Any]) -> dict[str, Any]:
    """New limit values: a fraction of the daily or hourly limit (of the daily one when
    there is no hourly limit), or a longer ``min_delay_ms``; unchanged ones are None."""
    values: dict[str, Any] = {"daily_limit": None, "hourly_limit": None, "min_delay_ms": None}
    if "min_delay_ms" in how:
        values["min_delay_ms"] = max(how["min_delay_ms"], current["min_delay_ms"])
    for name in ("daily_limit", "hourly_limit"):
        fraction = how.get(name + "_fraction")
        if fraction is not None:
            base = current[name] if current[name] is not None else current["daily_limit"]
            values[name] = max(1, math.floor(base * fraction))
    return values


def _quietly(action: Callable[[], Any]) -> None:
    with contextlib.suppress(psutil.Error, ProcessLookupError):
        action()


def _connected(process: psutil.Process, port: int) -> bool:
    """True if ``process`` has a TCP connection to ``port`` on loopback."""
    with contextlib.suppress(psutil.Error):
        return any(c.raddr and c.raddr.port == port for c in process.net_connections("tcp"))
    return False
