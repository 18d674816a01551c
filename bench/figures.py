"""The figures (the webhooks one lives in :mod:`bench.webhooks`). Each is a function
returning a dict: its measurements, and under ``"table"`` the rows
``[metric, value, goal, verdict]`` the report prints."""

from __future__ import annotations

import contextlib
import json
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

import psutil
import psycopg

from bench.api import fig_api
from bench.console import fig_console
from bench.content import HTML, TEXT
from bench.env import (
    ROOT,
    MailerRun,
    Server,
    Sink,
    connect,
    fresh_database,
    mailer_env,
    one,
    q,
)
from bench.webhooks import fig_webhooks
from mailer.sql_queries import query

Row = list[Any]


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("ok" if ok else "MISS")


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def cpu_of(procs: Iterable[psutil.Process]) -> dict[int, float]:
    """CPU seconds (user + system) of each live process, by pid."""
    result = {}
    for p in procs:
        try:
            t = p.cpu_times()
            result[p.pid] = t.user + t.system
        except psutil.Error:
            pass
    return result


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(v - before.get(pid, 0.0) for pid, v in after.items())


def wait_for(
    predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.1
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def add_accounts(
    conn: psycopg.Connection,
    sink: Sink,
    count: int,
    pool: str = "default",
) -> list[int]:
    rows = conn.execute(
        q("insert_accounts"),
        {
            "count": count,
            "host": sink.host,
            "port": sink.port,
            "pool": pool,
            "daily_limit": 1_000_000_000,
            "min_delay_ms": 0,
        },
    ).fetchall()
    return [r["id"] for r in rows]


def unsettled(conn: psycopg.Connection) -> int:
    """1 while any row is queued or sending, then 0."""
    return int(one(conn, "unsettled_count")["n"])


# -- 1. throughput ------------------------------------------------------------------------


def ceiling(sink: Sink, k: int, n: int) -> dict[str, Any]:
    """K plain aiosmtplib client processes, one reused connection each, N messages."""
    shares = [n // k + (1 if i < n % k else 0) for i in range(k)]
    procs = []
    offset = 1
    for share in shares:
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.smtp_client",
                    sink.host,
                    str(sink.port),
                    str(share),
                    str(offset),
                ],
                cwd=ROOT,
                env=mailer_env(""),
                text=True,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
        )
        offset += share
    for p in procs:
        assert p.stdout is not None
        if p.stdout.readline().strip() != "ready":
            raise RuntimeError("a ceiling client failed to start")
    sink_cpu = cpu_of([sink.process])
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    results = []
    for p in procs:
        assert p.stdout is not None
        results.append(json.loads(p.stdout.readline()))
        p.wait(timeout=60)
    elapsed = max(r["end"] for r in results) - min(r["start"] for r in results)
    sent = sum(r["sent"] for r in results)
    return {
        "sent": sent,
        "seconds": elapsed,
        "msgs_per_s": sent / elapsed,
        "message_bytes": results[0]["bytes"],
        "client_cpu_s": sum(r["cpu"] for r in results),
        "sink_cpu_s": cpu_delta(sink_cpu, cpu_of([sink.process])),
    }


