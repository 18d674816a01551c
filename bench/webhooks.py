"""The webhooks figure: what the delivery trigger costs the hot path (one UPDATE of N rows
to ``sent`` without the trigger, with it and no endpoint, with it and one endpoint), and
deliveries per second from ``mailer webhooks run`` to a local receiver."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg

from bench.content import HTML, TEXT
from bench.env import ROOT, SECRET_KEY, Server, Sink, connect, fresh_database, mailer_env, one, q
from mailer.credentials import CredentialBox
from mailer.db import Database
from mailer.webhooks_out import WebhookManager


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(204)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def receiver() -> Iterator[str]:
    """A local receiver answering 204 to everything; yields its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks"
    finally:
        server.shutdown()
        server.server_close()


def _timed_update(conn: psycopg.Connection, reps: int = 3) -> float:
    """Best of ``reps`` UPDATEs of every queued row to sent (seconds); each time the rows
    go back to queued."""
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        conn.execute(q("mark_queued_sent"))
        best = min(best, time.perf_counter() - t0)
        conn.execute(q("mark_sent_queued"))
    return best


def _add_endpoint(url: str, target: str) -> None:
    async def go() -> None:
        async with Database(url) as db:
            await WebhookManager(db, CredentialBox(SECRET_KEY)).add(target, "sent")

    asyncio.run(go())


def fig_webhooks(
    server: Server, sink: Sink, *, webhook_deliveries: int, **_: Any
) -> dict[str, Any]:
    n = webhook_deliveries
    url = fresh_database(server)
    with connect(url) as conn, receiver() as target:
        conn.execute(q("insert_rows"), {"count": n, "html": HTML, "text": TEXT, "pool": "default"})
        conn.execute(q("disable_webhook_trigger"))
        bare = _timed_update(conn)
        conn.execute(q("enable_webhook_trigger"))
        idle = _timed_update(conn)
        _add_endpoint(url, target)
        env = mailer_env(url, MAILER_WEBHOOKS_ALLOW_PRIVATE="1", MAILER_WEBHOOK_BATCH_SIZE="100")
        sender = subprocess.Popen(
            [sys.executable, "-m", "mailer", "webhooks", "run"], cwd=ROOT, env=env
        )
        try:
            time.sleep(2.0)  # the sender is up and idle before the events appear
            t0 = time.perf_counter()
            conn.execute(q("mark_queued_sent"))
            subscribed = time.perf_counter() - t0
            while one(conn, "webhook_deliveries_left")["n"] > 0:
                time.sleep(0.05)
            delivering = time.perf_counter() - t0
        finally:
            sender.terminate()
            sender.wait(timeout=30)
    us = {k: v / n * 1e6 for k, v in (("bare", bare), ("idle", idle), ("one", subscribed))}
    return {
        "rows": n,
        "update_us_per_row": us,
        "deliveries_per_s": n / delivering,
        "table": [
            [f"UPDATE {n:,} rows to sent: no trigger", f"{us['bare']:.1f} µs/row", "", "-"],
            ["  trigger, no endpoint", f"{us['idle']:.1f} µs/row", "", "-"],
            ["  trigger, one endpoint", f"{us['one']:.1f} µs/row", "", "-"],
            [
                f"webhook deliveries to a local receiver ({n:,})",
                f"{n / delivering:.0f} /s",
                "",
                "-",
            ],
        ],
    }
