"""The tracking app's opens, clicks, health and metrics, on a real database."""

from __future__ import annotations

import io
import time

import pytest

from mailer.tokens import ClickToken, OpenToken, UnsubscribeToken
from tests.support.tracking_env import (
    BROWSER,
    account,
    closed_port_url,
    codec,
    events,
    flush_events,
    sent_row,
    tracking_app,
)
from tracking.engagement import PIXEL

URL = "https://shop.example/sale?utm_source=news&x=%C3%A9#top"


@pytest.fixture
def app(db_url, settings):
    with tracking_app(db_url, settings) as app:
        yield app


@pytest.fixture
def row(sql):
    return sent_row(sql, account(sql))


def open_url(settings, queue_id, issued_at=None):
    token = codec(settings).open_token(OpenToken(queue_id, int(issued_at or time.time() - 3600)))
    return f"/track/open/{token}"


def click_url(settings, queue_id, link=1, url=URL, issued_at=None):
    issued = int(issued_at or time.time() - 3600)
    return f"/track/click/{codec(settings).click_token(ClickToken(queue_id, issued, link, url))}"


def test_open_pixel_is_a_43_byte_uncached_gif_and_records_an_open(app, settings, sql, row):
    response = app.test_client().get(
        open_url(settings, row["id"]),
        headers={"User-Agent": BROWSER},
        environ_base={"REMOTE_ADDR": "198.51.100.7"},
    )
    assert response.status_code == 200
    assert response.data == PIXEL and len(response.data) == 43
    assert response.mimetype == "image/gif"
    assert "no-store" in response.headers["Cache-Control"]
    assert "no-cache" in response.headers["Cache-Control"]
    assert response.headers["Pragma"] == "no-cache"
    assert "Set-Cookie" not in response.headers
    flush_events(app)
    [event] = events(sql)
    assert (event["type"], event["queue_id"], event["account_id"]) == (
        "open",
        row["id"],
        row["sent_by_account_id"],
    )
    assert event["data"]["ip"] == "198.51.100.7"
    assert event["data"]["user_agent"] == BROWSER
    assert event["suspected_bot"] is False


def test_click_redirects_to_the_sealed_url_and_records_it(app, settings, sql, row):
    response = app.test_client().get(
        click_url(settings, row["id"], link=2), headers={"User-Agent": BROWSER}
    )
    assert response.status_code == 302
    assert response.headers["Location"] == URL
    assert response.headers["Referrer-Policy"] == "no-referrer"
    flush_events(app)
    [event] = events(sql)
    assert (event["type"], event["data"]["url"], event["data"]["link"]) == ("click", URL, 2)
    assert event["suspected_bot"] is False


def test_unicode_links_redirect_as_ascii(app, settings, row):
    response = app.test_client().get(
        click_url(settings, row["id"], url="https://x.example/café"),
        headers={"User-Agent": BROWSER},
    )
    assert response.headers["Location"] == "https://x.example/caf%C3%A9"


def test_forged_and_altered_tokens_are_404_and_record_nothing(app, settings, sql, row):
    client = app.test_client()
    good = click_url(settings, row["id"])
    altered = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    unsub = codec(settings).unsubscribe_token(UnsubscribeToken(row["id"], row["to_address"]))
    from mailer.tokens import TokenCodec

    foreign = TokenCodec("another-secret").click_token(ClickToken(row["id"], 0, 1, URL))
    for path in (
        altered,
        "/track/click/forged",
        f"/track/click/{foreign}",
        "/track/click/" + unsub,
        open_url(settings, row["id"]).replace("open", "click"),
        "/track/open/" + unsub,
        "/track/open/" + "A" * 40,
    ):
        response = client.get(path, headers={"User-Agent": BROWSER})
        assert response.status_code == 404, path
        assert "Location" not in response.headers
    flush_events(app)
    assert events(sql) == []


def test_a_sealed_url_that_is_not_http_is_never_a_redirect(app, settings, row):
    path = click_url(settings, row["id"], url="javascript:alert(1)")
    assert app.test_client().get(path, headers={"User-Agent": BROWSER}).status_code == 404


def test_scanners_are_recorded_but_flagged(app, settings, sql, row):
    client = app.test_client()
    assert (
        client.head(click_url(settings, row["id"]), headers={"User-Agent": BROWSER}).status_code
        == 302
    )
    client.get(click_url(settings, row["id"]), headers={"User-Agent": "Mimecast URL Protect"})
    client.get(
        click_url(settings, row["id"], issued_at=time.time()), headers={"User-Agent": BROWSER}
    )
    client.get(open_url(settings, row["id"]), headers={"User-Agent": ""})
    flush_events(app)
    flagged = [(e["type"], e["suspected_bot"], e["data"]["scanner"]) for e in events(sql)]
    assert flagged == [
        ("click", True, "head_request"),
        ("click", True, "scanner_user_agent"),
        ("click", True, "too_soon"),
        ("open", True, "no_user_agent"),
    ]


