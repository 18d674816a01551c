"""Console access: login required everywhere, argon2id passwords, cookie flags, session
rotation at login (no fixation), CSRF on every POST, login rate limits, logout."""

from __future__ import annotations

import psycopg
import pytest
from flask import Flask

from mailer.config import Settings
from tests.console.conftest import ADMIN, PASSWORD, log_in, token
from tests.support.tracking_env import account, tracking_app

PAGES = [
    "/admin/",
    "/admin/accounts",
    "/admin/accounts/1",
    "/admin/messages",
    "/admin/messages/1",
    "/admin/messages/1.eml",
    "/admin/suppressions",
    "/admin/suppressions/export.csv",
    "/admin/bounces",
    "/admin/campaigns",
    "/admin/audit",
]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_redirects_to_login_without_a_session(app: Flask, path: str):
    response = app.test_client().get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/admin/login?next=")


def test_json_without_session_is_401_and_posts_are_refused(app: Flask, sql: psycopg.Connection):
    acct = account(sql)
    client = app.test_client()
    assert client.get("/admin/overview.json").status_code == 401
    assert client.post(f"/admin/accounts/{acct}/pause", data={}).status_code == 403
    assert sql.execute("SELECT status FROM sender_accounts").fetchone()["status"] == "active"


def test_login_sets_a_strict_session_cookie_and_lands_on_next(app: Flask, admin_user: str):
    client = app.test_client()
    response = log_in(client, query_string={"next": "/admin/accounts"})
    assert response.status_code == 303
    assert response.headers["Location"] == "/admin/accounts"
    cookie = next(
        h for h in response.headers.getlist("Set-Cookie") if h.startswith("mailer_admin_session=")
    )
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/admin" in cookie
    assert "Secure" not in cookie  # MAILER_BASE_URL is http here
    assert client.get("/admin/accounts").status_code == 200


def test_cookie_is_secure_behind_https(db_url: str, settings: Settings, sql: psycopg.Connection):
    from mailer.admin_users import AdminUsers

    AdminUsers(sql).create(ADMIN, PASSWORD)
    with tracking_app(db_url, settings.with_overrides(base_url="https://mail.example")) as app:
        response = log_in(app.test_client())
    cookies = response.headers.getlist("Set-Cookie")
    assert any(c.startswith("mailer_admin_session=") and "Secure" in c for c in cookies)


def test_next_never_leaves_the_console(app: Flask, admin_user: str):
    for target in ("https://evil.example/", "//evil.example/admin", "/\\evil.example", "/api/v1"):
        response = log_in(app.test_client(), query_string={"next": target})
        assert response.headers["Location"] == "/admin/"


def test_wrong_password_and_unknown_user_are_refused_alike(app: Flask, admin_user: str):
    client = app.test_client()
    wrong = log_in(client, password="not the password at all")
    unknown = log_in(client, email="nobody@example.org")
    assert wrong.status_code == unknown.status_code == 401
    assert b"Wrong address or password." in wrong.data and b"Wrong address" in unknown.data
    assert client.get("/admin/").status_code == 302


def test_password_is_stored_as_argon2id(admin_user: str, sql: psycopg.Connection):
    stored = sql.execute("SELECT password_hash FROM admin_users").fetchone()["password_hash"]
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


def test_login_without_csrf_token_is_refused(app: Flask, admin_user: str):
    client = app.test_client()
    client.get("/admin/login")
    response = client.post("/admin/login", data={"email": ADMIN, "password": PASSWORD})
    assert response.status_code == 403
    assert client.get("/admin/").status_code == 302


def test_login_rotates_the_session_id(app: Flask, admin_user: str, sql: psycopg.Connection):
    """A session id planted before login (fixation) is never adopted, and logging in again
    ends the previous session."""
    client = app.test_client()
    client.set_cookie("mailer_admin_session", "planted-by-attacker", path="/admin")
    log_in(client)
    first = client.get_cookie("mailer_admin_session", path="/admin").value
    assert first != "planted-by-attacker"
    attacker = app.test_client()
    attacker.set_cookie("mailer_admin_session", "planted-by-attacker", path="/admin")
    assert attacker.get("/admin/").status_code == 302

    log_in(client)
    second = client.get_cookie("mailer_admin_session", path="/admin").value
    assert second != first
    stale = app.test_client()
    stale.set_cookie("mailer_admin_session", first, path="/admin")
    assert stale.get("/admin/").status_code == 302
    assert client.get("/admin/").status_code == 200
    assert sql.execute("SELECT count(*) AS n FROM admin_sessions").fetchone()["n"] == 1


def test_post_without_or_with_a_wrong_csrf_token_is_refused(client, sql: psycopg.Connection):
    acct = account(sql)
    for data in ({}, {"csrf_token": "forged"}):
        response = client.post(f"/admin/accounts/{acct}/pause", data=data)
        assert response.status_code == 403
    assert sql.execute("SELECT status FROM sender_accounts").fetchone()["status"] == "active"
    response = client.post(f"/admin/accounts/{acct}/pause", data={"csrf_token": token(client)})
    assert response.status_code == 303
    assert sql.execute("SELECT status FROM sender_accounts").fetchone()["status"] == "paused"


