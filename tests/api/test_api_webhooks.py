"""``/webhooks``: endpoints managed over the API (admin scope), the secret shown once,
stored encrypted, bad input as problem documents."""

from __future__ import annotations

from tests.support.api_env import auth, make_key


def test_webhook_endpoints_over_the_api(client, sql):
    admin, sender = make_key(sql, "admin"), make_key(sql, "send")
    body = {"url": "https://hooks.example.org/mailer", "events": ["sent", "bounced"]}
    assert client.post("/api/v1/webhooks", json=body, headers=auth(sender)).status_code == 403
    created = client.post("/api/v1/webhooks", json=body, headers=auth(admin))
    assert created.status_code == 201
    endpoint = created.get_json()
    assert endpoint["secret"].startswith("whsec_")
    assert endpoint["events"] == ["sent", "bounced"] and endpoint["enabled"] is True
    stored = sql.execute("SELECT * FROM webhook_endpoints").fetchone()
    assert endpoint["secret"] not in str(stored)  # encrypted at rest
    listed = client.get("/api/v1/webhooks", headers=auth(admin))
    assert [e["url"] for e in listed.get_json()["data"]] == [body["url"]]
    assert "secret" not in listed.get_data(as_text=True)
    one = client.get(f"/api/v1/webhooks/{endpoint['id']}", headers=auth(admin))
    assert one.get_json()["id"] == endpoint["id"] and "secret" not in one.get_json()
    assert (
        client.delete(f"/api/v1/webhooks/{endpoint['id']}", headers=auth(admin)).status_code == 204
    )
    gone = client.get(f"/api/v1/webhooks/{endpoint['id']}", headers=auth(admin))
    assert gone.status_code == 404 and gone.mimetype == "application/problem+json"


def test_bad_webhook_input_is_a_validation_problem(client, sql):
    admin = make_key(sql, "admin")
    for body in (
        {"url": "ftp://hooks.example.org/", "events": ["sent"]},
        {"url": "https://hooks.example.org/", "events": ["teleported"]},
        {"url": "https://hooks.example.org/", "events": "sent", "extra": 1},
        ["not", "an", "object"],
    ):
        answer = client.post("/api/v1/webhooks", json=body, headers=auth(admin))
        assert answer.status_code == 422, body
        assert answer.mimetype == "application/problem+json" and answer.get_json()["errors"]