def mailer_throughput(
    server: Server, sink: Sink, k: int, n: int, timeout: float, pool_size: int = 0
) -> dict[str, Any]:
    """K accounts under a running ``mailer run`` (workers started and idle, as the
    ceiling's clients are connected before they go); N rows inserted with one INSERT,
    timed until all are sent. The cold start (``mailer run`` until its K workers are
    registered) is reported apart."""
    url = fresh_database(server)
    with connect(url) as conn:
        add_accounts(conn, sink, k)
        with MailerRun(url) as run:
            wait_for(
                lambda: int(one(conn, "live_workers")["n"]) >= k, 60, f"{k} workers registered"
            )
            cold_start = time.time() - run.started
            time.sleep(1.0)  # past the workers' first queries
            pg = server.backends()
            pg_cpu = cpu_of(pg)
            sink_cpu = cpu_of([sink.process])
            mailer_before = cpu_of(run.all_processes())
            started = time.time()
            conn.execute(
                q("insert_rows"), {"count": n, "html": HTML, "text": TEXT, "pool": "default"}
            )
            peak_rss: dict[int, int] = {}
            mailer_cpu: dict[int, float] = {}
            connections = [0]  # the most PostgreSQL connections to the database at once

            def done() -> bool:
                for p in run.workers():
                    with contextlib.suppress(psutil.Error):
                        peak_rss[p.pid] = max(peak_rss.get(p.pid, 0), p.memory_info().rss)
                mailer_cpu.update(cpu_of(run.all_processes()))
                connections[0] = max(connections[0], int(one(conn, "connections")["n"]))
                return unsettled(conn) == 0

            wait_for(done, timeout, f"{n} rows sent", interval=0.1)
            finished = time.time()
            pg_after = cpu_of(server.backends())
        summary = one(conn, "settled_summary")
    elapsed = finished - started
    steady = (summary["last_sent"] - summary["first_sent"]).total_seconds()
    return {
        "sent": summary["sent"],
        "other": summary["other"],
        "logs": summary["logs"],
        "seconds": elapsed,
        "msgs_per_s": n / elapsed,
        "steady_msgs_per_s": (n - 1) / steady if steady > 0 else None,
        "cold_start_s": cold_start,
        "first_sent_after_s": summary["first_sent"].timestamp() - started,
        "peak_worker_rss_mb": max(peak_rss.values(), default=0) / 2**20,
        "mailer_cpu_s": cpu_delta(mailer_before, mailer_cpu),
        "postgres_cpu_s": cpu_delta(pg_cpu, pg_after),
        "sink_cpu_s": cpu_delta(sink_cpu, cpu_of([sink.process])),
        "peak_connections": connections[0],
        "_pg_procs": len(pg),
    }


def fig_throughput(
    server: Server, sink: Sink, *, accounts: int, messages: int, **_: Any
) -> dict[str, Any]:
    ceil = ceiling(sink, accounts, messages)
    mailer = mailer_throughput(server, sink, accounts, messages, timeout=max(120.0, messages / 50))
    mailer.pop("_pg_procs", None)
    ratio = mailer["msgs_per_s"] / ceil["msgs_per_s"]
    steady_ratio = (mailer["steady_msgs_per_s"] or 0) / ceil["msgs_per_s"]
    per_k = 1000 / messages
    ceiling_cores = (ceil["client_cpu_s"] + ceil["sink_cpu_s"]) / ceil["seconds"]
    mailer_cores = (
        mailer["mailer_cpu_s"] + mailer["postgres_cpu_s"] + mailer["sink_cpu_s"]
    ) / mailer["seconds"]
    return {
        "accounts": accounts,
        "messages": messages,
        "ceiling": ceil,
        "mailer": mailer,
        "ratio": ratio,
        "steady_ratio": steady_ratio,
        "table": [
            [
                f"ceiling: {accounts} aiosmtplib clients, {messages} msgs",
                f"{ceil['msgs_per_s']:.0f} msg/s",
                "",
                "-",
            ],
            [
                "mailer run (started, idle): INSERT → all sent (from the DB)",
                f"{mailer['msgs_per_s']:.0f} msg/s ({mailer['seconds']:.1f} s,"
                f" first sent after {mailer['first_sent_after_s']:.2f} s)",
                "",
                "-",
            ],
            [
                f"mailer run cold start: until its {accounts} workers registered",
                f"{mailer['cold_start_s']:.1f} s",
                "",
                "-",
            ],
            [
                "mailer/ceiling",
                f"{ratio:.2f}",
                "≥ 0.8",
                verdict(ratio >= 0.8 and messages >= 20_000 and accounts == 4)
                if messages >= 20_000
                else verdict(None),
            ],
            ["mailer/ceiling, steady state (first → last sent_at)", f"{steady_ratio:.2f}", "", "-"],
            [
                "CPU s per 1000 msgs: mailer / postgres / sink (ceiling's sink)",
                f"{mailer['mailer_cpu_s'] * per_k:.2f} / {mailer['postgres_cpu_s'] * per_k:.2f}"
                f" / {mailer['sink_cpu_s'] * per_k:.2f} ({ceil['sink_cpu_s'] * per_k:.2f})",
                "",
                "-",
            ],
            [
                "CPU s per 1000 msgs, ceiling: clients (sending only) / sink",
                f"{ceil['client_cpu_s'] * per_k:.2f} / {ceil['sink_cpu_s'] * per_k:.2f}",
                "",
                "-",
            ],
            [
                "cores busy with the processes above: ceiling / mailer run",
                f"{ceiling_cores:.2f} / {mailer_cores:.2f} of {psutil.cpu_count()}",
                "",
                "-",
            ],
            [
                "PostgreSQL connections to the database, at most (sampled every 0.1 s)",
                str(mailer["peak_connections"]),
                "",
                "-",
            ],
            [
                "rows sent / logs / not sent",
                f"{mailer['sent']} / {mailer['logs']} / {mailer['other']}",
                "all sent",
                verdict(mailer["sent"] == messages and mailer["other"] == 0),
            ],
        ],
    }


