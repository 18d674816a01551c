"""One-click unsubscribe (RFC 8058): the confirmation page, the POST as mailbox providers
send it, idempotency, and the suppression stopping the next send."""

from __future__ import annotations

import time

import pytest

from mailer.tokens import UnsubscribeToken
from tests.support.mailer_env import (
    add_account,
    insert_emails,
    running_worker,
    statuses,
    wait_until,
)
from tests.support.smtp_server import ScriptedSMTPServer
from tests.support.tracking_env import (
    BROWSER,
    account,
    closed_port_url,
    codec,
    events,
    sent_row,
    tracking_app,
)

BOUNDARY = "----0f3c2d1e"
#: The body Gmail-style providers POST: multipart/form-data with one field.
MULTIPART = (
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n'
    f"\r\nOne-Click\r\n--{BOUNDARY}--\r\n"
).encode()


@pytest.fixture
def app(db_url, settings):
    with tracking_app(db_url, settings) as app:
        yield app


@pytest.fixture
def row(sql):
    return sent_row(sql, account(sql), to="Alice.Smith@Example.org")


def unsubscribe_path(settings, row):
    token = codec(settings).unsubscribe_token(UnsubscribeToken(row["id"], row["to_address"]))
    return f"/unsubscribe/{token}"


def suppressions(sql):
    return sql.execute("SELECT email, reason, source, expires_at FROM suppressions").fetchall()


def test_get_shows_a_confirmation_form_and_never_unsubscribes(app, settings, sql, row):
    client = app.test_client()
    path = unsubscribe_path(settings, row)
    page = client.get(path, headers={"User-Agent": "Proofpoint URL Defense"})
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert '<form method="post">' in html
    assert '<input type="hidden" name="List-Unsubscribe" value="One-Click">' in html
    assert '<button type="submit">Unsubscribe</button>' in html
    assert "<script" not in html
    assert "A***h@Example.org" in html and "Alice.Smith" not in html
    assert client.head(path).status_code == 200
    assert suppressions(sql) == [] and events(sql) == []


def test_one_click_post_exactly_as_a_mailbox_provider_sends_it(app, settings, sql, row):
    response = app.test_client().post(
        unsubscribe_path(settings, row),
        data=MULTIPART,
        content_type=f"multipart/form-data; boundary={BOUNDARY}",
        headers={"User-Agent": "Mozilla/5.0 (compatible; Google-Unsubscribe)"},
        environ_base={"REMOTE_ADDR": "203.0.113.5"},
    )
    assert response.status_code == 200
    assert "Location" not in response.headers and "Set-Cookie" not in response.headers
    assert "You are unsubscribed" in response.get_data(as_text=True)
    assert suppressions(sql) == [
        {
            "email": "Alice.Smith@Example.org",
            "reason": "unsubscribe",
            "source": "one-click",
            "expires_at": None,
        }
    ]
    [event] = events(sql)
    assert (event["type"], event["queue_id"], event["account_id"]) == (
        "unsubscribe",
        row["id"],
        row["sent_by_account_id"],
    )
    assert event["data"]["ip"] == "203.0.113.5"


def test_urlencoded_post_is_idempotent(app, settings, sql, row):
    client = app.test_client()
    for _ in range(3):
        response = client.post(
            unsubscribe_path(settings, row), data={"List-Unsubscribe": "One-Click"}
        )
        assert response.status_code == 200
    assert len(suppressions(sql)) == 1
    assert len(events(sql, "unsubscribe")) == 1
    page = client.get(unsubscribe_path(settings, row))
    assert "You are unsubscribed" in page.get_data(as_text=True)


def test_a_post_without_the_one_click_body_does_nothing(app, settings, sql, row):
    client = app.test_client()
    assert client.post(unsubscribe_path(settings, row)).status_code == 400
    assert (
        client.post(unsubscribe_path(settings, row), data={"List-Unsubscribe": "yes"}).status_code
        == 400
    )
    assert suppressions(sql) == []


def test_forged_tokens_are_404(app, settings, sql, row):
    path = unsubscribe_path(settings, row)
    forged = path[:-2] + ("AA" if not path.endswith("AA") else "BB")
    client = app.test_client()
    assert client.get(forged).status_code == 404
    assert client.post(forged, data={"List-Unsubscribe": "One-Click"}).status_code == 404
    assert suppressions(sql) == []


def test_unsubscribe_makes_a_soft_bounce_permanent_and_keeps_other_reasons(app, settings, sql, row):
    sql.execute(
        "INSERT INTO suppressions (email, reason, expires_at) "
        "VALUES ('alice.smith@example.org', 'soft_bounce', now() + interval '1 day')"
    )
    app.test_client().post(unsubscribe_path(settings, row), data={"List-Unsubscribe": "One-Click"})
    assert [(s["reason"], s["expires_at"]) for s in suppressions(sql)] == [("unsubscribe", None)]
    other = sent_row(sql, row["sent_by_account_id"], to="bob@example.org")
    sql.execute("INSERT INTO suppressions (email, reason) VALUES ('bob@example.org', 'complaint')")
    app.test_client().post(
        unsubscribe_path(settings, other), data={"List-Unsubscribe": "One-Click"}
    )
    assert (
        sql.execute("SELECT reason FROM suppressions WHERE email = 'bob@example.org'").fetchone()[
            "reason"
        ]
        == "complaint"
    )
    assert len(events(sql, "unsubscribe")) == 2


def test_unsubscribe_works_after_the_row_was_deleted(app, settings, sql, row):
    path = unsubscribe_path(settings, row)
    sql.execute("DELETE FROM email_queue")
    assert app.test_client().post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert suppressions(sql)[0]["reason"] == "unsubscribe"
    [event] = events(sql)
    assert event["queue_id"] is None and event["data"]["email"] == "Alice.Smith@Example.org"


def test_database_outage_is_a_fast_503_not_a_false_success(settings):
    quick = settings.with_overrides(tracking_db_timeout_seconds=0.5)
    with tracking_app(closed_port_url(), quick) as app:
        token = codec(quick).unsubscribe_token(UnsubscribeToken(1, "a@example.org"))
        started = time.monotonic()
        response = app.test_client().post(
            f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"}
        )
        assert response.status_code == 503
        assert time.monotonic() - started < 3
        page = app.test_client().get(f"/unsubscribe/{token}")
        assert page.status_code == 200  # the page still shows; the button will retry


async def test_once_unsubscribed_the_next_mail_is_suppressed(db_url, sql, settings):
    with ScriptedSMTPServer() as smtp:
        sender = add_account(sql, smtp)
        row = sent_row(sql, sender, to="carol@example.org")
        with tracking_app(db_url, settings) as app:
            response = app.test_client().post(
                unsubscribe_path(settings, row),
                data={"List-Unsubscribe": "One-Click"},
                headers={"User-Agent": BROWSER},
            )
            assert response.status_code == 200
        [queued] = insert_emails(sql, 1, to_address="CAROL@example.org ")
        async with running_worker(settings, db_url, sender):
            await wait_until(lambda: statuses(sql).get("suppressed") == 1, message="suppressed")
        assert smtp.received == []
    state = sql.execute(
        "SELECT status, last_error FROM email_queue WHERE id = %s", (queued,)
    ).fetchone()
    assert state == {"status": "suppressed", "last_error": "address is suppressed (unsubscribe)"}
