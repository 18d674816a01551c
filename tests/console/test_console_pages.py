"""Console pages over real rows: every value escaped (XSS), message HTML only in a
sandboxed iframe, search fields safe against SQL injection, changes applied and audited."""

from __future__ import annotations

import email
import io
import re
from email import policy

import psycopg
import pytest
from flask.testing import FlaskClient

from tests.console.conftest import token
from tests.support.tracking_env import account

XSS = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def queue(sql: psycopg.Connection, **fields: object) -> int:
    row = {"to_address": "alice@example.org", "subject": "Hi", "html_body": "<p>Hi</p>"} | fields
    names = ", ".join(row)
    marks = ", ".join(f"%({k})s" for k in row)
    return sql.execute(
        f"INSERT INTO email_queue ({names}) VALUES ({marks}) RETURNING id", row
    ).fetchone()["id"]


def audit_rows(sql: psycopg.Connection) -> list[dict]:
    return sql.execute("SELECT * FROM admin_audit_log ORDER BY id").fetchall()


@pytest.fixture
def hostile(sql: psycopg.Connection) -> dict[str, int]:
    """An account, a failed row, a bounce and a suppression whose every text is a script."""
    acct = account(sql)
    sql.execute(
        "UPDATE sender_accounts SET display_name = %s, status = 'paused', last_error = %s",
        (XSS, XSS),
    )
    row = queue(
        sql,
        to_name=XSS,
        subject=XSS,
        campaign=XSS,
        html_body=f"<p>Hello</p>{XSS}",
        text_body=XSS,
        account_id=acct,
        status="failed",
        last_error=XSS,
        message_id="<m1@shop.example>",
    )
    sql.execute(
        "INSERT INTO send_logs (queue_id, account_id, outcome, counted, code, response) "
        "VALUES (%s, %s, 'permanent', true, 550, %s)",
        (row, acct, XSS),
    )
    bounce = sql.execute(
        "INSERT INTO bounce_messages (report_key, account_id, kind, subject, raw) "
        "VALUES ('k1', %s, 'dsn', %s, %s) RETURNING id",
        (acct, XSS, f"Subject: bounce\r\n\r\n{XSS}\r\n".encode()),
    ).fetchone()["id"]
    sql.execute(
        "INSERT INTO email_events (queue_id, type, data) VALUES (%s, 'bounce', "
        "jsonb_build_object('bounce_id', %s::bigint, 'diagnostic', %s::text))",
        (row, bounce, XSS),
    )
    sql.execute(
        "INSERT INTO suppressions (email, reason, source) VALUES ('eve@example.org', 'manual', %s)",
        (XSS,),
    )
    return {"account": acct, "row": row, "bounce": bounce}


def test_every_page_escapes_hostile_values(client: FlaskClient, hostile: dict[str, int]):
    pages = [
        "/admin/",
        "/admin/accounts",
        f"/admin/accounts/{hostile['account']}",
        "/admin/messages",
        f"/admin/messages?campaign={XSS}",
        f"/admin/messages/{hostile['row']}",
        "/admin/suppressions",
        "/admin/suppressions/remove?email=eve@example.org",
        "/admin/bounces",
        f"/admin/bounces/{hostile['bounce']}",
        "/admin/campaigns",
        "/admin/campaigns/" + XSS.replace("/", "%2F"),
    ]
    for path in pages:
        response = client.get(path)
        assert response.status_code == 200, path
        html = response.get_data(as_text=True)
        assert XSS not in html, path
        assert "<script>" not in html.replace('<script src="/admin/static/console.js" defer>', "")
    page = client.get(f"/admin/messages/{hostile['row']}").get_data(as_text=True)
    assert ESCAPED in page
    frames = re.findall(r"<iframe[^>]*>", page)
    assert len(frames) == 1 and " sandbox " in frames[0] and "allow-scripts" not in frames[0]
    assert "&lt;p&gt;Hello&lt;/p&gt;" in frames[0]  # the message HTML lives only in srcdoc


def test_message_page_shows_the_timeline_and_the_raw_dsn(
    client: FlaskClient, hostile: dict[str, int]
):
    page = client.get(f"/admin/messages/{hostile['row']}").get_data(as_text=True)
    assert "attempt: permanent" in page and ">550<" in page and "news@shop.example" in page
    assert "Bounce report #" in page and "Subject: bounce" in page