# -- 2. enqueue ---------------------------------------------------------------------------


def _enqueue_data(n: int) -> tuple[dict[str, list[str]], bytes]:
    cols: dict[str, list[str]] = {
        "to_address": [],
        "to_name": [],
        "subject": [],
        "html": [],
        "text": [],
        "campaign": [],
    }
    lines = []
    for i in range(n):
        row = [
            f"customer{i}@example.org",
            f"Customer {i}",
            f"Your order #{i} has shipped",
            f"<p>Hello Customer {i},</p><p>your order <b>#{i}</b> left our warehouse "
            f"today. Track it at https://shop.example/t/{i}.</p><p>Thank you!</p>",
            f"Hello Customer {i},\nyour order #{i} left our warehouse today.\n"
            f"Track it at https://shop.example/t/{i}.\nThank you!",
            "shipping",
        ]
        for key, value in zip(cols, row, strict=True):
            cols[key].append(value)
        lines.append(
            "\t".join(
                v.replace("\\", "\\\\")
                .replace("\t", "\\t")
                .replace("\n", "\\n")
                .replace("\r", "\\r")
                for v in row
            )
        )
    return cols, ("\n".join(lines) + "\n").encode()


def _timed(conn: psycopg.Connection, truncate: str, work: Callable[[], None]) -> float:
    conn.execute(q(truncate))
    conn.execute(q("checkpoint"))
    t0 = time.perf_counter()
    work()
    return time.perf_counter() - t0


def fig_enqueue(
    server: Server, sink: Sink, *, enqueue_rows: int, reps: int, **_: Any
) -> dict[str, Any]:
    url = fresh_database(server)
    n = enqueue_rows
    cols, payload = _enqueue_data(n)
    times: dict[str, list[float]] = {
        k: [] for k in ("insert_queue", "insert_bare", "copy_queue", "copy_bare")
    }
    with connect(url) as conn:
        conn.execute(q("bare_table"))

        def insert(block: str) -> Callable[[], None]:
            return lambda: conn.execute(q(block), cols) and None

        def copy(block: str) -> Callable[[], None]:
            def go() -> None:
                with conn.cursor() as cur, cur.copy(q(block)) as cp:
                    for start in range(0, len(payload), 1 << 20):
                        cp.write(payload[start : start + (1 << 20)])

            return go

        for _rep in range(reps):
            times["insert_queue"].append(
                _timed(conn, "truncate_queue", insert("insert_unnest_queue"))
            )
            times["insert_bare"].append(_timed(conn, "truncate_bare", insert("insert_unnest_bare")))
            times["copy_queue"].append(_timed(conn, "truncate_queue", copy("copy_queue")))
            times["copy_bare"].append(_timed(conn, "truncate_bare", copy("copy_bare")))
        conn.execute(q("truncate_queue"))
    rate = {k: n / statistics.median(v) for k, v in times.items()}
    insert_ratio = rate["insert_queue"] / rate["insert_bare"]
    copy_ratio = rate["copy_queue"] / rate["copy_bare"]
    return {
        "rows": n,
        "reps": reps,
        "row_bytes": len(payload) // n,
        "rows_per_s": rate,
        "insert_ratio": insert_ratio,
        "copy_ratio": copy_ratio,
        "table": [
            [
                f"bulk INSERT (unnest), {n} rows: email_queue / bare",
                f"{rate['insert_queue']:,.0f} / {rate['insert_bare']:,.0f} rows/s",
                "",
                "-",
            ],
            ["INSERT ratio", f"{insert_ratio:.2f}", "≥ 0.7", verdict(insert_ratio >= 0.7)],
            [
                f"COPY, {n} rows: email_queue / bare",
                f"{rate['copy_queue']:,.0f} / {rate['copy_bare']:,.0f} rows/s",
                "≥ 20,000 rows/s",
                verdict(rate["copy_queue"] >= 20_000),
            ],
            ["COPY ratio", f"{copy_ratio:.2f}", "≥ 0.7", verdict(copy_ratio >= 0.7)],
        ],
    }


