"""``/campaigns``: creating one with inline recipients in one statement, CSV uploads
streamed into the queue, the summary's figures, pause/resume/cancel on the rows, and
bad input refused as problem documents."""

from __future__ import annotations

import io

import jsonschema
import pytest

from tests.support.api_env import auth, make_key
from tests.support.tracking_env import tracking_app
from tracking.api.openapi import document

CSV = {"Content-Type": "text/csv"}


@pytest.fixture
def key(sql):
    return make_key(sql, "send")


def _campaign(client, key, name="spring", **fields):
    body = {"name": name, "subject": "Hi {{ first }}", "html": "<p>{{ first }}</p>"} | fields
    response = client.post("/api/v1/campaigns", json=body, headers=auth(key))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _rows(sql, campaign="spring"):
    return sql.execute(
        "SELECT * FROM email_queue WHERE campaign = %s ORDER BY id", (campaign,)
    ).fetchall()


def test_create_queues_inline_recipients_with_merged_variables(client, sql, key):
    template = sql.execute(
        "INSERT INTO templates (name, subject, text_body) VALUES ('news', 'N {{ a }}', 'x') "
        "RETURNING id"
    ).fetchone()["id"]
    out = _campaign(
        client,
        key,
        subject=None,
        html=None,
        template="news",
        variables={"a": "shared", "b": "shared"},
        recipients=[
            "ann@example.org",
            {"email": "bob@example.org", "name": "Bob", "variables": {"b": "bob"}},
            {"to": "cy@example.org"},
        ],
        priority=3,
        metadata={"batch": 7},
        track_clicks=False,
    )
    assert out["queued"] == 3 and out["campaign"]["state"] == "active"
    assert [r["index"] for r in out["results"]] == [0, 1, 2]
    rows = _rows(sql)
    assert [r["to_address"] for r in rows] == [
        "ann@example.org",
        "bob@example.org",
        "cy@example.org",
    ]
    assert rows[1]["to_name"] == "Bob" and rows[1]["variables"] == {"a": "shared", "b": "bob"}
    assert rows[0]["variables"] == {"a": "shared", "b": "shared"}
    assert {(r["template_id"], r["priority"], r["metadata"]["batch"]) for r in rows} == {
        (template, 3, 7)
    }
    settings = sql.execute("SELECT * FROM campaign_settings").fetchone()
    assert (settings["campaign"], settings["track_clicks"]) == ("spring", False)


def test_templates_that_would_fail_rows_are_refused_when_the_campaign_is_made(client, sql, key):
    for broken in (
        {"name": "b", "subject": "{{ x ", "text": "t", "variables": {}},
        {"name": "b", "subject": "{{ x ", "text": "t"},  # recipients to come as CSV
    ):
        refused = client.post("/api/v1/campaigns", json=broken, headers=auth(key))
        assert refused.status_code == 422
        [error] = refused.get_json()["errors"]
        assert error["pointer"] == "/subject" and "template error in subject" in error["detail"]
    body = {
        "name": "v",
        "subject": "Hi {{ first }}",
        "text": "t",
        "recipients": [
            {"email": "ann@example.org", "variables": {"first": "Ann"}},
            {"email": "bob@example.org", "variables": {"last": "B"}},
        ],
    }
    strict = client.post("/api/v1/campaigns", json=body, headers=auth(key))
    assert strict.status_code == 422
    [error] = strict.get_json()["errors"]
    assert (
        error["pointer"] == "/recipients/1/variables" and "'first' is undefined" in error["detail"]
    )
    assert _rows(sql, "b") == _rows(sql, "v") == []
    permissive = client.post(
        "/api/v1/campaigns", json=body | {"mode": "permissive"}, headers=auth(key)
    )
    assert permissive.status_code == 201 and permissive.get_json()["queued"] == 1
    assert [r["to_address"] for r in _rows(sql, "v")] == ["ann@example.org"]
    # a recipient given as a bare address gets the template too, not its braces
    bare = body | {"name": "w", "recipients": ["cy@example.org", body["recipients"][0]]}
    refused = client.post("/api/v1/campaigns", json=bare, headers=auth(key))
    assert refused.status_code == 422
    assert [e["pointer"] for e in refused.get_json()["errors"]] == ["/recipients/0/variables"]


