"""The take-over figure: two orchestrators (``mailer run`` with their own ``MAILER_HOME``
and ``MAILER_HOST_ID``) on one database split the accounts; one is killed (-9, with its
workers) while mail is going out; the other runs every account again within 30 s (the
dead host's heartbeat ages ``MAILER_HOST_DEAD_SECONDS`` first) and every row is sent."""

from __future__ import annotations

import contextlib
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from bench.content import HTML, TEXT
from bench.env import MailerRun, Server, Sink, connect, fresh_database, one, q
from bench.figures import add_accounts, unsettled, verdict, wait_for

#: Rows queued before the kill, sent across it.
ROWS_PER_ACCOUNT = 100
TAKEOVER_GOAL_SECONDS = 30.0


def _host(url: str, home: Path, host_id: str, log: Any) -> MailerRun:
    home.mkdir()
    return MailerRun(
        url,
        log,
        MAILER_HOME=str(home),
        MAILER_HOST_ID=host_id,
        MAILER_BOUNCE_READER="0",
        MAILER_WEBHOOK_SENDER="0",
    )


def _kill(run: MailerRun) -> None:
    """kill -9 of an orchestrator and every process under it, at once."""
    for p in run.all_processes():
        with contextlib.suppress(psutil.Error):
            p.kill()
    run.proc.wait()


def _placed(conn: Any) -> dict[str, int]:
    return {r["host_id"]: r["n"] for r in conn.execute(q("placements_by_host"))}


def _workers_under(conn: Any, run: MailerRun, since: datetime) -> int:
    """Accounts with a worker started after ``since`` that is a live child of ``run``."""
    children = {p.pid for p in run.workers()}
    rows = conn.execute(q("accounts_with_live_worker"), {"since": since}).fetchall()
    return len({r["account_id"] for r in rows if r["pid"] in children})


def fig_takeover(server: Server, sink: Sink, *, takeover_accounts: int, **_: Any) -> dict[str, Any]:
    url = fresh_database(server)
    n = takeover_accounts
    with connect(url) as conn, tempfile.TemporaryDirectory() as tmp:
        add_accounts(conn, sink, n)
        since = one(conn, "bench_now")["now"]
        with (
            open(Path(tmp) / "a.log", "wb") as log_a,
            open(Path(tmp) / "b.log", "wb") as log_b,
            _host(url, Path(tmp) / "a", "host-a", log_a) as a,
            _host(url, Path(tmp) / "b", "host-b", log_b) as b,
        ):
            t0 = time.monotonic()
            wait_for(
                lambda: (
                    sorted(_placed(conn).values()) == [n // 2, n - n // 2]
                    and _workers_under(conn, a, since) + _workers_under(conn, b, since) == n
                ),
                60 + n,
                "accounts split between two hosts",
                interval=0.2,
            )
            balance_s = time.monotonic() - t0
            split = _placed(conn)
            rows = n * ROWS_PER_ACCOUNT
            conn.execute(
                q("insert_rows"), {"count": rows, "html": HTML, "text": TEXT, "pool": "default"}
            )
            killed_at = time.monotonic()
            _kill(b)
            wait_for(lambda: _placed(conn) == {"host-a": n}, 120, "host-a claiming every account")
            claimed = time.monotonic() - killed_at
            wait_for(
                lambda: _workers_under(conn, a, since) == n, 120, "host-a running every account"
            )
            takeover = time.monotonic() - killed_at
            wait_for(lambda: unsettled(conn) == 0, 120, "every row sent", interval=0.5)
            summary = one(conn, "settled_summary")
    ok = takeover <= TAKEOVER_GOAL_SECONDS
    return {
        "accounts": n,
        "split": split,
        "balance_s": balance_s,
        "claimed_s": claimed,
        "takeover_s": takeover,
        "rows": rows,
        "settled": dict(summary),
        "table": [
            [
                f"{n} accounts on 2 hosts: split by count",
                " / ".join(str(v) for v in split.values()),
                "differ by ≤ 1",
                verdict(max(split.values()) - min(split.values()) <= 1),
            ],
            [
                "take-over after kill -9 of a host (host dead after 10 s)",
                f"{takeover:.1f} s (claimed at {claimed:.1f} s)",
                f"≤ {TAKEOVER_GOAL_SECONDS:.0f} s",
                verdict(ok),
            ],
            [
                "rows queued across the kill: sent / other",
                f"{summary['sent']} / {summary['other']} of {rows}",
                "all sent",
                verdict(summary["sent"] == rows),
            ],
        ],
    }
