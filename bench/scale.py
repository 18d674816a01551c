"""The scale figure: what an idle account costs, measured on a whole fleet of them.

For ``scale_accounts`` idle accounts under one ``mailer run`` (and, as the baseline in the
same run, ``scale_baseline_accounts`` of them with workers spawned as fresh interpreters,
``MAILER_FORK_SERVER=0``): the start-up time until every worker registered (it claims
right after), each worker's proportional set size (PSS: shared pages divided among the
processes sharing them), the total PSS of every Mailer process, the CPU of every Mailer
process and of PostgreSQL over ``idle_seconds`` (to the nanosecond, see :func:`cpu_of`),
how often an idle worker wakes up, the server connections of the database,
and how long a worker killed with SIGKILL takes to come back. Idle is measured once
the workers are past their first lease period (:data:`SETTLE_S`). Figures measured on fewer
than 1,000 accounts are also projected to 1,000 (linearly) against the targets.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import time
from typing import Any

import psutil

from bench.env import MailerRun, Server, Sink, connect, fresh_database, one, q
from bench.figures import add_accounts, cpu_delta, verdict, wait_for
from bench.figures import cpu_of as cpu_ticks
from mailer.config import Settings
from mailer.heartbeat import IDLE_HEARTBEAT_SECONDS
from mailer.worker import QUERY_CONNECTION_IDLE_SECONDS

#: A worker's first lease period keeps its idle heartbeat short (see mailer.heartbeat):
#: idle is measured after it, after the last short beat (timed within the period, it
#: comes up to a short interval later) and after that beat's connection closed.
SETTLE_S = (
    Settings().lease_seconds * 1.5
    + min(IDLE_HEARTBEAT_SECONDS, Settings().lease_seconds / 4)
    + QUERY_CONNECTION_IDLE_SECONDS
    + 5
)
TARGET_ACCOUNTS = 1_000
PSS_PER_WORKER_MB = 15.0
TOTAL_PSS_GB = 15.0
CPU_PCT = 5.0
STARTUP_S = 30.0
RESTART_S = 2.0
CONNECTIONS = 50


def cpu_of(procs: list[psutil.Process]) -> dict[int, float]:
    """CPU seconds of each live process to the nanosecond: the run time of its threads
    (``/proc/PID/task/*/schedstat``). psutil's user and system times count whole clock
    ticks (10 ms), rounded down per process: summed over a fleet of 1,000 workers that
    read about 10 s less than they used. Where schedstat is missing, psutil's."""
    result = {}
    for p in procs:
        try:
            tasks = os.scandir(f"/proc/{p.pid}/task")
            with tasks:
                ns = sum(_schedstat_ns(f"/proc/{p.pid}/task/{t.name}/schedstat") for t in tasks)
            result[p.pid] = ns / 1e9
        except OSError:
            result.update(cpu_ticks([p]))
    return result


def _schedstat_ns(path: str) -> int:
    with open(path) as f:
        return int(f.read().split()[0])


def postgres_cpu(server: Server) -> float:
    """CPU seconds used so far by the server's live processes and by the backends that
    exited (its postmaster's children times: a worker's backend exits 5 s after the
    worker's last query, taking what it used out of a count of live processes)."""
    procs = server.backends()
    total = sum(cpu_of(procs).values())
    if procs:
        with contextlib.suppress(psutil.Error):
            reaped = procs[0].cpu_times()
            total += reaped.children_user + reaped.children_system
    return total


def wakeups(procs: list[psutil.Process]) -> dict[int, int]:
    """Voluntary context switches of each live process (its main thread: a worker's
    event loop): how often it slept and was woken."""
    result = {}
    for p in procs:
        with contextlib.suppress(psutil.Error):
            result[p.pid] = p.num_ctx_switches().voluntary
    return result


def pss_mb(procs: list[psutil.Process]) -> list[float]:
    """The PSS of each live process, in MiB."""
    sizes = []
    for p in procs:
        with contextlib.suppress(psutil.Error):
            sizes.append(p.memory_full_info().pss / 2**20)
    return sizes


def worker_processes(conn: Any) -> dict[int, psutil.Process]:
    """account id -> the process of its registered worker (this host's)."""
    found = {}
    for row in conn.execute(q("worker_pids")).fetchall():
        with contextlib.suppress(psutil.Error):
            found[row["account_id"]] = psutil.Process(row["pid"])
    return found


def restart_seconds(conn: Any, account_id: int, process: psutil.Process) -> float:
    """SIGKILL one worker; seconds until a new worker of its account registered."""
    old = process.pid
    t0 = time.monotonic()
    os.kill(old, signal.SIGKILL)

    def back() -> bool:
        rows = conn.execute(q("account_worker_pids"), {"account_id": account_id}).fetchall()
        return any(r["pid"] != old for r in rows)

    wait_for(back, 60, f"account {account_id}'s worker to come back", interval=0.02)
    return time.monotonic() - t0


def measure_fleet(
    server: Server, sink: Sink, accounts: int, idle_seconds: float, **env: str
) -> dict[str, Any]:
    """Start ``accounts`` idle accounts under ``mailer run`` (with ``env``) and measure."""
    url = fresh_database(server)
    with connect(url) as conn:
        add_accounts(conn, sink, accounts, pool="idle")
        pg_start = postgres_cpu(server)
        with MailerRun(url, MAILER_EHLO_HOSTNAME="bench.example", **env) as run:
            t0 = time.monotonic()
            wait_for(
                lambda: int(one(conn, "live_workers")["n"]) >= accounts,
                60 + accounts,
                f"{accounts} workers",
                interval=0.2,
            )
            startup = time.monotonic() - t0
            startup_cpu = {
                "mailer": cpu_delta({}, cpu_of(run.all_processes())),
                "postgres": postgres_cpu(server) - pg_start,
            }
            time.sleep(SETTLE_S)  # past start-up work and the workers' first lease period
            idle_workers = list(worker_processes(conn).values())
            woken_before = wakeups(idle_workers)
            before, pg_before = cpu_of(run.all_processes()), postgres_cpu(server)
            t1 = time.monotonic()
            time.sleep(idle_seconds)
            after, pg_after = cpu_of(run.all_processes()), postgres_cpu(server)
            window = time.monotonic() - t1
            woken_after = wakeups(idle_workers)
            woken = [n - woken_before[pid] for pid, n in woken_after.items() if pid in woken_before]
            connections = int(one(conn, "connections")["n"])
            workers = worker_processes(conn)
            pids = {p.pid for p in workers.values()}
            worker_cpu = cpu_delta(
                {pid: v for pid, v in before.items() if pid in pids},
                {pid: v for pid, v in after.items() if pid in pids},
            )
            worker_pss = pss_mb(list(workers.values()))
            total_pss = sum(pss_mb(run.all_processes()))
            postgres_pss = sum(pss_mb(server.backends()))
            account_id, process = next(iter(workers.items()))
            restart = restart_seconds(conn, account_id, process)
    return {
        "accounts": accounts,
        "env": env,
        "startup_s": startup,
        # CPU seconds used until every worker registered: Mailer's, PostgreSQL's
        "startup_cpu_s": startup_cpu,
        "idle_window_s": window,
        "mailer_cpu_pct": cpu_delta(before, after) / window * 100,
        "worker_cpu_pct": worker_cpu / window * 100,
        "postgres_cpu_pct": (pg_after - pg_before) / window * 100,
        # wake-ups of an idle worker per minute: mean, and the most of any one worker
        "worker_wakeups_per_min": {
            "mean": statistics.fmean(woken) * 60 / window if woken else float("nan"),
            "max": max(woken, default=0) * 60 / window,
        },
        "workers": len(workers),
        "worker_pss_mb": {"mean": statistics.fmean(worker_pss), "max": max(worker_pss)},
        "total_pss_mb": total_pss,
        "postgres_pss_mb": postgres_pss,
        "connections": connections,
        "restart_s": restart,
    }


def per_1000(value: float, accounts: int) -> float:
    return value * TARGET_ACCOUNTS / accounts


def fleet_rows(m: dict[str, Any], label: str, *, judged: bool) -> list[list[str]]:
    """Table rows of one fleet; ``judged`` ones carry verdicts against the targets."""
    n = m["accounts"]
    proj = n != TARGET_ACCOUNTS
    pss = m["worker_pss_mb"]
    total_gb = m["total_pss_mb"] / 1024
    total_1000 = per_1000(total_gb, n)
    # workers scale with accounts; the orchestrator, template and companions are per host
    cpu_1000 = m["mailer_cpu_pct"] + per_1000(m["worker_cpu_pct"], n) - m["worker_cpu_pct"]
    # idle workers hold none: what a fleet keeps open is per host, so it is not projected
    conns_1000 = m["connections"]
    startup_1000 = per_1000(m["startup_s"], n)

    def judge(ok: bool) -> str:
        return verdict(ok) if judged else "-"

    def at_1000(text: str) -> str:
        return f" (1,000: {text})" if proj else ""

    return [
        [f"{label}: {n} idle accounts", "", "", ""],
        [
            "  PSS per idle worker: mean / max",
            f"{pss['mean']:.1f} / {pss['max']:.1f} MB",
            f"< {PSS_PER_WORKER_MB:.0f} MB",
            judge(pss["mean"] < PSS_PER_WORKER_MB),
        ],
        [
            "  total PSS of Mailer",
            f"{total_gb:.2f} GB" + at_1000(f"{total_1000:.1f} GB"),
            f"< {TOTAL_PSS_GB:.0f} GB for 1,000",
            judge(total_1000 < TOTAL_PSS_GB),
        ],
        [
            "  PSS of PostgreSQL (every backend)",
            f"{m['postgres_pss_mb'] / 1024:.2f} GB",
            "",
            "-",
        ],
        [
            f"  CPU over {m['idle_window_s']:.0f} s idle: all (workers; PostgreSQL)",
            f"{m['mailer_cpu_pct']:.2f} % ({m['worker_cpu_pct']:.2f} %; "
            f"{m['postgres_cpu_pct']:.1f} %)" + at_1000(f"{cpu_1000:.1f} %"),
            f"< {CPU_PCT:.0f} % for 1,000",
            judge(cpu_1000 < CPU_PCT),
        ],
        [
            "  wake-ups of an idle worker per minute: mean / max",
            f"{m['worker_wakeups_per_min']['mean']:.2f} / {m['worker_wakeups_per_min']['max']:.0f}",
            "",
            "-",
        ],
        [
            "  start-up until every worker registered",
            f"{m['startup_s']:.1f} s" + at_1000(f"{startup_1000:.0f} s"),
            f"< {STARTUP_S:.0f} s for 1,000",
            judge(startup_1000 < STARTUP_S),
        ],
        [
            "  … CPU it took: Mailer / PostgreSQL",
            f"{m['startup_cpu_s']['mailer']:.1f} / {m['startup_cpu_s']['postgres']:.1f} s",
            "",
            "-",
        ],
        [
            "  PostgreSQL server connections",
            f"{m['connections']}" + (" (per host, not projected)" if proj else ""),
            f"≤ {CONNECTIONS} for 1,000",
            judge(conns_1000 <= CONNECTIONS),
        ],
        [
            "  worker killed (SIGKILL) back after",
            f"{m['restart_s']:.2f} s",
            f"< {RESTART_S:.0f} s",
            judge(m["restart_s"] < RESTART_S),
        ],
    ]


def fig_scale(
    server: Server,
    sink: Sink,
    *,
    scale_accounts: int,
    scale_baseline_accounts: int,
    idle_seconds: float,
    **_: Any,
) -> dict[str, Any]:
    res: dict[str, Any] = {"table": []}
    if scale_baseline_accounts > 0:
        base = measure_fleet(
            server, sink, scale_baseline_accounts, idle_seconds, MAILER_FORK_SERVER="0"
        )
        res["baseline"] = base
        res["table"] += fleet_rows(base, "baseline (fresh interpreters)", judged=False)
    fleet = measure_fleet(server, sink, scale_accounts, idle_seconds)
    res["fleet"] = fleet
    res["table"] += fleet_rows(fleet, "Mailer", judged=True)
    return res
