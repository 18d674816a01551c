"""Opens and clicks: ``GET /track/open/<token>`` and ``GET /track/click/<token>``.

Both answer from the token alone (no database on the request path): the pixel is a
43-byte transparent GIF that must not be cached, the click a 302 to the link the token
sealed, which was in the message as sent (a token that does not open is a 404, never a
redirect). The event, with the client's user agent and IP and any scanner verdict
(:mod:`tracking.scanners`), goes to the background writer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, abort, request
from werkzeug.urls import iri_to_uri

from mailer.tokens import InvalidToken
from mailer.tracking_links import is_trackable
from tracking.scanners import scanner_reason
from tracking.state import services

bp = Blueprint("engagement", __name__)

#: A transparent 1x1 GIF89a.
PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00"
    b"\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
NO_CACHE = {
    "Cache-Control": "no-store, no-cache, must-revalidate, private, max-age=0",
    "Pragma": "no-cache",
    "Expires": "Thu, 01 Jan 1970 00:00:00 GMT",
}


@bp.get("/track/open/<token>")
def track_open(token: str) -> Response:
    """The open pixel; records an ``open`` event."""
    try:
        opened = services().codec.read_open(token)
    except InvalidToken:
        abort(404)
    record("open", opened.queue_id, opened.issued_at, {})
    return Response(PIXEL, mimetype="image/gif", headers=NO_CACHE)


@bp.get("/track/click/<token>")
def track_click(token: str) -> Response:
    """302 to the sealed link; records a ``click`` event."""
    try:
        click = services().codec.read_click(token)
    except InvalidToken:
        abort(404)
    if not is_trackable(click.url) or any(ord(c) < 32 for c in click.url):
        abort(404)
    record("click", click.queue_id, click.issued_at, {"url": click.url, "link": click.link})
    headers = NO_CACHE | {"Location": iri_to_uri(click.url), "Referrer-Policy": "no-referrer"}
    return Response(status=302, headers=headers)


def record(kind: str, queue_id: int, issued_at: int, data: dict[str, Any]) -> None:
    """Queue an ``open``/``click`` event of message ``queue_id`` (never blocks)."""
    svc = services()
    now = svc.clock()
    agent = request.headers.get("User-Agent", "")
    reason = scanner_reason(
        kind=kind,
        method=request.method,
        user_agent=agent,
        seconds_since_sent=now - issued_at,
        click_seconds=svc.settings.scanner_click_seconds,
    )
    data = data | {"ip": request.remote_addr, "user_agent": agent[:512], "method": request.method}
    if reason is not None:
        data["scanner"] = reason
    svc.writer.submit(
        {
            "queue_id": queue_id,
            "type": kind,
            "data": data,
            "suspected_bot": reason is not None,
            "created_at": datetime.fromtimestamp(now, UTC).isoformat(),
        }
    )
