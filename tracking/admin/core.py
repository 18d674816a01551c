"""What every console request goes through: a pooled connection, the session cookie
(login required everywhere but the login page and static files), the CSRF token on every
POST, and the security headers. Views read the connection, the user and the audit log
through :func:`conn`, :func:`user` and :func:`audit`."""

from __future__ import annotations

import secrets
from typing import Any

import psycopg
from flask import Blueprint, Response, abort, g, jsonify, redirect, request, url_for
from flask import render_template as flask_render

from mailer.admin_audit import AdminAudit
from mailer.admin_sessions import AdminSession, AdminSessions
from tracking.state import services
from tracking.store import DATABASE_ERRORS

bp = Blueprint(
    "admin",
    __name__,
    url_prefix="/admin",
    static_folder="static",
    static_url_path="/static",
)

SESSION_COOKIE = "mailer_admin_session"
LOGIN_COOKIE = "mailer_admin_login"
#: Endpoints served without a session.
PUBLIC_ENDPOINTS = frozenset({"admin.login", "admin.static"})
#: Largest CSV import (other console forms stay under the app's own cap).
MAX_IMPORT_BYTES = 32 * 1024 * 1024
#: The console's pages: scripts only from /admin/static, no framing, no plugins. Styles
#: and images are open so a message preview (iframe srcdoc inherits this) looks right.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: https: http:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


def conn() -> psycopg.Connection[Any]:
    return g.admin_conn


def user() -> AdminSession:
    return g.admin_session


def client_ip() -> str:
    return request.remote_addr or "unknown"


def audit(action: str, target: str, *, before: Any = None, after: Any = None) -> None:
    """Record a change made by the logged-in user."""
    actor = (user().user_id, user().email)
    AdminAudit(conn()).record(actor, action, target, before=before, after=after, ip=client_ip())


def render(template: str, **context: Any) -> str:
    return flask_render(f"admin/{template}", **context)


def secure_cookies() -> bool:
    return services().settings.base_url.lower().startswith("https://")


def set_cookie(response: Response, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/admin",
        httponly=True,
        samesite="Lax",
        secure=secure_cookies(),
    )


def login_csrf_token() -> str:
    """The login form's token (double-submit: the same random value in a cookie)."""
    if "admin_login_token" not in g:
        g.admin_login_token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)
    return g.admin_login_token


@bp.before_request
def _open() -> Response | None:
    if request.endpoint == "admin.import_suppressions":
        # the file part too: Werkzeug's multipart decoder holds its data to the form cap
        request.max_content_length = request.max_form_memory_size = MAX_IMPORT_BYTES
    if request.endpoint == "admin.static":
        return None
    g.admin_conn_cm = services().store.connection()
    g.admin_conn = g.admin_conn_cm.__enter__()
    if request.endpoint in PUBLIC_ENDPOINTS:
        _check_login_csrf()
        return None
    session = AdminSessions(conn()).get(request.cookies.get(SESSION_COOKIE))
    if session is None:
        return _login_required()
    g.admin_session = session
    if request.method == "POST" and not session.csrf_ok(request.form.get("csrf_token")):
        abort(403, "the form's CSRF token is missing or wrong: reload the page")
    return None


def _check_login_csrf() -> None:
    if request.method != "POST":
        return
    sent, kept = request.form.get("csrf_token"), request.cookies.get(LOGIN_COOKIE)
    if not sent or not kept or not secrets.compare_digest(sent, kept):
        abort(403, "the form's CSRF token is missing or wrong: reload the page")


def _login_required() -> Response:
    if request.path.endswith(".json"):
        return Response('{"error": "login required"}\n', 401, mimetype="application/json")
    if request.method != "GET":
        abort(403, "log in first")
    return redirect(url_for("admin.login", next=request.full_path.rstrip("?")))


@bp.teardown_request
def _close(exc: BaseException | None) -> None:
    cm = g.pop("admin_conn_cm", None)
    if cm is not None:
        g.pop("admin_conn", None)
        cm.__exit__(None, None, None)


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    if request.endpoint != "admin.static":
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.app_context_processor
def _context() -> dict[str, Any]:
    session = g.get("admin_session")
    return {"admin_user": session, "csrf_token": session.csrf_token if session else ""}


def _database_down(exc: Exception) -> tuple[str, int]:
    return render("error.html", status=503, message="The database is unavailable."), 503


for _error in DATABASE_ERRORS:
    bp.register_error_handler(_error, _database_down)


@bp.errorhandler(400)
@bp.errorhandler(403)
@bp.errorhandler(404)
@bp.errorhandler(413)
def _http_error(exc: Any) -> tuple[str, int] | tuple[Response, int]:
    if request.path.endswith(".json"):
        return jsonify({"error": exc.description}), exc.code
    return render("error.html", status=exc.code, message=exc.description), exc.code
