"""The whole loop over real HTTP: a worker sends through a real SMTP server with links
pointing at the tracking app served by gunicorn (as in production); the message's
List-Unsubscribe URL, click link and pixel are then used as a mailbox provider and a
reader would."""

from __future__ import annotations

import http.client
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.support.mailer_env import (
    add_account,
    insert_emails,
    running_worker,
    statuses,
    wait_until,
)
from tests.support.smtp_server import ScriptedSMTPServer
from tests.support.tracking_env import BROWSER, free_port
from tracking.engagement import PIXEL
from tracking.gunicorn_child import gunicorn_child

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
LINK = "https://shop.example/spring?utm_source=news&utm_medium=email"
#: Clicks sooner than this after sending count as a scanner's (shortened for the test).
CLICK_SECONDS = 1.0


@contextmanager
def gunicorn(db_url: str, secret: str, home: Path) -> Iterator[str]:
    """``gunicorn tracking.wsgi:app`` on a free port; yields its base URL."""
    port = free_port()
    env = os.environ | {
        "DATABASE_URL": db_url,
        "MAILER_SECRET_KEY": secret,
        "MAILER_HOME": str(home),
        "MAILER_BASE_URL": f"http://127.0.0.1:{port}",
        "MAILER_SCANNER_CLICK_SECONDS": str(CLICK_SECONDS),
    }
    with gunicorn_child(env, workers=2, threads=2, port=port) as base:
        yield base


class Answer:
    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.status = response.status
        self.headers = response.headers
        self.body = response.read()


def request(
    base: str,
    method: str,
    target: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """One HTTP request with http.client: no cookies, no redirects followed."""
    parts = urlsplit(target if "://" in target else base + target)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request(method, path, body=body, headers=headers or {})
        return Answer(conn.getresponse())
    finally:
        conn.close()


async def test_unsubscribe_click_and_open_over_real_http(db_url, sql, settings, tmp_path):
    with (
        ScriptedSMTPServer() as smtp,
        gunicorn(db_url, settings.secret_key, tmp_path / "web") as base,
    ):
        sender = add_account(sql, smtp)
        insert_emails(
            sql,
            1,
            to_address="dana@example.org",
            html_body=f'<html><body><p><a href="{LINK}">Spring sale</a></p>'
            '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'
            "</body></html>",
        )
        async with running_worker(settings.with_overrides(base_url=base), db_url, sender):
            await wait_until(lambda: statuses(sql) == {"sent": 1}, message="sent")
        msg = smtp.wait_for(1)[0].message

        # The header a mailbox provider reads, and the one-click POST it makes (RFC 8058).
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        one_click = re.match(r"<(https?://[^>]+)>", str(msg["List-Unsubscribe"]))[1]
        assert one_click.startswith(base + "/unsubscribe/")
        page = request(base, "GET", one_click, headers={"User-Agent": BROWSER})
        assert page.status == 200 and b'name="List-Unsubscribe" value="One-Click"' in page.body
        assert sql.execute("SELECT count(*) AS n FROM suppressions").fetchone()["n"] == 0
        boundary = "AaB03x"
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="List-Unsubscribe"'
            f"\r\n\r\nOne-Click\r\n--{boundary}--\r\n"
        ).encode()
        answer = request(
            base,
            "POST",
            one_click,
            body,
            {
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "User-Agent": "Mozilla/5.0 (compatible; Google-Unsubscribe)",
            },
        )
        assert answer.status == 200
        assert answer.headers.get("Location") is None
        assert answer.headers.get("Set-Cookie") is None
        again = request(
            base,
            "POST",
            one_click,
            b"List-Unsubscribe=One-Click",
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert again.status == 200
        suppressed = sql.execute("SELECT email, reason FROM suppressions").fetchall()
        assert suppressed == [{"email": "dana@example.org", "reason": "unsubscribe"}]

        # The reader's click and open.
        html = msg.get_body(("html",)).get_content()
        [click] = re.findall(r'href="(' + re.escape(base) + r'/track/click/[\w-]+)"', html)
        assert re.search(r'href="' + re.escape(one_click) + '"', html)  # not rewritten
        time.sleep(max(0.0, CLICK_SECONDS + 0.2 - (time.time() - smtp.received[0].received_at)))
        redirect = request(base, "GET", click, headers={"User-Agent": BROWSER})
        assert (redirect.status, redirect.headers["Location"]) == (302, LINK)
        [pixel] = re.findall(r'<img src="(' + re.escape(base) + r'/track/open/[\w-]+)"', html)
        image = request(base, "GET", pixel, headers={"User-Agent": BROWSER})
        assert (image.status, image.body) == (200, PIXEL)
        forged = request(base, "GET", click[:-4] + "AAAA", headers={"User-Agent": BROWSER})
        assert forged.status == 404 and forged.headers.get("Location") is None

        def recorded() -> list[tuple[str, bool]]:
            rows = sql.execute("SELECT type, suspected_bot FROM email_events ORDER BY type")
            return [(r["type"], r["suspected_bot"]) for r in rows.fetchall()]

        await wait_until(lambda: len(recorded()) == 3, message="events written")
        assert recorded() == [("click", False), ("open", False), ("unsubscribe", False)]