def test_eml_download_is_the_rendered_message(client: FlaskClient, hostile: dict[str, int]):
    response = client.get(f"/admin/messages/{hostile['row']}.eml")
    assert response.status_code == 200
    assert response.mimetype == "message/rfc822"
    assert "attachment" in response.headers["Content-Disposition"]
    parsed = email.message_from_bytes(response.data, policy=policy.default)
    assert parsed["To"].addresses[0].addr_spec == "alice@example.org"
    assert parsed["Subject"] == XSS
    assert parsed["Message-ID"] == "<m1@shop.example>"
    assert "<p>Hello</p>" in parsed.get_body(("html",)).get_content()


INJECTIONS = ["' OR 1=1 --", "x'; DROP TABLE email_queue; --", "%", "_", "\\"]


@pytest.mark.parametrize("value", INJECTIONS)
def test_search_fields_are_not_sql(client: FlaskClient, sql: psycopg.Connection, value: str):
    queue(sql, campaign="spring")
    for field in ("to", "campaign", "message_id"):
        page = client.get("/admin/messages", query_string={field: value})
        assert page.status_code == 200
        assert "No message matches." in page.get_data(as_text=True)
    page = client.get("/admin/suppressions", query_string={"search": value})
    assert page.status_code == 200
    assert sql.execute("SELECT count(*) AS n FROM email_queue").fetchone()["n"] == 1


def test_bad_search_values_are_400_not_500(client: FlaskClient):
    for query in ({"status": "nope"}, {"since": "yesterday"}, {"cursor": "-1"}, {"to": "a\0b"}):
        assert client.get("/admin/messages", query_string=query).status_code == 400


def test_message_search_finds_by_each_field(client: FlaskClient, sql: psycopg.Connection):
    wanted = queue(sql, to_address="Bob@Example.org", campaign="spring", message_id="<x@y>")
    queue(sql, to_address="carol@example.org", campaign="autumn")
    for query in (
        {"to": "bob@example.ORG"},
        {"campaign": "spring"},
        {"message_id": "<x@y>"},
        {"status": "queued", "to": "bob@example.org"},
        {"since": "2000-01-01", "to": "bob@example.org"},
    ):
        page = client.get("/admin/messages", query_string=query).get_data(as_text=True)
        assert f'href="/admin/messages/{wanted}"' in page and "carol@" not in page, query


def test_messages_paginate_by_keyset(client: FlaskClient, sql: psycopg.Connection):
    ids = [queue(sql, campaign="big") for _ in range(55)]
    first = client.get("/admin/messages?campaign=big").get_data(as_text=True)
    cursor = re.search(r"cursor=(\d+)", first)[1]
    second = client.get(f"/admin/messages?campaign=big&cursor={cursor}").get_data(as_text=True)
    shown = set(re.findall(r'href="/admin/messages/(\d+)"', first + second))
    assert shown == {str(i) for i in ids}


def test_edit_limits_is_applied_and_audited(client: FlaskClient, sql: psycopg.Connection):
    acct = account(sql)
    form = {"daily_limit": "42", "hourly_limit": "", "min_delay_ms": "250"}
    response = client.post(
        f"/admin/accounts/{acct}/limits", data=form | {"csrf_token": token(client)}
    )
    assert response.status_code == 303
    row = sql.execute("SELECT * FROM sender_accounts").fetchone()
    assert (row["daily_limit"], row["hourly_limit"], row["min_delay_ms"]) == (42, None, 250)
    (entry,) = audit_rows(sql)
    assert entry["action"] == "account.set_limits" and entry["admin_email"] == "ops@example.org"
    assert entry["before"]["daily_limit"] == 500 and entry["after"]["daily_limit"] == 42
    assert "account.set_limits" in client.get("/admin/audit").get_data(as_text=True)
    bad = client.post(
        f"/admin/accounts/{acct}/limits",
        data=form | {"daily_limit": "-1", "csrf_token": token(client)},
    )
    assert bad.status_code == 400 and b"whole number" in bad.data
    assert len(audit_rows(sql)) == 1