# -- 3. pickup latency --------------------------------------------------------------------


def _sink_times(directory: Path) -> dict[str, float]:
    """recipient -> when the sink handled DATA (from the store-mode file name)."""
    parser = BytesHeaderParser()
    result = {}
    for path in directory.glob("*.eml"):
        stamp = datetime.strptime(path.name.split("-")[0], "%Y%m%dT%H%M%S.%fZ")
        headers = parser.parsebytes(path.read_bytes())
        result[str(headers["To"]).strip()] = stamp.replace(tzinfo=UTC).timestamp()
    return result


def fig_latency(server: Server, sink: Sink, *, latency_samples: int, **_: Any) -> dict[str, Any]:
    url = fresh_database(server)
    rng = random.Random(7)
    inserted: dict[str, tuple[float, float]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="mailer-bench-sink-") as tmp,
        Sink(Path(tmp)) as store,
        connect(url) as conn,
    ):
        add_accounts(conn, store, 2)
        with MailerRun(url):
            wait_for(lambda: int(one(conn, "live_workers")["n"]) == 2, 60, "2 workers")
            time.sleep(2.0)  # past their first claims: idle, waiting on LISTEN
            for i in range(latency_samples):
                address = f"latency{i}@example.org"
                t0 = time.time()
                row = one(
                    conn,
                    "insert_one",
                    {
                        "to_address": address,
                        "subject": f"Ping {i}",
                        "html": "<p>ping</p>",
                        "text": "ping",
                        "pool": "default",
                    },
                )
                sent_at: list[float] = []

                def sent(row_id: int = row["id"], box: list[float] = sent_at) -> bool:
                    r = one(conn, "row_sent_at", {"id": row_id})
                    if r["sent_at"] is not None:
                        box.append(r["sent_at"].timestamp())
                        return True
                    return False

                wait_for(sent, 10, f"row {row['id']} sent", interval=0.002)
                inserted[address] = (t0, sent_at[0])
                time.sleep(rng.uniform(0.02, 0.12))
        data_at = _sink_times(Path(tmp))
    to_sent = [(s - t0) * 1000 for t0, s in inserted.values()]
    to_data = [(data_at[a] - t0) * 1000 for a, (t0, _) in inserted.items() if a in data_at]
    res = {
        "samples": latency_samples,
        "insert_to_sent_at_ms": {
            "p50": pct(to_sent, 50),
            "p99": pct(to_sent, 99),
            "max": max(to_sent),
        },
        "insert_to_data_ms": {
            "p50": pct(to_data, 50),
            "p99": pct(to_data, 99),
            "max": max(to_data, default=float("nan")),
            "received": len(to_data),
        },
    }
    s, d = res["insert_to_sent_at_ms"], res["insert_to_data_ms"]
    res["table"] = [
        [
            f"insert → sent_at, {latency_samples} rows one at a time: p50 / p99",
            f"{s['p50']:.1f} / {s['p99']:.1f} ms",
            "< 50 / < 250 ms",
            verdict(s["p50"] < 50 and s["p99"] < 250),
        ],
        [
            "insert → SMTP DATA at the sink: p50 / p99",
            f"{d['p50']:.1f} / {d['p99']:.1f} ms",
            "< 50 / < 250 ms",
            verdict(d["p50"] < 50 and d["p99"] < 250 and d["received"] == latency_samples),
        ],
    ]
    return res


