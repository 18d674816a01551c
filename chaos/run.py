"""One schedule, end to end: a fresh database, the servers, accounts and rows, Mailer's
orchestrator, the fault timeline, settling, and the checker's verdict.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from bench.env import Server, connect, fresh_database
from chaos.checker import GRACE, Report, check, check_terminal
from chaos.faults import Injector
from chaos.history import Account, Attempt, History, Row, load_deliveries, save_history
from chaos.schedule import Schedule
from chaos.system import System, q


@dataclass
class RunResult:
    """The outcome of one schedule."""

    schedule: Schedule
    report: Report
    injected: Counter[str]
    skipped: Counter[str]
    settled: bool
    seconds: float
    workdir: Path
    fault_log: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.report.ok and self.settled


def run_schedule(
    schedule: Schedule,
    server: Server,
    workdir: Path,
    settle_seconds: float = 60.0,
    worker_url: Callable[[str], str] | None = None,
) -> RunResult:
    """Run ``schedule`` on ``server`` (an embedded PostgreSQL it may stop), keeping the
    servers' records and the engine's log under ``workdir``. ``worker_url`` maps the
    database's name to the URL workers query it through (``MAILER_WORKER_DATABASE_URL``,
    a PgBouncer); None: ``DATABASE_URL``."""
    started = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    system = System(server, fresh_database(server), workdir)
    if worker_url is not None:
        dbname = conninfo_to_dict(system.url)["dbname"]
        system.env["MAILER_WORKER_DATABASE_URL"] = worker_url(str(dbname))
    injector = Injector(system, schedule.seed)
    try:
        initial = system.populate(schedule)
        system.start_orchestrator()
        _play(schedule, injector)
        _calm(system)
        settled = _settle(system, initial, injector, settle_seconds)
    finally:
        system.close()
    history = _history(system, initial, injector)
    save_history(history, workdir / "history.json")
    (workdir / "faults.log").write_text("\n".join(injector.log) + "\n", encoding="utf-8")
    return RunResult(
        schedule,
        check(history, GRACE),
        injector.injected,
        injector.skipped,
        settled,
        time.monotonic() - started,
        workdir,
        injector.log,
    )


def _play(schedule: Schedule, injector: Injector) -> None:
    """Inject each fault at its time and its follow-ups at theirs (a follow-up may come
    after the schedule's duration: a long outage lasts as long as it says)."""
    t0 = time.monotonic()
    order = itertools.count()
    pending: list[tuple[float, int, str, Callable[[], None]]] = []
    faults = list(schedule.faults)
    while faults or pending:
        now = time.monotonic() - t0
        next_fault = faults[0].at if faults else float("inf")
        next_follow = pending[0][0] if pending else float("inf")
        wait = min(next_fault, next_follow) - now
        if wait > 0:
            time.sleep(min(wait, 0.1))
        elif next_follow <= next_fault:
            _, _, label, action = heapq.heappop(pending)
            _follow(injector, label, action)
        else:
            for delay, label, action in injector.inject(faults.pop(0)):
                heapq.heappush(pending, (now + delay, next(order), label, action))
    time.sleep(max(0.0, schedule.duration - (time.monotonic() - t0)))


def _follow(injector: Injector, label: str, action: Callable[[], None]) -> None:
    try:
        action()
        injector.log.append(f"  follow-up {label} at {time.time():.3f}")
    except Exception as exc:  # a follow-up must never stop the schedule
        injector.log.append(f"  follow-up {label} failed: {type(exc).__name__} {exc}")


def _calm(system: System) -> None:
    """End of the fault window: servers behave and one orchestrator runs."""
    for smtp in system.smtp:
        smtp.command("normal")
    if not system.live_orchestrators():
        system.start_orchestrator()


def _settle(
    system: System, initial: list[Account], injector: Injector, timeout: float, quiet: float = 2.0
) -> bool:
    """Wait (at most ``timeout`` s) until, for ``quiet`` seconds, no row is sending and
    every queued row waits for a paused or full account (as the checker judges); True if
    the queue settled."""
    deadline = time.monotonic() + timeout
    since = None
    while time.monotonic() < deadline:
        system.workers()  # remember every worker, to kill leftovers by pid at the end
        try:
            lost, _ = check_terminal(_history(system, initial, injector))
        except psycopg.Error:
            lost = ["database unavailable"]
        if lost:
            since = None
        elif since is None:
            since = time.monotonic()
        elif time.monotonic() - since >= quiet:
            return True
        time.sleep(0.5)
    return False


def _history(system: System, initial: list[Account], injector: Injector) -> History:
    """The run's history so far: the servers' records, the database, the admin changes."""
    paths = [system.record_path(a.email) for a in initial]
    with connect(system.url, connect_timeout=2) as conn:
        rows = [Row(**r) for r in conn.execute(q("snapshot_rows"))]
        attempts = [Attempt(**r) for r in conn.execute(q("snapshot_attempts"))]
        final = [Account(**r) for r in conn.execute(q("snapshot_accounts"))]
    return History(
        deliveries=load_deliveries([p for p in paths if p.exists()]),
        rows=rows,
        attempts=attempts,
        initial=initial,
        final=final,
        changes=injector.changes,
        suppressions=injector.suppressions,
        ended_at=time.time(),
    )


def summary(result: RunResult) -> dict[str, Any]:
    """The JSON form of one schedule's result."""
    report = result.report
    return {
        "seed": result.schedule.seed,
        "ok": result.ok,
        "settled": result.settled,
        "seconds": round(result.seconds, 1),
        "deliveries": report.deliveries,
        "faults": dict(result.injected),
        "skipped": dict(result.skipped),
        "duplicates": dict(report.duplicates),
        "waiting": dict(report.waiting),
        "violations": report.violations,
        "timeline": result.fault_log,
        "workdir": str(result.workdir),
    }