def test_pause_and_resume_are_audited(client: FlaskClient, sql: psycopg.Connection):
    acct = account(sql)
    for action, status in (("pause", "paused"), ("resume", "active")):
        client.post(f"/admin/accounts/{acct}/{action}", data={"csrf_token": token(client)})
        assert sql.execute("SELECT status FROM sender_accounts").fetchone()["status"] == status
    assert [e["action"] for e in audit_rows(sql)] == ["account.pause", "account.resume"]


def test_account_pages_never_show_a_secret(client: FlaskClient, sql: psycopg.Connection):
    acct = account(sql)
    sql.execute("UPDATE sender_accounts SET smtp_password_encrypted = 'SECRET-CIPHERTEXT'")
    for path in ("/admin/accounts", f"/admin/accounts/{acct}"):
        assert b"SECRET-CIPHERTEXT" not in client.get(path).data


def test_retry_and_cancel_one_message(client: FlaskClient, sql: psycopg.Connection):
    failed = queue(sql, status="failed", last_error="550 no", attempts=3)
    queued = queue(sql)
    client.post(f"/admin/messages/{failed}/retry", data={"csrf_token": token(client)})
    client.post(f"/admin/messages/{queued}/cancel", data={"csrf_token": token(client)})
    rows = {r["id"]: r for r in sql.execute("SELECT * FROM email_queue").fetchall()}
    assert rows[failed]["status"] == "queued" and rows[failed]["attempts"] == 0
    assert rows[queued]["status"] == "cancelled"
    assert [e["action"] for e in audit_rows(sql)] == ["message.retry", "message.cancel"]
    again = client.post(f"/admin/messages/{queued}/cancel", data={"csrf_token": token(client)})
    assert again.status_code == 303 and len(audit_rows(sql)) == 2


def test_bulk_retry_changes_only_the_filtered_failed_rows(
    client: FlaskClient, sql: psycopg.Connection
):
    spring = [queue(sql, campaign="spring", status="failed") for _ in range(3)]
    other = queue(sql, campaign="autumn", status="failed")
    sent = queue(sql, campaign="spring", status="sent")
    form = {"campaign": "spring", "action": "retry", "csrf_token": token(client)}
    assert client.post("/admin/messages/bulk", data=form).status_code == 303
    rows = sql.execute("SELECT id, status FROM email_queue").fetchall()
    status = {r["id"]: r["status"] for r in rows}
    assert all(status[i] == "queued" for i in spring)
    assert status[other] == "failed" and status[sent] == "sent"
    (entry,) = audit_rows(sql)
    assert entry["action"] == "messages.bulk_retry" and sorted(entry["after"]["ids"]) == spring
    empty = client.post(
        "/admin/messages/bulk", data={"action": "cancel", "csrf_token": token(client)}
    )
    assert empty.status_code == 400


def test_suppressions_add_remove_with_confirmation_import_export(
    client: FlaskClient, sql: psycopg.Connection
):
    csrf = token(client)
    client.post(
        "/admin/suppressions/add",
        data={"email": "x@example.org", "reason": "manual", "csrf_token": csrf},
    )
    assert sql.execute("SELECT count(*) AS n FROM suppressions").fetchone()["n"] == 1
    confirm = client.get("/admin/suppressions/remove?email=x@example.org").get_data(as_text=True)
    assert "Yes, remove it" in confirm
    assert sql.execute("SELECT count(*) AS n FROM suppressions").fetchone()["n"] == 1
    client.post("/admin/suppressions/remove", data={"email": "x@example.org", "csrf_token": csrf})
    assert sql.execute("SELECT count(*) AS n FROM suppressions").fetchone()["n"] == 0
    upload = (b"email,reason\na@example.org,complaint\nnot-an-address\nb@example.org\n", "s.csv")
    client.post(
        "/admin/suppressions/import",
        data={"file": (io.BytesIO(upload[0]), upload[1]), "reason": "manual", "csrf_token": csrf},
        content_type="multipart/form-data",
    )
    reasons = dict(
        (r["email"], r["reason"]) for r in sql.execute("SELECT email, reason FROM suppressions")
    )
    assert reasons == {"a@example.org": "complaint", "b@example.org": "manual"}
    export = client.get("/admin/suppressions/export.csv")
    assert export.mimetype == "text/csv"
    assert "a@example.org,complaint" in export.get_data(as_text=True)
    actions = [e["action"] for e in audit_rows(sql)]
    assert actions == ["suppression.add", "suppression.remove", "suppressions.import"]
    big = "".join(f"u{i}@example.org\n" for i in range(20_000)).encode()  # 369 KB
    response = client.post(
        "/admin/suppressions/import",
        data={"file": (io.BytesIO(big), "big.csv"), "reason": "manual", "csrf_token": csrf},
        content_type="multipart/form-data",
    )
    assert response.status_code in (200, 302, 303), response.status_code
    assert sql.execute("SELECT count(*) AS n FROM suppressions").fetchone()["n"] == 20_002