# -- 4. idle cost -------------------------------------------------------------------------


def fig_idle(
    server: Server, sink: Sink, *, idle_accounts: int, idle_seconds: float, **_: Any
) -> dict[str, Any]:
    url = fresh_database(server)
    with connect(url) as conn:
        add_accounts(conn, sink, idle_accounts, pool="idle")
        with MailerRun(url) as run:
            t0 = time.monotonic()
            wait_for(
                lambda: int(one(conn, "live_workers")["n"]) == idle_accounts,
                60 + idle_accounts * 2,
                f"{idle_accounts} workers",
                interval=0.5,
            )
            startup = time.monotonic() - t0
            time.sleep(5)  # let start-up work settle
            procs = run.all_processes()
            pg = server.backends()
            before, pg_before = cpu_of(procs), cpu_of(pg)
            t1 = time.monotonic()
            time.sleep(idle_seconds)
            after, pg_after = cpu_of(procs), cpu_of(server.backends())
            window = time.monotonic() - t1
            workers = run.workers()
            rss, uss = [], []
            for p in workers:
                try:
                    info = p.memory_full_info()
                    rss.append(info.rss / 2**20)
                    uss.append(info.uss / 2**20)
                except psutil.Error:
                    pass
            connections = int(one(conn, "connections")["n"])
    mailer_pct = cpu_delta(before, after) / window * 100
    pg_pct = cpu_delta(pg_before, pg_after) / window * 100
    per_worker = (connections - 2) / max(len(workers), 1)  # the orchestrator holds 2
    return {
        "accounts": idle_accounts,
        "seconds": window,
        "startup_s": startup,
        "workers": len(workers),
        "mailer_cpu_pct_of_one_core": mailer_pct,
        "postgres_cpu_pct_of_one_core": pg_pct,
        "worker_rss_mb": {"mean": statistics.fmean(rss), "max": max(rss)},
        "worker_uss_mb": {"mean": statistics.fmean(uss), "max": max(uss)},
        "connections": connections,
        "connections_per_worker": per_worker,
        "table": [
            [
                f"{idle_accounts} idle accounts, {window:.0f} s: CPU of all Mailer processes",
                f"{mailer_pct:.1f} % of a core",
                "< 5 %",
                verdict(mailer_pct < 5),
            ],
            ["  … and of PostgreSQL", f"{pg_pct:.1f} % of a core", "", "-"],
            [
                "RSS per worker: mean / max (USS mean)",
                f"{statistics.fmean(rss):.1f} / {max(rss):.1f} MB ({statistics.fmean(uss):.1f})",
                "< 45 MB",
                verdict(max(rss) < 45),
            ],
            [
                "DB connections: total / per worker",
                f"{connections} / {per_worker:.2f}",
                "≤ 2 per worker",
                verdict(per_worker <= 2),
            ],
            [f"start-up of {idle_accounts} workers", f"{startup:.1f} s", "", "-"],
        ],
    }


# -- 5. deep queue, 7. retention ----------------------------------------------------------

CLAIM_LIMIT = 100


def _claim_params(account_id: int) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "pool": "pool0",
        "domain": "bench.example",
        "limit": CLAIM_LIMIT,
        "worker_id": "bench",
        "lease_seconds": 60,
    }


def _claim_once(conn: psycopg.Connection, account_id: int) -> tuple[float, int]:
    """One claim of the engine's claim_batch, rolled back; (seconds, rows)."""
    t0 = time.perf_counter()
    with conn.transaction(force_rollback=True):
        rows = conn.execute(query("claim_batch"), _claim_params(account_id)).fetchall()
    return time.perf_counter() - t0, len(rows)


def _fill(server: Server, sink: Sink, total: int, queued: int) -> tuple[str, int, float]:
    url = fresh_database(server)
    with connect(url) as conn:
        account = add_accounts(conn, sink, 1, pool="pool0")[0]
        t0 = time.perf_counter()
        conn.execute(
            q("deep_fill"),
            {"total": total, "queued": queued, "pools": 4, "days": 180, "account_id": account},
        )
        conn.execute(q("deep_partitions"), {"days": 180})  # the logs' days, as in production
        conn.execute(q("deep_logs"))
        conn.execute(q("vacuum_analyze_queue"))
        conn.execute(q("vacuum_analyze_logs"))
        return url, account, time.perf_counter() - t0