def test_failed_logins_are_rate_limited_per_address(app: Flask, admin_user: str):
    client = app.test_client()
    for _ in range(5):
        assert log_in(client, password="wrong password!!").status_code == 401
    refused = log_in(client)
    assert refused.status_code == 429
    assert b"Too many failed logins" in refused.data
    assert client.get("/admin/").status_code == 302


def test_failed_logins_are_rate_limited_per_ip(
    db_url: str, settings: Settings, sql: psycopg.Connection, admin_user: str
):
    limited = settings.with_overrides(admin_login_max_failures_per_ip=3)
    with tracking_app(db_url, limited) as app:
        client = app.test_client()
        for n in range(3):
            log_in(client, email=f"guess{n}@example.org")
        assert log_in(client).status_code == 429
        other_ip = log_in(app.test_client(), environ_base={"REMOTE_ADDR": "10.9.9.9"})
        assert other_ip.status_code == 303


def test_logout_ends_the_session(client, app: Flask):
    session = client.get_cookie("mailer_admin_session", path="/admin").value
    assert client.post("/admin/logout", data={"csrf_token": token(client)}).status_code == 303
    replay = app.test_client()
    replay.set_cookie("mailer_admin_session", session, path="/admin")
    assert replay.get("/admin/").status_code == 302


def test_pages_carry_security_headers(client):
    response = client.get("/admin/")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"


def test_create_user_cli(mailer, sql: psycopg.Connection):
    out = mailer(
        "admin", "create-user", "boss@example.org", "--password-stdin", input=PASSWORD + "\n"
    )
    assert "boss@example.org" in out
    short = mailer(
        "admin", "create-user", "b2@example.org", "--password-stdin", input="short\n", code=1
    )
    assert "at least 12 characters" in short and "Traceback" not in short
    again = mailer(
        "admin",
        "create-user",
        "BOSS@example.org",
        "--password-stdin",
        input=PASSWORD + "\n",
        code=1,
    )
    assert "exists" in again
    mailer(
        "admin",
        "create-user",
        "boss@example.org",
        "--reset-password",
        "--password-stdin",
        input="another long password\n",
    )
    bad = mailer(
        "admin", "create-user", "not-an-address", "--password-stdin", input=PASSWORD + "\n", code=1
    )
    assert "not an email address" in bad
    assert sql.execute("SELECT count(*) AS n FROM admin_users").fetchone()["n"] == 1


def test_gunicorn_serves_the_console_with_its_static_files(
    db_url: str, tmp_path, sql: psycopg.Connection, admin_user: str
):
    import httpx

    from tests.support.api_env import api_gunicorn

    with api_gunicorn(db_url, tmp_path, workers=1, MAILER_WEB_ROUTES="admin") as base:
        script = httpx.get(f"{base}/admin/static/console.js")
        assert script.status_code == 200 and "data-poll" in script.text
        assert httpx.get(f"{base}/admin/static/console.css").status_code == 200
        login = httpx.get(f"{base}/admin/login")
        assert login.status_code == 200 and 'name="csrf_token"' in login.text
        assert httpx.get(f"{base}/track/open/x").status_code == 404  # admin routes only
        assert httpx.get(f"{base}/api/v1/emails").status_code == 404


def test_a_database_outage_is_a_503_page(settings: Settings):
    from tests.support.tracking_env import closed_port_url

    quick = settings.with_overrides(tracking_db_timeout_seconds=0.5)
    with tracking_app(closed_port_url(), quick) as app:
        response = app.test_client().get("/admin/login")
    assert response.status_code == 503
    assert b"The database is unavailable." in response.data and b"Traceback" not in response.data


def test_create_user_reads_mailer_admin_password(db_url: str, tmp_path, sql: psycopg.Connection):
    from click.testing import CliRunner

    from mailer.cli import main

    env = {
        "DATABASE_URL": db_url,
        "MAILER_HOME": str(tmp_path / "home"),
        "MAILER_ADMIN_PASSWORD": PASSWORD,
    }
    result = CliRunner().invoke(main, ["admin", "create-user", "env@example.org"], env=env)
    assert result.exit_code == 0, result.output
    assert sql.execute("SELECT email FROM admin_users").fetchone()["email"] == "env@example.org"


def test_the_console_is_served_only_with_admin_routes(db_url: str, settings: Settings):
    with tracking_app(db_url, settings, WEB_ROUTES="tracking") as app:
        assert app.test_client().get("/admin/login").status_code == 404
    with tracking_app(db_url, settings, WEB_ROUTES="api") as app:
        assert app.test_client().get("/admin/login").status_code == 404
    with tracking_app(db_url, settings, WEB_ROUTES="admin") as app:
        assert app.test_client().get("/admin/login").status_code == 200