def test_overview_and_its_live_counters(client: FlaskClient, sql: psycopg.Connection):
    acct = account(sql)
    sql.execute(
        "UPDATE sender_accounts SET daily_limit = 1, status = 'paused', "
        "last_error = 'bounce rate 9 %'"
    )
    row = queue(sql, status="sent", account_id=acct)
    queue(sql, account_id=acct)  # stranded: pinned to a paused account
    sql.execute(
        "INSERT INTO send_logs (queue_id, account_id, outcome, counted) "
        "VALUES (%s, %s, 'sent', true)",
        (row, acct),
    )
    page = client.get("/admin/").get_data(as_text=True)
    assert "bounce rate 9 %" in page and "which is paused" in page and "1/1" in page
    assert "<polyline" in page
    live = client.get("/admin/overview.json").get_json()
    assert live["sent"] == 1 and live["queued"] == 1 and live["sent_last_minute"] == 1
    assert "chart_points" not in live
    chart = client.get("/admin/overview.json?chart=1").get_json()
    assert len(chart["chart_points"].split()) == 24 * 60
    assert chart["chart_caption"].startswith("1 sends; busiest minute 1;")


def test_campaign_figures_and_csv(client: FlaskClient, sql: psycopg.Connection):
    a = queue(sql, campaign="spring", status="sent", to_address="=cmd@example.org")
    b = queue(sql, campaign="spring", status="sent", to_address="b@example.org")
    queue(sql, campaign="spring")
    sql.execute(
        "INSERT INTO email_events (queue_id, type, data, suspected_bot) VALUES "
        "(%s, 'open', '{}', false), (%s, 'open', '{}', false), (%s, 'open', '{}', true), "
        "(%s, 'click', '{\"url\": \"https://shop.example/sale\"}', false)",
        (a, a, b, a),
    )
    page = client.get("/admin/campaigns/spring").get_data(as_text=True)
    assert "66.7 % done" in page and "https://shop.example/sale" in page
    assert re.search(r"<td>open</td><td>1</td><td>\d+</td><td>1</td>", page)  # bots apart
    lines = client.get("/admin/campaigns/spring/open.csv").get_data(as_text=True).splitlines()
    assert lines[0] == "email,name,queue_id,first_at,events"
    assert len(lines) == 2 and lines[1].startswith("'=cmd@example.org,")


def test_smtp_settings_with_a_write_only_password(
    client: FlaskClient, sql: psycopg.Connection, settings
):
    from mailer.credentials import CredentialBox

    acct = account(sql)
    form = {
        "smtp_host": "relay.example.net",
        "smtp_port": "2525",
        "smtp_security": "tls",
        "smtp_username": "relay-user",
        "smtp_password": "s3cret-relay-pass",
        "csrf_token": token(client),
    }
    assert client.post(f"/admin/accounts/{acct}/smtp", data=form).status_code == 303
    row = sql.execute("SELECT * FROM sender_accounts").fetchone()
    assert (row["smtp_host"], row["smtp_port"], row["smtp_security"]) == (
        "relay.example.net",
        2525,
        "tls",
    )
    assert CredentialBox(settings.secret_key).decrypt(row["smtp_password_encrypted"]) == (
        "s3cret-relay-pass"
    )
    page = client.get(f"/admin/accounts/{acct}").get_data(as_text=True)
    assert "s3cret-relay-pass" not in page and row["smtp_password_encrypted"] not in page
    client.post(f"/admin/accounts/{acct}/smtp", data=form | {"smtp_password": ""})
    kept = sql.execute("SELECT smtp_password_encrypted FROM sender_accounts").fetchone()
    assert kept["smtp_password_encrypted"] == row["smtp_password_encrypted"]
    entries = audit_rows(sql)
    assert [e["after"]["password"] for e in entries] == ["changed", "kept"]
    assert "s3cret" not in str(entries)
    bad = client.post(f"/admin/accounts/{acct}/smtp", data=form | {"smtp_port": "70000"})
    assert bad.status_code == 400 and b"smtp_port" in bad.data