def _claims(url: str, account: int, samples: int) -> tuple[list[float], int]:
    with connect(url) as conn:
        for _ in range(6):  # warm up; psycopg prepares the statement after 5 runs
            _claim_once(conn, account)
        results = [_claim_once(conn, account) for _ in range(samples)]
    return [t * 1000 for t, _ in results], results[-1][1]


def fig_deep(
    server: Server,
    sink: Sink,
    *,
    deep_rows: int,
    deep_queued: int,
    claim_samples: int,
    retention: bool = True,
    **_: Any,
) -> dict[str, Any]:
    small_url, small_acct, _ = _fill(server, sink, 1000, 400)
    small, small_rows = _claims(small_url, small_acct, claim_samples)
    url, account, fill_s = _fill(server, sink, deep_rows, deep_queued)
    deep, deep_rows_claimed = _claims(url, account, claim_samples)
    with connect(url) as conn:
        size = one(conn, "queue_size")
        with psycopg.ClientCursor(conn) as cur, conn.transaction(force_rollback=True):
            cur.execute(q("explain_claim") + "\n" + query("claim_batch"), _claim_params(account))
            plan = "\n".join(r["QUERY PLAN"] for r in cur.fetchall())
    ratio = statistics.median(deep) / statistics.median(small)
    # (a seq scan of the few-row templates table is the planner's right call)
    queue_seq_scan = any(
        word in plan for word in ("Seq Scan on email_queue", "Seq Scan on send_logs")
    )
    res: dict[str, Any] = {
        "small": {
            "rows": 1000,
            "claim_ms_p50": statistics.median(small),
            "claim_ms_p95": pct(small, 95),
            "claimed": small_rows,
        },
        "deep": {
            "rows": size["total"],
            "queued": size["queued"],
            "future": size["future"],
            "fill_s": fill_s,
            "claim_ms_p50": statistics.median(deep),
            "claim_ms_p95": pct(deep, 95),
            "claimed": deep_rows_claimed,
        },
        "ratio": ratio,
        "plan": plan,
        "queue_seq_scan": queue_seq_scan,
        "table": [
            [
                f"claim of {CLAIM_LIMIT}, 1,000-row queue: p50 / p95",
                f"{statistics.median(small):.2f} / {pct(small, 95):.2f} ms",
                "",
                "-",
            ],
            [
                f"claim of {CLAIM_LIMIT}, {size['total']:,}-row queue ({size['queued']:,} "
                f"queued): p50 / p95",
                f"{statistics.median(deep):.2f} / {pct(deep, 95):.2f} ms",
                "",
                "-",
            ],
            ["deep / small", f"{ratio:.2f}", "≤ 1.5", verdict(ratio <= 1.5)],
            [
                "sequential scans of email_queue in the claim's plan",
                "yes" if queue_seq_scan else "none",
                "none",
                verdict(not queue_seq_scan),
            ],
        ],
    }
    if retention:
        res["retention"] = _retention(url, account, statistics.median(deep))
        res["table"] += res["retention"].pop("table")
    return res


def _partitions_dropped(prune_output: str) -> str:
    """The number ``mailer db prune`` reports of day partitions dropped."""
    found = re.search(r"(\d+) day partitions dropped", prune_output)
    return found[1] if found else "?"