def test_create_is_strict_by_default_and_the_name_is_unique(client, sql, key):
    body = {"name": "x", "subject": "s", "text": "t", "recipients": ["ok@example.org", "bad"]}
    refused = client.post("/api/v1/campaigns", json=body, headers=auth(key))
    assert refused.status_code == 422 and refused.mimetype == "application/problem+json"
    assert refused.get_json()["errors"][0]["pointer"] == "/recipients/1/email"
    assert _rows(sql, "x") == [] and sql.execute("SELECT * FROM campaign_settings").fetchall() == []
    permissive = client.post(
        "/api/v1/campaigns", json=body | {"mode": "permissive"}, headers=auth(key)
    )
    assert permissive.status_code == 201 and permissive.get_json()["queued"] == 1
    assert "error" in permissive.get_json()["results"][1]
    again = client.post("/api/v1/campaigns", json=body | {"recipients": []}, headers=auth(key))
    assert again.status_code == 409 and len(_rows(sql, "x")) == 1


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"subject": "s", "text": "t"}, "/name"),
        ({"name": "a/b", "subject": "s", "text": "t"}, "/name"),
        ({"name": "n", "text": "t"}, "/subject"),
        ({"name": "n", "subject": "s", "text": "t", "transactional": True}, "/transactional"),
        ({"name": "n", "subject": "s", "text": "t", "recipients": "a@b.org"}, "/recipients"),
        ({"name": "n", "template": "missing"}, "/template"),
        (
            {
                "name": "n",
                "subject": "s",
                "text": "t",
                "recipients": [{"email": "a@b.org", "x": 1}],
            },
            "/recipients/0/x",
        ),
    ],
)
def test_create_refuses_bad_fields(client, key, body, pointer):
    response = client.post("/api/v1/campaigns", json=body, headers=auth(key))
    assert response.status_code == 422
    assert pointer in [e["pointer"] for e in response.get_json()["errors"]]


