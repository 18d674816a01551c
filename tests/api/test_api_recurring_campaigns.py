"""Recurring campaigns and the ``recurrence`` shorthands over HTTP: ``POST /recurring``
with kind campaign, ``POST /campaigns`` and ``POST /emails`` with ``recurrence`` (a
schedule instead of a send: nothing queued now), bad input as problem documents, the
client against a live server and ``mailer recurring add --campaign-file``."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import jsonschema
import pytest

from mailer.client import ApiError
from tests.support.api_env import auth, email, live_client, make_key
from tracking.api.openapi import document

EVERY_MONDAY = {"cron": "0 9 * * 1", "timezone": "Europe/Paris"}


def campaign(**fields):
    body = {
        "name": "news",
        "subject": "News for {{ first }}",
        "text": "Hello {{ first }}",
        "variables": {"first": "you"},
        "recipients": [
            "ann@example.org",
            {"email": "bob@example.org", "variables": {"first": "B"}},
        ],
    }
    return body | fields


def valid(response, schema):
    """The body, checked against the OpenAPI document's ``schema``."""
    spec = document()
    jsonschema.validate(response.get_json(), {"$ref": f"#/components/schemas/{schema}"} | spec)
    return response.get_json()


def queued(sql) -> int:
    return sql.execute("SELECT count(*) AS n FROM email_queue").fetchone()["n"]


def test_recurring_with_kind_campaign_stores_the_checked_campaign(client, sql):
    key = make_key(sql, "send")
    body = {"name": "monday news", "kind": "campaign", "campaign": campaign()} | EVERY_MONDAY
    created = client.post("/api/v1/recurring", json=body, headers=auth(key))
    assert created.status_code == 201, created.get_json()
    out = valid(created, "Recurring")
    assert (out["kind"], out["name"]) == ("campaign", "monday news")
    local = datetime.fromisoformat(out["next_run_at"]).astimezone(ZoneInfo("Europe/Paris"))
    assert (local.weekday(), local.hour, local.minute) == (0, 9, 0)
    payload = out["payload"]
    assert payload["name"] == "news" and payload["message"]["subject"] == "News for {{ first }}"
    assert payload["recipients"] == [
        {"to_address": "ann@example.org", "variables": {"first": "you"}},
        {"to_address": "bob@example.org", "variables": {"first": "B"}},
    ]
    assert queued(sql) == 0
    assert sql.execute("SELECT count(*) AS n FROM campaign_settings").fetchone()["n"] == 0


def test_campaigns_with_recurrence_creates_the_schedule_instead(client, sql):
    key = make_key(sql, "send", "bulk")
    body = campaign(recurrence=EVERY_MONDAY | {"enabled": False}, track_clicks=False)
    created = client.post("/api/v1/campaigns", json=body, headers=auth(key))
    assert created.status_code == 201, created.get_json()
    out = valid(created, "Recurring")
    assert (out["name"], out["kind"], out["enabled"]) == ("news", "campaign", False)
    assert out["payload"]["track_clicks"] is False and out["payload"]["message"]["pool"] == "bulk"
    assert queued(sql) == 0
    listed = client.get("/api/v1/recurring", headers=auth(key)).get_json()["data"]
    assert [s["name"] for s in listed] == ["news"]


def test_emails_with_recurrence_creates_a_recurring_email(client, sql):
    key = make_key(sql, "send")
    body = email(recurrence={"name": "daily report"} | EVERY_MONDAY)
    created = client.post("/api/v1/emails", json=body, headers=auth(key))
    assert created.status_code == 201, created.get_json()
    out = valid(created, "Recurring")
    assert (out["name"], out["kind"], out["cron"]) == ("daily report", "email", "0 9 * * 1")
    assert out["payload"]["to_address"] == "alice@example.org"
    unnamed = client.post("/api/v1/emails", json=email(recurrence=EVERY_MONDAY), headers=auth(key))
    assert unnamed.status_code == 201 and unnamed.get_json()["name"].startswith("email-")
    assert queued(sql) == 0


