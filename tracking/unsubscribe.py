"""Unsubscribes: ``GET /unsubscribe/<token>`` asks, ``POST /unsubscribe/<token>`` does it.

The POST is RFC 8058 one-click: a mailbox provider posts ``List-Unsubscribe=One-Click``
(as ``multipart/form-data`` or ``application/x-www-form-urlencoded``) with no cookies
and no authentication, and the confirmation page's button posts the same form. It adds
an ``unsubscribe`` suppression and records the event, idempotently, and answers 200
(never a redirect). A GET never unsubscribes by itself: link scanners follow GETs.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, render_template, request
from psycopg.types.json import Jsonb

from mailer.tokens import InvalidToken, UnsubscribeToken
from tracking.engagement import NO_CACHE
from tracking.state import services
from tracking.store import DATABASE_ERRORS

log = logging.getLogger("tracking.unsubscribe")

bp = Blueprint("unsubscribe", __name__)

PAGE_HEADERS = NO_CACHE | {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'",
    "X-Robots-Tag": "noindex",
    "Referrer-Policy": "no-referrer",
}


def masked(email: str) -> str:
    """``alice@example.org`` as ``a***e@example.org``: enough to recognise, not to harvest."""
    local, _, domain = email.rpartition("@")
    shown = local[:1] + "***" + (local[-1:] if len(local) > 2 else "")
    return f"{shown}@{domain}"


def _token(token: str) -> UnsubscribeToken:
    try:
        return services().codec.read_unsubscribe(token)
    except InvalidToken:
        abort(404)


def _page(state: str, email: str, status: int = 200) -> Response:
    html = render_template("unsubscribe.html", state=state, email=masked(email))
    return Response(html, status=status, mimetype="text/html", headers=PAGE_HEADERS)


@bp.get("/unsubscribe/<token>")
def confirm(token: str) -> Response:
    """The confirmation page: a form whose button posts the one-click body."""
    target = _token(token)
    try:
        done = services().store.fetch_one("suppression_for", {"email": target.email})
    except DATABASE_ERRORS:
        done = None
    state = "done" if done is not None and done["reason"] == "unsubscribe" else "confirm"
    return _page(state, target.email)


@bp.post("/unsubscribe/<token>")
def one_click(token: str) -> Response:
    """Unsubscribe the token's address (idempotent); 200, or 503 if the database fails."""
    target = _token(token)
    if request.form.get("List-Unsubscribe") != "One-Click":
        return _page("bad_request", target.email, 400)
    data = {
        "ip": request.remote_addr,
        "user_agent": request.headers.get("User-Agent", "")[:512],
        "email": target.email,
        "method": "one-click",
    }
    try:
        services().store.fetch_one(
            "unsubscribe",
            {
                "email": target.email,
                "queue_id": target.queue_id,
                "source": "one-click",
                "data": Jsonb(data),
            },
        )
    except DATABASE_ERRORS as exc:
        log.error("unsubscribe of message %s failed: %s", target.queue_id, exc)
        return _page("unavailable", target.email, 503)
    return _page("done", target.email)
