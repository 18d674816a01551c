"""``/recurring`` over HTTP (Flask's client), the typed client against a live server, and
``mailer recurring``: definitions checked like ``POST /emails``, clear errors, scopes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from mailer.client import ApiError
from tests.support.api_env import auth, email, live_client, make_key


def recurring(**fields):
    return (
        {"name": "digest", "cron": "0 9 * * 1-5", "timezone": "Europe/Paris"}
        | {"email": email(campaign="digest")}
        | fields
    )


def test_create_read_pause_resume_delete(client, sql):
    key = make_key(sql, "send")
    created = client.post("/api/v1/recurring", json=recurring(), headers=auth(key))
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert (body["name"], body["cron"], body["timezone"], body["enabled"]) == (
        "digest",
        "0 9 * * 1-5",
        "Europe/Paris",
        True,
    )
    next_run = datetime.fromisoformat(body["next_run_at"])
    local = next_run.astimezone(ZoneInfo("Europe/Paris"))
    assert (local.hour, local.minute) == (9, 0) and local.weekday() < 5
    assert next_run - datetime.now(UTC) < timedelta(days=4)
    assert body["payload"]["to_address"] == "alice@example.org"
    assert sql.execute("SELECT count(*) AS n FROM email_queue").fetchone()["n"] == 0

    for ref in (body["id"], "digest"):
        got = client.get(f"/api/v1/recurring/{ref}", headers=auth(key)).get_json()
        assert got["id"] == body["id"] and got["runs"] == []
    listed = client.get("/api/v1/recurring", headers=auth(key)).get_json()
    assert [s["name"] for s in listed["data"]] == ["digest"] and listed["next_cursor"] is None

    paused = client.post("/api/v1/recurring/digest/pause", headers=auth(key))
    assert paused.status_code == 200 and paused.get_json()["enabled"] is False
    resumed = client.post("/api/v1/recurring/digest/resume", headers=auth(key))
    assert resumed.get_json()["enabled"] is True

    assert client.delete("/api/v1/recurring/digest", headers=auth(key)).status_code == 204
    gone = client.get("/api/v1/recurring/digest", headers=auth(key))
    assert gone.status_code == 404 and gone.mimetype == "application/problem+json"
    assert client.delete("/api/v1/recurring/digest", headers=auth(key)).status_code == 404


@pytest.mark.parametrize(
    ("fields", "pointer", "words"),
    [
        ({"cron": "61 * * * *"}, "/cron", "invalid cron expression"),
        ({"cron": "0 0 * * * *"}, "/cron", "five fields"),
        ({"cron": "0 0 30 2 *"}, "/cron", "never occurs"),
        ({"timezone": "Europe/Atlantis"}, "/timezone", "unknown time zone"),
        ({"name": "123"}, "/name", "not all digits"),
        ({"name": "a\r\nBcc: x"}, "/name", "CR/LF"),
        ({"kind": "sms"}, "/kind", "must be one of"),
        ({"kind": "campaign"}, "/email", "not allowed with kind 'campaign'"),
        ({"email": email(scheduled_at="2030-01-01T00:00:00Z")}, "/email/scheduled_at", "cron"),
        ({"email": {"to": "not an address", "subject": "s", "text": "t"}}, "/email/to", ""),
        ({"email": email(template="missing")}, "/email/template", "no template"),
        ({"every": "day"}, "/every", "not a known field"),
    ],
)
def test_bad_definitions_are_422_with_the_field(client, sql, fields, pointer, words):
    answer = client.post("/api/v1/recurring", json=recurring(**fields), headers=auth(make_key(sql)))
    assert answer.status_code == 422 and answer.mimetype == "application/problem+json"
    errors = answer.get_json()["errors"]
    assert any(e["pointer"] == pointer and words in e["detail"] for e in errors), errors


def test_a_taken_name_is_a_conflict_and_scopes_are_enforced(client, sql):
    sender, reader = make_key(sql, "send"), make_key(sql, "read")
    assert (
        client.post("/api/v1/recurring", json=recurring(), headers=auth(reader)).status_code == 403
    )
    assert (
        client.post("/api/v1/recurring", json=recurring(), headers=auth(sender)).status_code == 201
    )
    again = client.post("/api/v1/recurring", json=recurring(), headers=auth(sender))
    assert again.status_code == 409 and "digest" in again.get_json()["detail"]
    assert client.get("/api/v1/recurring/digest", headers=auth(reader)).status_code == 200
    assert client.post("/api/v1/recurring/digest/pause", headers=auth(reader)).status_code == 403


def test_a_pool_restricted_key_sees_only_its_own_schedules(client, sql):
    admin, restricted = make_key(sql, "admin"), make_key(sql, "send", "tx")
    client.post("/api/v1/recurring", json=recurring(name="theirs"), headers=auth(admin))
    mine = client.post("/api/v1/recurring", json=recurring(name="mine"), headers=auth(restricted))
    assert mine.status_code == 201 and mine.get_json()["payload"]["pool"] == "tx"
    listed = client.get("/api/v1/recurring", headers=auth(restricted)).get_json()["data"]
    assert [s["name"] for s in listed] == ["mine"]
    assert client.get("/api/v1/recurring/theirs", headers=auth(restricted)).status_code == 404
    assert client.delete("/api/v1/recurring/theirs", headers=auth(restricted)).status_code == 404
    other_pool = recurring(name="x", email=email(pool="bulk"))
    refused = client.post("/api/v1/recurring", json=other_pool, headers=auth(restricted))
    assert (
        refused.status_code == 422 and refused.get_json()["errors"][0]["pointer"] == "/email/pool"
    )


def test_the_client_manages_schedules_on_a_live_server(db_url, settings, sql):
    key = make_key(sql, "send")
    with live_client(db_url, settings, key) as mailer:
        created = mailer.create_recurring("daily", "@daily", "Asia/Tokyo", email(), enabled=False)
        assert created["enabled"] is False and created["cron"] == "@daily"
        assert mailer.resume_recurring("daily")["enabled"] is True
        assert mailer.pause_recurring(created["id"])["enabled"] is False
        assert [s["name"] for s in mailer.list_recurring()] == ["daily"]
        assert mailer.get_recurring("daily")["runs"] == []
        with pytest.raises(ApiError) as bad:
            mailer.create_recurring("x", "every day", "UTC", email())
        assert bad.value.status == 422 and bad.value.problem["errors"][0]["pointer"] == "/cron"
        mailer.delete_recurring("daily")
        assert list(mailer.list_recurring()) == []


def test_the_cli_adds_lists_pauses_resumes_and_removes(mailer, sql):
    out = mailer(
        "recurring", "add", "report", "--cron", "30 7 * * *", "--timezone", "America/New_York",
        "--to", "boss@example.org", "--to-name", "Boss", "--subject", "Report",
        "--text", "Numbers",
    )  # fmt: skip
    assert out.startswith("recurring send 1 added: report (30 7 * * * in America/New_York, next ")
    row = sql.execute("SELECT * FROM recurring_sends").fetchone()
    assert row["payload"]["to_name"] == "Boss" and row["api_key_id"] is None
    assert "report" in mailer("recurring", "list")
    assert json.loads(mailer("recurring", "list", "--json"))[0]["cron"] == "30 7 * * *"
    assert "paused" in mailer("recurring", "pause", "report")
    assert "next" in mailer("recurring", "resume", "1")
    mailer("recurring", "remove", "report")
    assert sql.execute("SELECT count(*) AS n FROM recurring_sends").fetchone()["n"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cron", "every day"], "five fields"),
        (["--cron", "@daily", "--timezone", "Moon/Base"], "unknown time zone"),
        (["--cron", "@daily", "--variables", "{"], "--variables is not JSON"),
    ],
)
def test_cli_errors_are_one_clear_line(mailer, args, message):
    argv = ["recurring", "add", "n", "--to", "a@example.org", "--subject", "s", "--text", "t"]
    lines = mailer(*argv, *args, code=1).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0]
    assert mailer("recurring", "pause", "nope", code=1).strip() == "Error: no recurring send 'nope'"