def test_add_an_account_and_refuse_a_duplicate(client: FlaskClient, sql: psycopg.Connection):
    form = {
        "email": "news@shop.example",
        "display_name": "Shop",
        "pool": "bulk",
        "smtp_host": "127.0.0.1",
        "smtp_port": "2525",
        "smtp_security": "none",
        "smtp_username": "",
        "smtp_password": "pw-never-shown",
        "daily_limit": "100",
        "hourly_limit": "10",
        "min_delay_ms": "0",
        "csrf_token": token(client),
    }
    assert client.post("/admin/accounts/new", data=form).status_code == 303
    row = sql.execute("SELECT * FROM sender_accounts").fetchone()
    assert (row["email"], row["pool"], row["daily_limit"], row["hourly_limit"]) == (
        "news@shop.example",
        "bulk",
        100,
        10,
    )
    again = client.post("/admin/accounts/new", data=form)
    assert again.status_code == 400 and b"already sends as news@shop.example" in again.data
    bad = client.post("/admin/accounts/new", data=form | {"email": "nope", "daily_limit": "-3"})
    assert bad.status_code == 400 and b"not an email address" in bad.data
    assert sql.execute("SELECT count(*) AS n FROM sender_accounts").fetchone()["n"] == 1
    (entry,) = audit_rows(sql)
    assert entry["action"] == "account.add" and "pw-never-shown" not in str(entry)


def test_disable_enable_and_check_credentials(client: FlaskClient, sql: psycopg.Connection):
    from tests.support.mailer_env import add_account
    from tests.support.smtp_server import ScriptedSMTPServer

    with ScriptedSMTPServer() as smtp:
        acct = add_account(sql, smtp)
        page = client.post(f"/admin/accounts/{acct}/check", data={"csrf_token": token(client)})
        assert page.status_code == 200 and b"The account works." in page.data
    failed = client.post(f"/admin/accounts/{acct}/check", data={"csrf_token": token(client)})
    assert b"The account does not work." in failed.data
    for action, status in (("disable", "disabled"), ("enable", "active")):
        client.post(f"/admin/accounts/{acct}/{action}", data={"csrf_token": token(client)})
        assert sql.execute("SELECT status FROM sender_accounts").fetchone()["status"] == status
    assert [e["action"] for e in audit_rows(sql)] == ["account.disable", "account.enable"]


def test_campaign_pause_resume_cancel_are_audited(client: FlaskClient, sql: psycopg.Connection):
    queued = [queue(sql, campaign="spring") for _ in range(2)]
    for action, state in (("pause", "paused"), ("resume", "active"), ("cancel", "cancelled")):
        response = client.post(
            f"/admin/campaigns/spring/{action}", data={"csrf_token": token(client)}
        )
        assert response.status_code == 303
        page = client.get("/admin/campaigns/spring").get_data(as_text=True)
        assert f'<strong id="campaign-state">{state}</strong>' in page
    rows = sql.execute("SELECT status FROM email_queue WHERE id = ANY(%s)", (queued,)).fetchall()
    assert {r["status"] for r in rows} == {"cancelled"}
    actions = [(e["action"], e["after"]["state"]) for e in audit_rows(sql)]
    assert actions == [
        ("campaign.pause", "paused"),
        ("campaign.resume", "active"),
        ("campaign.cancel", "cancelled"),
    ]
    refused = client.post("/admin/campaigns/spring/resume", data={"csrf_token": token(client)})
    assert refused.status_code == 303 and len(audit_rows(sql)) == 3
    assert client.get("/admin/campaigns/nope").status_code == 404