def _retention(url: str, account: int, claim_before_ms: float) -> dict[str, Any]:
    """``mailer db prune --older-than 90d`` on the deep queue while claims keep running."""
    during: list[float] = []
    stop = threading.Event()

    def claims() -> None:
        with connect(url) as conn:
            while not stop.is_set():
                during.append(_claim_once(conn, account)[0] * 1000)
                time.sleep(0.01)

    with connect(url) as conn:
        before = one(conn, "queue_size")["total"]
    thread = threading.Thread(target=claims)
    thread.start()
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "mailer", "db", "prune", "--older-than", "90d"],
        cwd=ROOT,
        env=mailer_env(url),
        capture_output=True,
        text=True,
        timeout=900,
    )
    prune_s = time.perf_counter() - t0
    stop.set()
    thread.join()
    if out.returncode != 0:
        raise RuntimeError(f"mailer db prune failed: {out.stderr or out.stdout}")
    with connect(url) as conn:
        after_total = one(conn, "queue_size")["total"]
        conn.execute(q("vacuum_analyze_queue"))
    after, _ = _claims(url, account, 30)
    deleted = before - after_total
    p50, p99 = statistics.median(during), pct(during, 99)
    return {
        "deleted_rows": deleted,
        "prune_s": prune_s,
        "rows_per_s": deleted / prune_s,
        "output": out.stdout.strip(),
        "claims_during": len(during),
        "claim_ms_during": {"p50": p50, "p99": p99, "max": max(during)},
        "claim_ms_after_p50": statistics.median(after),
        "table": [
            [
                "prune --older-than 90d on that queue",
                f"{deleted:,} rows in {prune_s:.1f} s ({deleted / prune_s:,.0f} rows/s)",
                "batched",
                "-",
            ],
            [
                "  … send_logs and email_events: whole day partitions dropped",
                _partitions_dropped(out.stdout),
                "",
                "-",
            ],
            [
                "claims meanwhile: count / p50 / p99 / max",
                f"{len(during)} / {p50:.1f} / {p99:.1f} / {max(during):.1f} ms",
                "not locked out",
                verdict(len(during) > 0 and max(during) < 1000),
            ],
            [
                "claim p50 after prune (+VACUUM)",
                f"{statistics.median(after):.2f} ms (before {claim_before_ms:.2f})",
                "",
                "-",
            ],
        ],
    }


# -- 6. memory under load -----------------------------------------------------------------


def fig_memory(server: Server, sink: Sink, *, memory_messages: int, **_: Any) -> dict[str, Any]:
    n = memory_messages
    url = fresh_database(server)
    samples: list[tuple[float, float]] = []
    with connect(url) as conn:
        add_accounts(conn, sink, 1)
        with MailerRun(url) as run:
            wait_for(lambda: bool(run.workers()), 60, "the worker process")
            worker = run.workers()[0]
            conn.execute(
                q("insert_rows"), {"count": n, "html": HTML, "text": TEXT, "pool": "default"}
            )
            t0 = time.time()

            def done() -> bool:
                with contextlib.suppress(psutil.Error):
                    samples.append((time.time() - t0, worker.memory_info().rss / 2**20))
                return unsettled(conn) == 0

            wait_for(done, max(120.0, n / 30), f"{n} rows sent", interval=0.1)
            elapsed = time.time() - t0
        summary = one(conn, "settled_summary")
    rss = [r for _, r in samples]
    tenth = rss[: max(1, len(rss) // 10)]
    last_tenth = rss[-max(1, len(rss) // 10) :]
    peak = max(rss)
    return {
        "messages": n,
        "sent": summary["sent"],
        "seconds": elapsed,
        "msgs_per_s": n / elapsed,
        "rss_mb": {"first_tenth_max": max(tenth), "last_tenth_max": max(last_tenth), "peak": peak},
        "table": [
            [
                f"one worker sending {n:,}: peak RSS",
                f"{peak:.1f} MB",
                "< 80 MB",
                verdict(peak < 80),
            ],
            [
                "RSS first tenth → last tenth of the run",
                f"{max(tenth):.1f} → {max(last_tenth):.1f} MB",
                "flat",
                verdict(max(last_tenth) - max(tenth) < 5),
            ],
            ["one worker's throughput", f"{n / elapsed:.0f} msg/s", "", "-"],
        ],
    }


FIGURES: dict[str, Callable[..., dict[str, Any]]] = {
    "throughput": fig_throughput,
    "enqueue": fig_enqueue,
    "latency": fig_latency,
    "idle": fig_idle,
    "deep": fig_deep,
    "memory": fig_memory,
    "webhooks": fig_webhooks,
    "console": fig_console,
    "api": fig_api,
}