def test_create_replays_with_an_idempotency_key(client, sql, key):
    body = {"name": "idem", "subject": "s", "text": "t", "recipients": ["a@example.org"]}
    headers = auth(key, **{"Idempotency-Key": "k1"})
    first = client.post("/api/v1/campaigns", json=body, headers=headers)
    second = client.post("/api/v1/campaigns", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.get_json() == first.get_json() and len(_rows(sql, "idem")) == 1
    other = client.post("/api/v1/campaigns", json=body | {"name": "x"}, headers=headers)
    assert other.status_code == 409


def test_csv_upload_streams_every_row_and_reports_bad_lines(client, sql, key):
    _campaign(client, key, recipients=["user5@example.org"])
    sql.execute("INSERT INTO suppressions (email, reason) VALUES ('USER7@example.org', 'manual')")
    lines = ["email,name,first,city"]
    lines += [f"user{i}@example.org,User {i},F{i},C{i % 3}" for i in range(20_000)]
    lines[101] = "not-an-address,X,F,C"  # line 102
    lines[202] = "only,three,fields"  # line 203
    lines.append("user9@EXAMPLE.org,again,F,C")  # a duplicate in the file
    body = ("\n".join(lines) + "\n").encode()
    response = client.post(
        "/api/v1/campaigns/spring/recipients",
        input_stream=io.BytesIO(body),
        content_length=len(body),
        headers=auth(key, **CSV),
    )
    assert response.status_code == 202, response.get_json()
    report = response.get_json()
    assert (report["lines"], report["invalid"], report["suppressed"]) == (20_001, 2, 1)
    # user5 was queued at creation, user9 twice in the file
    assert (report["duplicates"], report["queued"]) == (2, 20_001 - 2 - 1 - 2)
    assert [p["line"] for p in report["problems"]] == [102, 203]
    assert "not-an-address" in report["problems"][0]["reason"]
    count = sql.execute(
        "SELECT count(*) AS n, count(*) FILTER (WHERE variables = "
        '\'{"first": "F42", "city": "C0"}\'::jsonb AND to_name = \'User 42\') AS one '
        "FROM email_queue WHERE campaign = 'spring'"
    ).fetchone()
    assert (count["n"], count["one"]) == (report["queued"] + 1, 1)
    again = client.post(
        "/api/v1/campaigns/spring/recipients", data=body, headers=auth(key, **CSV)
    ).get_json()
    assert again["queued"] == 0 and again["duplicates"] == 20_001 - 2 - 1


def test_csv_upload_strict_refuses_everything_and_bad_headers_are_422(client, sql, key):
    _campaign(client, key)
    body = "email\nok@example.org\nnope\n"
    strict = client.post(
        "/api/v1/campaigns/spring/recipients?strict=true", data=body, headers=auth(key, **CSV)
    )
    assert strict.status_code == 422 and strict.get_json()["errors"][0]["pointer"] == "/lines/3"
    assert _rows(sql) == []
    for bad in ("", "name,city\nx,y\n", "email,Email\n"):
        response = client.post(
            "/api/v1/campaigns/spring/recipients", data=bad, headers=auth(key, **CSV)
        )
        assert response.status_code == 422, bad
    json_body = client.post("/api/v1/campaigns/spring/recipients", json={}, headers=auth(key))
    assert json_body.status_code == 415
    missing = client.post("/api/v1/campaigns/nope/recipients", data=body, headers=auth(key, **CSV))
    assert missing.status_code == 404


def test_csv_upload_over_the_size_cap_is_413(db_url, settings, sql, key):
    body = ("email\n" + "".join(f"u{i}@example.org\n" for i in range(100))).encode()
    small = settings.with_overrides(api_csv_max_bytes=len(body) - 1)
    with tracking_app(db_url, small) as app:
        client = app.test_client()
        _campaign(client, key)
        declared = client.post(
            "/api/v1/campaigns/spring/recipients", data=body, headers=auth(key, **CSV)
        )
        chunked = client.post(
            "/api/v1/campaigns/spring/recipients",
            input_stream=io.BytesIO(body),  # no length: as a server passes a chunked body
            headers=auth(key, **CSV, **{"Transfer-Encoding": "chunked"}),
            environ_overrides={"wsgi.input_terminated": True},
        )
    assert declared.status_code == chunked.status_code == 413
    assert declared.mimetype == "application/problem+json"
    assert _rows(sql) == []


def _post(client, key, path):
    return client.post(f"/api/v1/campaigns/{path}", headers=auth(key))


def test_pause_resume_cancel_keep_row_statuses_and_cancel_in_one_update(client, sql, key):
    _campaign(client, key, recipients=[f"u{i}@example.org" for i in range(5)])
    paused = _post(client, key, "spring/pause")
    assert paused.status_code == 200 and paused.get_json()["state"] == "paused"
    assert _post(client, key, "spring/pause").get_json()["state"] == "paused"
    assert {r["status"] for r in _rows(sql)} == {"queued"}
    assert _post(client, key, "spring/resume").get_json()["state"] == "active"
    sql.execute(
        "UPDATE email_queue SET status = 'sent', sent_at = now() "
        "WHERE to_address = 'u0@example.org'"
    )
    cancelled = _post(client, key, "spring/cancel")
    assert cancelled.status_code == 200
    assert (cancelled.get_json()["state"], cancelled.get_json()["cancelled_rows"]) == (
        "cancelled",
        4,
    )
    assert [r["status"] for r in _rows(sql)] == ["sent"] + ["cancelled"] * 4
    assert _post(client, key, "spring/resume").status_code == 409
    assert _post(client, key, "spring/pause").status_code == 409
    csv = client.post(
        "/api/v1/campaigns/spring/recipients",
        data="email\na@example.org\n",
        headers=auth(key, **CSV),
    )
    assert csv.status_code == 409
    assert _post(client, key, "nope/pause").status_code == 404


def test_sql_campaigns_can_be_paused_and_read(client, sql, key):
    sql.execute(
        "INSERT INTO email_queue (to_address, subject, text_body, campaign) "
        "VALUES ('a@example.org', 's', 't', 'legacy')"
    )
    reader = make_key(sql, "read")
    assert (
        client.get("/api/v1/campaigns/legacy", headers=auth(reader)).get_json()["state"] == "active"
    )
    assert _post(client, key, "legacy/pause").get_json()["state"] == "paused"
    assert _post(client, reader, "legacy/resume").status_code == 403
    got = client.get("/api/v1/campaigns/legacy", headers=auth(reader)).get_json()
    assert got["state"] == "paused" and got["counts"]["queued"] == 1


def test_summary_counts_rows_engagement_bots_apart_and_top_links(client, sql, key):
    _campaign(client, key, recipients=[f"u{i}@example.org" for i in range(6)])
    ids = [r["id"] for r in _rows(sql)]
    sql.execute(
        "UPDATE email_queue SET status = 'sent', sent_at = now() - interval '2 minutes' "
        "WHERE id = ANY(%s)",
        (ids[:3],),
    )
    sql.execute(
        "UPDATE email_queue SET status = 'sent', sent_at = now() - interval '30 minutes' "
        "WHERE id = %s",
        (ids[3],),
    )
    sql.execute("UPDATE email_queue SET status = 'failed' WHERE id = %s", (ids[4],))
    events = [
        (ids[0], "open", "{}", False),
        (ids[0], "open", "{}", False),
        (ids[1], "open", "{}", True),
        (ids[0], "click", '{"url": "https://a.example/x"}', False),
        (ids[1], "click", '{"url": "https://a.example/x"}', False),
        (ids[1], "click", '{"url": "https://b.example/y"}', False),
        (ids[2], "click", '{"url": "https://c.example/bot"}', True),
        (ids[3], "bounce", "{}", False),
        (ids[2], "complaint", "{}", False),
        (ids[2], "unsubscribe", "{}", False),
    ]
    for queue_id, kind, data, bot in events:
        sql.execute(
            "INSERT INTO email_events (queue_id, type, data, suspected_bot) "
            "VALUES (%s, %s, %s, %s)",
            (queue_id, kind, data, bot),
        )
    got = client.get("/api/v1/campaigns/spring", headers=auth(key)).get_json()
    assert got["counts"] == {
        "queued": 1,
        "sending": 0,
        "sent": 4,
        "failed": 1,
        "suppressed": 0,
        "cancelled": 0,
        "total": 6,
    }
    assert got["progress"] == {"done": 5, "total": 6, "ratio": 5 / 6}
    assert got["opens"] == {"unique": 1, "total": 2, "bots": 1}
    assert got["clicks"] == {"unique": 2, "total": 3, "bots": 1}
    assert (got["bounces"], got["complaints"], got["unsubscribes"]) == (1, 1, 1)
    assert got["top_links"] == [
        {"url": "https://a.example/x", "unique_clicks": 2, "clicks": 2},
        {"url": "https://b.example/y", "unique_clicks": 1, "clicks": 1},
    ]
    assert got["send_rate"] == {"last_5_minutes": 3 / 5, "last_60_minutes": 4 / 60}
    assert got["first_sent_at"] < got["last_sent_at"]


def test_list_pages_by_keyset_and_restricted_keys_see_their_own(client, sql, key):
    for i in range(3):
        _campaign(client, key, name=f"c{i}")
    first = client.get("/api/v1/campaigns?limit=2", headers=auth(key)).get_json()
    assert [c["name"] for c in first["data"]] == ["c2", "c1"]
    second = client.get(
        f"/api/v1/campaigns?limit=2&cursor={first['next_cursor']}", headers=auth(key)
    )
    assert [c["name"] for c in second.get_json()["data"]] == ["c0"]
    assert second.get_json()["next_cursor"] is None
    sql.execute("INSERT INTO sender_accounts (email, pool) VALUES ('s@x.example', 'vip')")
    pooled = make_key(sql, "send", "vip")
    _campaign(client, pooled, name="mine", recipients=["a@example.org"])
    assert [
        c["name"] for c in client.get("/api/v1/campaigns", headers=auth(pooled)).get_json()["data"]
    ] == ["mine"]
    assert client.get("/api/v1/campaigns/c0", headers=auth(pooled)).status_code == 404
    assert _post(client, pooled, "c0/pause").status_code == 404
    assert _rows(sql, "mine")[0]["pool"] == "vip"


def _conforms(body, schema_name):
    """``body`` matches its OpenAPI component schema (refs resolved in the document)."""
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": document()["components"]}
    jsonschema.Draft202012Validator(schema).validate(body)


def test_answers_match_the_openapi_schemas(client, sql, key):
    created = _campaign(client, key, recipients=["a@example.org", "b@example.org"])
    _conforms(created, "CampaignCreated")
    sql.execute("UPDATE email_queue SET status = 'sent', sent_at = now()")
    _conforms(
        client.get("/api/v1/campaigns/spring", headers=auth(key)).get_json(), "CampaignSummary"
    )
    _conforms(client.get("/api/v1/campaigns", headers=auth(key)).get_json(), "CampaignPage")
    report = client.post(
        "/api/v1/campaigns/spring/recipients",
        data="email\nc@example.org\nbad\n",
        headers=auth(key, **CSV),
    )
    _conforms(report.get_json(), "CsvReport")
    _conforms(_post(client, key, "spring/pause").get_json(), "Campaign")
    _conforms(_post(client, key, "spring/cancel").get_json(), "CampaignCancelled")
