"""``mailer.client`` against the live API (werkzeug's server in a thread), not mocks."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mailer.client import ApiError, MailerClient
from mailer.config import Settings
from tests.support.api_env import make_key
from tests.support.tracking_env import tracking_app
from tracking.server import BackgroundServer


@pytest.fixture
def live(db_url: str, settings: Settings) -> Iterator[str]:
    with tracking_app(db_url, settings, WEB_ROUTES="api") as app, BackgroundServer(app) as srv:
        yield srv.url


def test_client_covers_emails_templates_suppressions_accounts(live, sql):
    sql.execute("INSERT INTO sender_accounts (email) VALUES ('a@shop.example')")
    with MailerClient(live, make_key(sql, "admin")) as mailer:
        queued = mailer.send({"to": "ann@example.org", "subject": "Hi", "text": "Hello"})
        assert queued.status == "queued"
        assert mailer.get_email(queued.id)["to_address"] == "ann@example.org"
        results = mailer.send_batch(
            [{"to": "b@example.org", "subject": "s", "text": "t"}, {"to": "bad"}],
            permissive=True,
        )
        assert results[0].id is not None and results[1].error is not None
        assert [e["id"] for e in mailer.list_emails()] == [results[0].id, queued.id]
        assert mailer.cancel(queued.id).status == "cancelled"
        with pytest.raises(ApiError) as refused:
            mailer.cancel(queued.id)
        assert refused.value.status == 409 and refused.value.type.endswith("/conflict")
        mailer.create_template("welcome", "Hi", text="Hello {{ name }}")
        assert mailer.get_template("welcome")["text"] == "Hello {{ name }}"
        mailer.delete_template("welcome")
        assert mailer.suppress("x@example.org") == 1
        assert mailer.import_suppressions("y@example.org\n")["added"] == 1
        assert len(list(mailer.export_suppressions())) == 3
        mailer.unsuppress("x@example.org")
        account = mailer.list_accounts()[0]["id"]
        assert mailer.pause_account(account)["status"] == "paused"
        assert mailer.set_account_limits(account, daily_limit=7)["daily_limit"] == 7


def test_every_post_carries_an_idempotency_key_kept_across_retries(live, sql):
    """A send whose answer is lost is retried with the same key: queued once."""
    with MailerClient(live, make_key(sql, "send")) as mailer:
        body = {"to": "ann@example.org", "subject": "Hi", "text": "Hello"}
        first = mailer.send(body, idempotency_key="fixed")
        again = mailer.send(body, idempotency_key="fixed")
        assert first == again
        mailer.send(body)
        mailer.send(body)
    assert sql.execute("SELECT count(*) AS n FROM email_queue").fetchone()["n"] == 3
    assert sql.execute("SELECT count(*) AS n FROM api_idempotency").fetchone()["n"] == 3


class _Flaky(BaseHTTPRequestHandler):
    """Answers 503, then 429 with Retry-After, then 202; records the Idempotency-Keys."""

    answers = [(503, {}), (429, {"Retry-After": "1"})]
    keys: list[str] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).keys.append(self.headers["Idempotency-Key"])
        status, headers = type(self).answers.pop(0) if type(self).answers else (202, {})
        body = b'{"id": 1, "status": "queued", "message_id": null}' if status == 202 else b"{}"
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


def test_client_retries_429_and_5xx_with_one_key():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with MailerClient(url, "k", backoff_seconds=0.01) as mailer:
            assert mailer.send({"to": "a@b.org"}).id == 1
    finally:
        server.shutdown()
        server.server_close()
    assert len(_Flaky.keys) == 3 and len(set(_Flaky.keys)) == 1


def test_client_covers_campaigns(live, sql):
    with MailerClient(live, make_key(sql, "send")) as mailer:
        created = mailer.create_campaign(
            "spring", ["a@example.org"], subject="Hi {{ n }}", text="Hello", variables={"n": 1}
        )
        assert created["queued"] == 1 and created["campaign"]["state"] == "active"
        chunks = iter([b"email,n\n", b"b@example.org,2\n", b"c@example.org,3\nbad,4\n"])
        report = mailer.upload_recipients("spring", chunks)
        assert (report["queued"], report["invalid"]) == (2, 1)
        again = mailer.upload_recipients("spring", b"email\nb@example.org\n")
        assert (again["queued"], again["duplicates"]) == (0, 1)
        assert mailer.pause_campaign("spring")["state"] == "paused"
        assert mailer.resume_campaign("spring")["state"] == "active"
        assert [c["name"] for c in mailer.list_campaigns()] == ["spring"]
        assert mailer.get_campaign("spring")["counts"]["queued"] == 3
        assert mailer.cancel_campaign("spring")["cancelled_rows"] == 3
        with pytest.raises(ApiError) as refused:
            mailer.resume_campaign("spring")
        assert refused.value.status == 409
    variables = sql.execute(
        "SELECT variables FROM email_queue WHERE to_address = 'c@example.org'"
    ).fetchone()["variables"]
    assert variables == {"n": "3"}


def test_client_exports_and_erases_a_contact(live, sql):
    with MailerClient(live, make_key(sql, "admin")) as mailer:
        queued = mailer.send({"to": "zoe+x@example.org", "subject": "Hi", "text": "Hello"})
        assert [e["id"] for e in mailer.export_contact("Zoe+x@example.org")["emails"]] == [
            queued.id
        ]
        erased = mailer.erase_contact("zoe+x@example.org")
        assert erased["counts"]["cancelled"] == 1
        assert mailer.get_email(queued.id)["status"] == "cancelled"
        assert mailer.export_contact("zoe+x@example.org")["emails"] == []
