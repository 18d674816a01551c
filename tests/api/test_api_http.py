"""The API over real HTTP under gunicorn with two worker processes (as in production):
authentication, an Idempotency-Key race across processes, and the shared rate limit."""

from __future__ import annotations

import threading
import time

import httpx
import psycopg
import pytest

from tests.support.api_env import api_gunicorn, auth, email, make_key

pytestmark = pytest.mark.slow


def test_auth_and_api_only_routes(db_url, sql, tmp_path):
    key = make_key(sql, "send")
    with api_gunicorn(db_url, tmp_path) as base:
        assert httpx.get(f"{base}/api/v1/emails").status_code == 401
        sent = httpx.post(f"{base}/api/v1/emails", json=email(), headers=auth(key))
        assert sent.status_code == 202
        assert httpx.get(f"{base}/api/v1/emails", headers=auth(key)).status_code == 200
        # MAILER_WEB_ROUTES=api: the public tracking routes are not served by this process
        assert httpx.get(f"{base}/unsubscribe/abc").status_code == 404


def test_idempotency_race_across_two_processes(db_url, sql, tmp_path):
    """The first request holds its key while its INSERT waits on a lock this test holds;
    the same key sent meanwhile (to either process) is 409; afterwards it replays."""
    key = make_key(sql, "send")
    headers = auth(key, **{"Idempotency-Key": "race-1"})
    with api_gunicorn(db_url, tmp_path, MAILER_TRACKING_DB_TIMEOUT_SECONDS="20") as base:
        first: dict[str, httpx.Response] = {}
        with psycopg.connect(db_url) as blocker:
            blocker.execute("LOCK TABLE email_queue IN EXCLUSIVE MODE")
            thread = threading.Thread(
                target=lambda: first.update(
                    r=httpx.post(f"{base}/api/v1/emails", json=email(), headers=headers, timeout=30)
                )
            )
            thread.start()
            _wait_for_claim(sql)
            racing = [
                httpx.post(f"{base}/api/v1/emails", json=email(), headers=headers, timeout=30)
                for _ in range(4)
            ]
            blocker.rollback()
        thread.join(30)
        assert first["r"].status_code == 202
        assert {r.status_code for r in racing} == {409}
        assert racing[0].json()["type"] == "/api/v1/problems/idempotency-key-in-use"
        again = httpx.post(f"{base}/api/v1/emails", json=email(), headers=headers)
        assert again.status_code == 202 and again.json() == first["r"].json()
    assert sql.execute("SELECT count(*) AS n FROM email_queue").fetchone()["n"] == 1


def _wait_for_claim(sql):
    deadline = time.monotonic() + 10
    while not sql.execute("SELECT 1 FROM api_idempotency").fetchone():
        assert time.monotonic() < deadline, "the first request never claimed its key"
        time.sleep(0.02)


def test_rate_limit_is_shared_by_all_processes(db_url, sql, tmp_path):
    key, other = make_key(sql, "read"), make_key(sql, "read")
    with api_gunicorn(db_url, tmp_path, workers=3, MAILER_API_RATE_LIMIT_PER_MINUTE="10") as base:
        _avoid_window_boundary(sql)
        with httpx.Client() as http:
            codes = [
                http.get(f"{base}/api/v1/emails", headers=auth(key)).status_code for _ in range(15)
            ]
            limited = http.get(f"{base}/api/v1/emails", headers=auth(key))
            fresh = http.get(f"{base}/api/v1/emails", headers=auth(other))
    assert codes == [200] * 10 + [429] * 5
    assert limited.headers["content-type"] == "application/problem+json"
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.headers["RateLimit-Remaining"] == "0"
    assert limited.headers["RateLimit-Limit"] == "10"
    assert fresh.status_code == 200 and fresh.headers["RateLimit-Remaining"] == "9"


def _avoid_window_boundary(sql):
    """Start the requests well inside one one-minute window (the database's clock)."""
    left = sql.execute("SELECT 60 - extract(epoch FROM now())::numeric % 60 AS s").fetchone()
    if left["s"] < 8:
        time.sleep(float(left["s"]) + 0.2)
