"""The console figure: server time of every console page (Flask's test client, so the
time of the view, its queries and its template, no network) on an installation of
``console_accounts`` accounts and ``console_rows`` queued rows (with their attempts,
events and suppressions), made with generate_series. Goal: every page under 200 ms."""

from __future__ import annotations

import re
import statistics
import time
from functools import cache
from importlib import resources
from typing import Any

from bench.env import SECRET_KEY, Server, Sink, connect, fresh_database
from mailer.admin_users import AdminUsers
from mailer.config import Settings
from mailer.sql_queries import parse_query_blocks
from tracking import close_app, create_app

GOAL_MS = 200.0
REPS = 5
PAGES = [
    "/admin/",
    "/admin/overview.json",
    "/admin/accounts",
    "/admin/accounts/1",
    "/admin/messages",
    "/admin/messages?to=user777@example.org",
    "/admin/messages?campaign=campaign-7&status=failed",
    "/admin/messages?campaign=campaign-3&status=failed",  # matches none: scans the campaign
    "/admin/messages?message_id=<4242@bench.example>",
    "/admin/messages?since={yesterday}",
    "/admin/messages/{middle}",
    "/admin/suppressions",
    "/admin/suppressions?search=gone77",
    "/admin/bounces",
    "/admin/campaigns",
    "/admin/campaigns/campaign-3",
    "/admin/audit",
]


@cache
def _queries() -> dict[str, str]:
    return parse_query_blocks(resources.files("bench").joinpath("console.sql").read_text())


def _populate(url: str, accounts: int, rows: int) -> None:
    with connect(url) as conn:
        conn.execute(_queries()["console_accounts"], {"count": accounts})
        conn.execute(_queries()["console_rows"], {"count": rows, "accounts": accounts})
        conn.execute(_queries()["console_send_logs"], {"accounts": accounts})
        conn.execute(_queries()["console_events"], {})
        conn.execute(_queries()["console_suppressions"], {"count": max(rows // 100, 1)})
        conn.execute(_queries()["console_analyze"], {})
        AdminUsers(conn).create("bench@example.org", "bench password 1234")


def _log_in(client: Any) -> None:
    page = client.get("/admin/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]  # type: ignore[index]
    form = {"email": "bench@example.org", "password": "bench password 1234", "csrf_token": token}
    assert client.post("/admin/login", data=form).status_code == 303


def _time_page(client: Any, path: str) -> float:
    """Median milliseconds of ``REPS`` requests (after one warm-up)."""
    assert client.get(path).status_code == 200, path
    times = []
    for _ in range(REPS):
        t0 = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200, path
    return statistics.median(times)


def fig_console(
    server: Server, sink: Sink, *, console_accounts: int, console_rows: int, **_: Any
) -> dict[str, Any]:
    url = fresh_database(server)
    t0 = time.perf_counter()
    _populate(url, console_accounts, console_rows)
    populated = time.perf_counter() - t0
    settings = Settings(secret_key=SECRET_KEY, tracking_db_timeout_seconds=30.0)
    app = create_app({"DATABASE_URL": url, "SETTINGS": settings, "TESTING": True})
    try:
        client = app.test_client()
        _log_in(client)
        yesterday = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 86400))
        paths = [p.format(yesterday=yesterday, middle=console_rows // 2) for p in PAGES]
        ms = {path: _time_page(client, path) for path in paths}
    finally:
        close_app(app)
    size = f"{console_accounts:,} accounts, {console_rows:,} rows"
    table = [[f"console pages on {size} (populated in {populated:.0f} s)", "", "", "-"]]
    for path, value in ms.items():
        table.append([f"  GET {path}", f"{value:.0f} ms", f"< {GOAL_MS:.0f} ms", _ok(value)])
    return {"accounts": console_accounts, "rows": console_rows, "page_ms": ms, "table": table}


def _ok(value: float) -> str:
    return "ok" if value < GOAL_MS else "MISS"
