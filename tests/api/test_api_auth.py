"""Keys and scopes: every API route needs a live key with a scope that covers it, and a
pool-restricted key sends only through its pools and sees only its own rows."""

from __future__ import annotations

import pytest

from mailer.api_keys import ApiKeyManager
from tests.support.api_env import auth, email, make_key

PROBLEM = "application/problem+json"


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer nope", "Basic abc", "Bearer mk_00000000_secret"],
)
def test_missing_or_unknown_key_is_401(client, header):
    headers = {"Authorization": header} if header else {}
    response = client.get("/api/v1/emails", headers=headers)
    assert response.status_code == 401
    assert response.mimetype == PROBLEM
    assert response.get_json()["type"] == "/api/v1/problems/unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_revoked_key_stops_working_at_once(client, sql):
    created = ApiKeyManager(sql).create("soon gone", "read")
    assert client.get("/api/v1/emails", headers=auth(created.secret)).status_code == 200
    ApiKeyManager(sql).revoke(created.key.prefix)
    assert client.get("/api/v1/emails", headers=auth(created.secret)).status_code == 401


def test_key_with_the_right_prefix_but_wrong_secret_is_401(client, sql):
    secret = make_key(sql, "admin")
    forged = secret[:-4] + ("aaaa" if not secret.endswith("aaaa") else "bbbb")
    assert client.get("/api/v1/emails", headers=auth(forged)).status_code == 401


def test_only_the_hash_is_stored_and_last_use_is_recorded(client, sql):
    secret = make_key(sql, "read")
    row = sql.execute("SELECT * FROM api_keys").fetchone()
    assert secret not in str(row.values())
    assert secret.startswith(row["prefix"] + "_") and row["last_used_at"] is None
    client.get("/api/v1/emails", headers=auth(secret))
    assert sql.execute("SELECT last_used_at FROM api_keys").fetchone()["last_used_at"]


@pytest.mark.parametrize(
    ("scope", "method", "path", "body", "allowed"),
    [
        ("read", "get", "/api/v1/emails", None, True),
        ("read", "post", "/api/v1/emails", email(), False),
        ("send", "post", "/api/v1/emails", email(), True),
        ("send", "post", "/api/v1/templates", {"name": "t", "subject": "s", "text": "x"}, False),
        ("admin", "post", "/api/v1/templates", {"name": "t", "subject": "s", "text": "x"}, True),
        ("send", "post", "/api/v1/suppressions", {"suppressions": [{"email": "a@b.org"}]}, False),
        ("read", "post", "/api/v1/accounts/1/pause", None, False),
    ],
)
def test_scopes_are_enforced(client, sql, scope, method, path, body, allowed):
    response = getattr(client, method)(path, json=body, headers=auth(make_key(sql, scope)))
    assert (response.status_code != 403) is allowed, response.get_json()
    if not allowed:
        assert response.get_json()["type"] == "/api/v1/problems/forbidden"


def test_every_api_route_declares_a_scope_or_is_public(app):
    from tracking.api.core import PUBLIC_ENDPOINTS

    endpoints = {r.endpoint for r in app.url_map.iter_rules() if r.rule.startswith("/api/")}
    assert len(endpoints) > 15
    for endpoint in endpoints - PUBLIC_ENDPOINTS:
        view = app.view_functions[endpoint]
        assert getattr(view, "api_scope", None) in ("read", "send", "admin"), endpoint


def test_pool_restricted_key_sends_only_through_its_pools(client, sql):
    other = sql.execute(
        "INSERT INTO sender_accounts (email, pool) VALUES ('b@shop.example', 'bulk') RETURNING id"
    ).fetchone()["id"]
    key = make_key(sql, "send", "transactional")
    ok = client.post("/api/v1/emails", json=email(), headers=auth(key))
    assert ok.status_code == 202
    pool = sql.execute("SELECT pool FROM email_queue WHERE id = %s", (ok.get_json()["id"],))
    assert pool.fetchone()["pool"] == "transactional"
    for body, pointer in ((email(pool="bulk"), "/pool"), (email(account=other), "/account")):
        refused = client.post("/api/v1/emails", json=body, headers=auth(key))
        assert refused.status_code == 422
        assert refused.get_json()["errors"][0]["pointer"] == pointer


def test_pool_restricted_key_sees_only_its_own_rows(client, sql):
    admin, restricted = make_key(sql, "admin"), make_key(sql, "send", "default")
    theirs = client.post("/api/v1/emails", json=email(), headers=auth(admin)).get_json()["id"]
    mine = client.post("/api/v1/emails", json=email(), headers=auth(restricted)).get_json()["id"]
    listed = client.get("/api/v1/emails", headers=auth(restricted)).get_json()["data"]
    assert [r["id"] for r in listed] == [mine]
    assert client.get(f"/api/v1/emails/{theirs}", headers=auth(restricted)).status_code == 404
    assert (
        client.post(f"/api/v1/emails/{theirs}/cancel", headers=auth(restricted)).status_code == 404
    )
    assert client.get(f"/api/v1/emails/{theirs}", headers=auth(admin)).status_code == 200
    assert (
        sql.execute(
            "SELECT count(*) AS n FROM email_queue WHERE api_key_id IS NOT NULL"
        ).fetchone()["n"]
        == 2
    )


def test_rows_inserted_by_sql_keep_working(sql):
    row = sql.execute(
        "INSERT INTO email_queue (to_address, subject, html_body) VALUES ('a@b.org', 's', 'h') "
        "RETURNING api_key_id, status"
    ).fetchone()
    assert row == {"api_key_id": None, "status": "queued"}