@pytest.mark.parametrize(
    ("path", "body", "pointer", "words"),
    [
        ("/recurring", {"kind": "campaign"}, "/campaign", "JSON object"),
        ("/recurring", {"kind": "campaign", "campaign": campaign(), "email": email()}, "/email",
         "not allowed"),
        ("/recurring", {"kind": "campaign", "campaign": campaign(recipients=[])},
         "/campaign/recipients", "at least one"),
        ("/recurring", {"kind": "campaign", "campaign": campaign(recipients=["nope"])},
         "/campaign/recipients/0/email", ""),
        ("/recurring", {"kind": "campaign", "campaign": campaign(name="x" * 178)},
         "/campaign/name", "1 to 177"),
        ("/recurring", {"kind": "campaign",
                        "campaign": campaign(scheduled_at="2030-01-01T00:00:00Z")},
         "/campaign/scheduled_at", "cron"),
        ("/campaigns", campaign(recurrence={"cron": "every day", "timezone": "UTC"}),
         "/recurrence/cron", "five fields"),
        ("/campaigns", campaign(recurrence=EVERY_MONDAY, recipients=["a@example.org", 7]),
         "/recipients/1", ""),
        ("/campaigns", campaign(recurrence=EVERY_MONDAY | {"kind": "email"}),
         "/recurrence/kind", "not a known field"),
        ("/campaigns", campaign(recurrence="weekly"), "/recurrence", "cron and timezone"),
        ("/emails", email(recurrence={"cron": "@daily", "timezone": "Mars/Olympus"}),
         "/recurrence/timezone", "unknown time zone"),
        ("/emails", email(recurrence=EVERY_MONDAY, scheduled_at="2030-01-01T00:00:00Z"),
         "/scheduled_at", "cron"),
        ("/emails", email(recurrence=EVERY_MONDAY, template="missing"), "/template",
         "no template"),
    ],
)  # fmt: skip
def test_bad_recurring_campaigns_and_shorthands_are_422(client, sql, path, body, pointer, words):
    if path == "/recurring":
        body = {"name": "n"} | EVERY_MONDAY | body
    answer = client.post(f"/api/v1{path}", json=body, headers=auth(make_key(sql, "send")))
    assert answer.status_code == 422 and answer.mimetype == "application/problem+json"
    errors = answer.get_json()["errors"]
    assert any(e["pointer"] == pointer and words in e["detail"] for e in errors), errors
    assert queued(sql) == 0


def test_a_taken_schedule_name_is_a_conflict_and_scopes_hold(client, sql):
    sender, reader = make_key(sql, "send"), make_key(sql, "read")
    body = campaign(recurrence=EVERY_MONDAY)
    assert client.post("/api/v1/campaigns", json=body, headers=auth(reader)).status_code == 403
    assert client.post("/api/v1/campaigns", json=body, headers=auth(sender)).status_code == 201
    again = client.post("/api/v1/campaigns", json=body, headers=auth(sender))
    assert again.status_code == 409 and again.mimetype == "application/problem+json"


def test_the_client_creates_a_recurring_campaign_on_a_live_server(db_url, settings, sql):
    key = make_key(sql, "send")
    with live_client(db_url, settings, key) as mailer:
        created = mailer.create_recurring_campaign("weekly", "@weekly", "UTC", campaign())
        assert (created["kind"], created["payload"]["name"]) == ("campaign", "news")
        assert mailer.get_recurring("weekly")["runs"] == []
        with pytest.raises(ApiError) as bad:
            mailer.create_recurring_campaign("w2", "@weekly", "UTC", campaign(recipients=[]))
        assert bad.value.status == 422
        assert bad.value.problem["errors"][0]["pointer"] == "/campaign/recipients"


def test_the_cli_adds_a_recurring_campaign_from_a_file(mailer, sql, tmp_path):
    path = tmp_path / "campaign.json"
    path.write_text(json.dumps(campaign()))
    out = mailer("recurring", "add", "weekly", "--cron", "@weekly", "--campaign-file", str(path))
    assert out.startswith("recurring send 1 added: weekly (@weekly in UTC, next ")
    row = sql.execute("SELECT kind, payload FROM recurring_sends").fetchone()
    assert row["kind"] == "campaign" and len(row["payload"]["recipients"]) == 2
    both = ["recurring", "add", "x", "--cron", "@daily", "--campaign-file", str(path)]
    lines = mailer(*both, "--to", "a@example.org", code=1).strip().splitlines()
    assert lines == ["Error: --campaign-file replaces --to"]
    path.write_text("{")
    bad = mailer(*both, code=1).strip()
    assert bad.startswith("Error: --campaign-file is not JSON")
    neither = mailer("recurring", "add", "y", "--cron", "@daily", code=1).strip()
    assert neither == "Error: --to (one email) or --campaign-file (a campaign) is required"