def test_clicking_every_link_at_once_is_flagged(db_url, settings, sql, row):
    now = [time.time()]
    with tracking_app(db_url, settings, CLOCK=lambda: now[0]) as app:
        client = app.test_client()
        client.get(click_url(settings, row["id"], link=1), headers={"User-Agent": BROWSER})
        flush_events(app)
        now[0] += 0.5
        client.get(
            click_url(settings, row["id"], link=2, url="https://shop.example/b"),
            headers={"User-Agent": BROWSER},
        )
        client.get(
            click_url(settings, row["id"], link=3, url="https://shop.example/c"),
            headers={"User-Agent": BROWSER},
        )
        flush_events(app)
        now[0] += 60  # a person coming back later
        client.get(click_url(settings, row["id"], link=1), headers={"User-Agent": BROWSER})
        flush_events(app)
    result = [
        (e["data"]["link"], e["suspected_bot"], e["data"].get("scanner")) for e in events(sql)
    ]
    assert result == [
        (1, True, "every_link"),
        (2, True, "every_link"),
        (3, True, "every_link"),
        (1, False, None),
    ]


def test_events_of_deleted_rows_are_kept_without_their_row(app, settings, sql, row):
    sql.execute("DELETE FROM email_queue WHERE id = %s", (row["id"],))
    app.test_client().get(open_url(settings, row["id"]), headers={"User-Agent": BROWSER})
    flush_events(app)
    [event] = events(sql)
    assert event["queue_id"] is None and event["type"] == "open"


def test_database_outage_still_answers_pixel_and_redirect_at_once(settings):
    slow = settings.with_overrides(tracking_db_timeout_seconds=1.0)
    with tracking_app(closed_port_url(), slow) as app:
        client = app.test_client()
        started = time.monotonic()
        pixel = client.get(open_url(slow, 1), headers={"User-Agent": BROWSER})
        click = client.get(click_url(slow, 1), headers={"User-Agent": BROWSER})
        elapsed = time.monotonic() - started
        assert (pixel.status_code, pixel.data) == (200, PIXEL)
        assert (click.status_code, click.headers["Location"]) == (302, URL)
        assert elapsed < 0.5
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "database unavailable" in ready.json["detail"]
        metrics = client.get("/metrics").get_data(as_text=True)
        assert "mailer_database_up 0.0" in metrics
        app.extensions["mailer"].writer.close(timeout=0.2)


def test_healthz_and_readyz(app, sql):
    client = app.test_client()
    assert client.get("/healthz").data == b"ok\n"
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json == {"ready": True, "detail": "ready"}
    sql.execute("DELETE FROM schema_migrations WHERE version = 2")
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json["detail"] == "pending migrations: 0002_tracking"


def test_metrics_in_prometheus_text(app, settings, sql, row):
    sql.execute(
        "INSERT INTO email_queue (to_address, subject, html_body) "
        "VALUES ('x@example.org', 's', 'b')"
    )
    sql.execute(
        "INSERT INTO send_logs (queue_id, account_id, outcome, counted, code) "
        "VALUES (%s, %s, 'sent', true, 250)",
        (row["id"], row["sent_by_account_id"]),
    )
    client = app.test_client()
    client.get(open_url(settings, row["id"]), headers={"User-Agent": BROWSER})
    flush_events(app)
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert "mailer_database_up 1.0" in text
    assert 'mailer_queue_rows{status="queued"} 1.0' in text
    assert 'mailer_queue_rows{status="sent"} 1.0' in text
    account_id = row["sent_by_account_id"]
    assert f'mailer_sends_total{{account="{account_id}",outcome="sent"}} 1.0' in text
    assert 'mailer_events_total{suspected_bot="false",type="open"} 1.0' in text
    assert "mailer_tracking_events_dropped_total 0.0" in text


def test_oversized_requests_are_refused(app):
    response = app.test_client().post("/webhooks/ses", data=b"x" * (600 * 1024))
    assert response.status_code == 413


@pytest.mark.parametrize("route", ["/webhooks/ses", "/unsubscribe/"])
def test_oversized_bodies_without_a_length_are_refused(app, settings, sql, row, route):
    """A chunked body (no Content-Length) past the 512 KiB cap is a 413 as a declared one
    is: here a valid one-click body, then padding past the cap; Werkzeug alone read it up
    to the cap and acted on it."""
    path = route
    if route == "/unsubscribe/":
        path += codec(settings).unsubscribe_token(UnsubscribeToken(row["id"], row["to_address"]))
    body = b"List-Unsubscribe=One-Click&pad=" + b"x" * (600 * 1024)
    response = app.test_client().post(
        path,
        input_stream=io.BytesIO(body),
        content_type="application/x-www-form-urlencoded",
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 413
    assert sql.execute("SELECT count(*) AS n FROM suppressions").fetchone()["n"] == 0


def test_client_ip_comes_from_a_trusted_proxy_only(db_url, settings, sql, row):
    headers = {"User-Agent": BROWSER, "X-Forwarded-For": "192.0.2.44"}
    environ = {"REMOTE_ADDR": "10.0.0.1"}
    with tracking_app(db_url, settings) as app:
        app.test_client().get(open_url(settings, row["id"]), headers=headers, environ_base=environ)
        flush_events(app)
    proxied = settings.with_overrides(trusted_proxies=1)
    with tracking_app(db_url, proxied) as app:
        app.test_client().get(open_url(settings, row["id"]), headers=headers, environ_base=environ)
        flush_events(app)
    assert [e["data"]["ip"] for e in events(sql)] == ["10.0.0.1", "192.0.2.44"]
