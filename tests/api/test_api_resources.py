"""Templates, suppressions (with streamed CSV) and accounts through the API."""

from __future__ import annotations

import pytest

from mailer.suppression_store import SuppressionStore
from tests.support.api_env import auth, make_key


@pytest.fixture
def admin(sql):
    return make_key(sql, "admin")


def test_template_crud_and_in_use_refusal(client, admin):
    body = {"name": "welcome", "subject": "Hi {{ name }}", "html": "<p>{{ name }}</p>"}
    created = client.post("/api/v1/templates", json=body, headers=auth(admin))
    assert created.status_code == 201
    assert client.post("/api/v1/templates", json=body, headers=auth(admin)).status_code == 409
    got = client.get("/api/v1/templates/welcome", headers=auth(admin)).get_json()
    assert got["id"] == created.get_json()["id"] and got["html"] == "<p>{{ name }}</p>"
    patched = client.patch(
        "/api/v1/templates/welcome", json={"text": "{{ name }}"}, headers=auth(admin)
    )
    assert patched.get_json()["text"] == "{{ name }}"
    queued = client.post(
        "/api/v1/emails",
        json={"to": "a@b.org", "template": "welcome", "variables": {"name": "A"}},
        headers=auth(admin),
    )
    assert queued.status_code == 202
    refused = client.delete("/api/v1/templates/welcome", headers=auth(admin))
    assert refused.status_code == 409 and "queued" in refused.get_json()["detail"]
    listed = client.get("/api/v1/templates", headers=auth(admin)).get_json()["data"]
    assert [t["name"] for t in listed] == ["welcome"]
    assert client.get("/api/v1/templates/nope", headers=auth(admin)).status_code == 404


def test_template_deleted_when_unused_and_broken_syntax_refused(client, admin):
    broken = {"name": "b", "subject": "s", "html": "{% if %}"}
    response = client.post("/api/v1/templates", json=broken, headers=auth(admin))
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["pointer"] == "/html"
    client.post(
        "/api/v1/templates", json={"name": "t", "subject": "s", "text": "x"}, headers=auth(admin)
    )
    assert client.delete("/api/v1/templates/t", headers=auth(admin)).status_code == 204
    assert client.delete("/api/v1/templates/t", headers=auth(admin)).status_code == 404
    nobody = client.patch(
        "/api/v1/templates/x", json={"html": None, "text": None}, headers=auth(admin)
    )
    assert nobody.status_code == 404


def test_suppressions_add_search_remove(client, admin):
    body = {
        "suppressions": [
            {"email": "Spam@Example.org", "reason": "complaint"},
            {"email": "other@example.org"},
        ]
    }
    assert client.post("/api/v1/suppressions", json=body, headers=auth(admin)).status_code == 201
    found = client.get("/api/v1/suppressions?search=spam", headers=auth(admin)).get_json()
    assert [s["email"] for s in found["data"]] == ["Spam@Example.org"]
    one = client.get("/api/v1/suppressions/spam@example.org", headers=auth(admin))
    assert one.get_json()["reason"] == "complaint"
    gone = client.delete("/api/v1/suppressions/spam@example.org", headers=auth(admin))
    assert gone.status_code == 204
    assert (
        client.get("/api/v1/suppressions/spam@example.org", headers=auth(admin)).status_code == 404
    )
    bad = client.post(
        "/api/v1/suppressions", json={"suppressions": [{"email": "nope"}]}, headers=auth(admin)
    )
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["pointer"] == "/suppressions/0"


def test_suppressions_csv_import_and_export_stream(client, admin, sql):
    lines = ["email,reason"] + [f"user{i}@example.org,hard_bounce" for i in range(2500)]
    lines.append("not-an-address,manual")
    imported = client.post(
        "/api/v1/suppressions/import",
        data="\n".join(lines) + "\n",
        headers=auth(admin, **{"Content-Type": "text/csv"}),
    )
    report = imported.get_json()
    assert (report["added"], report["invalid"]) == (2500, 1)
    assert "line 2502" in report["errors"][0]
    export = client.get("/api/v1/suppressions/export", headers=auth(admin))
    assert export.is_streamed and export.mimetype == "text/csv"
    rows = export.get_data(as_text=True).strip().split("\n")
    assert rows[0] == "email,reason,source,created_at,expires_at" and len(rows) == 2501


def test_import_reads_the_body_as_a_stream(sql):
    consumed = []

    def lines():
        for i in range(2001):
            consumed.append(i)
            yield f"u{i}@example.org\n"

    report = SuppressionStore(sql).import_csv(lines(), reason="manual", source="t")
    assert report.changed == 2001 and len(consumed) == 2001


def test_accounts_read_without_secrets_and_admin_changes(client, sql, admin):
    account = sql.execute(
        "INSERT INTO sender_accounts (email, smtp_password_encrypted) "
        "VALUES ('s@shop.example', 'SECRET') RETURNING id"
    ).fetchone()["id"]
    reader = make_key(sql, "read")
    listed = client.get("/api/v1/accounts", headers=auth(reader))
    assert "SECRET" not in listed.get_data(as_text=True)
    assert "smtp_password_encrypted" not in listed.get_json()["data"][0]
    assert client.post(f"/api/v1/accounts/{account}/pause", headers=auth(reader)).status_code == 403
    paused = client.post(f"/api/v1/accounts/{account}/pause", headers=auth(admin))
    assert paused.get_json()["status"] == "paused"
    assert client.post(f"/api/v1/accounts/{account}/pause", headers=auth(admin)).status_code == 409
    resumed = client.post(f"/api/v1/accounts/{account}/resume", headers=auth(admin))
    assert resumed.get_json()["status"] == "active"
    limits = client.patch(
        f"/api/v1/accounts/{account}/limits",
        json={"daily_limit": 50, "hourly_limit": None},
        headers=auth(admin),
    )
    assert limits.get_json()["daily_limit"] == 50 and limits.get_json()["hourly_limit"] is None
    bad = client.patch(
        f"/api/v1/accounts/{account}/limits", json={"daily_limit": -1}, headers=auth(admin)
    )
    assert bad.status_code == 422
    assert client.get("/api/v1/accounts/999", headers=auth(reader)).status_code == 404


@pytest.mark.parametrize(
    "document",
    ["a@b.org,manual,x\x00y\n", 'a@b.org,manual,"' + "s" * 200_000 + '"\n', "\x00\x00\n"],
)
def test_import_of_bad_csv_is_reported_not_500(client, admin, document):
    response = client.post(
        "/api/v1/suppressions/import",
        data=document.encode(),
        headers=auth(admin, **{"Content-Type": "text/csv"}),
    )
    assert response.status_code == 200
    assert response.get_json()["added"] == 0 and response.get_json()["invalid"] >= 1
