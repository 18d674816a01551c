"""The tracking app's part in ``mailer demo``: it is served in the background while the
demo sends, so the demo's emails carry working links, and afterwards one message's link
is clicked and its one-click unsubscribe used, over HTTP, to show that they work."""

from __future__ import annotations

import http.client
import re
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

from mailer.config import Settings
from tracking import close_app, create_app
from tracking.server import BackgroundServer


def start_demo_server(
    settings: Settings, database_url: str, *, port: int | None = None
) -> BackgroundServer:
    """The app on ``port`` when given, else on ``MAILER_BASE_URL``'s port when that is a
    free local one, else on any free port (the caller then points the workers'
    ``MAILER_BASE_URL`` at ``.url``)."""
    app = create_app({"DATABASE_URL": database_url, "SETTINGS": settings})
    if port is not None:
        return BackgroundServer(app, "127.0.0.1", port).start()
    parts = urlsplit(settings.base_url)
    if parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost") and parts.port:
        try:
            return BackgroundServer(app, "127.0.0.1", parts.port).start()
        except OSError:
            pass
    return BackgroundServer(app, "127.0.0.1", 0).start()


def stop_demo_server(server: BackgroundServer) -> None:
    """Stop serving, then write pending events and close the app's pool."""
    server.stop()
    close_app(server.app)


def try_links(eml: Path) -> list[str]:
    """Click the first tracked link of the message in ``eml`` and unsubscribe its
    recipient with the RFC 8058 one-click POST; one line per step saying what happened."""
    msg = cast(EmailMessage, BytesParser(policy=policy.default).parsebytes(eml.read_bytes()))
    lines = []
    body = msg.get_body(("html",))
    html = body.get_content() if body is not None else ""
    click = re.search(r'href="(https?://[^"]+/track/click/[\w-]+)"', html)
    if click:
        status, location = _request("GET", click[1])
        lines.append(f"clicked {click[1][:72]}...: {status} -> {location}")
    unsubscribe = re.match(r"<(https?://[^>]+)>", str(msg.get("List-Unsubscribe", "")))
    if unsubscribe:
        status, _ = _request("POST", unsubscribe[1], b"List-Unsubscribe=One-Click")
        lines.append(f"one-click unsubscribe of {msg['To']}: {status}")
    return lines


def _request(method: str, url: str, body: bytes | None = None) -> tuple[int, str | None]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        headers = {"User-Agent": "Mozilla/5.0 (mailer demo)"}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, parts.path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status, response.headers.get("Location")
    finally:
        conn.close()
