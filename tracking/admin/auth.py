"""Login and logout. A login always starts a new session and ends the one the browser
came with; failures are rate-limited per address and per IP (``login_attempts``)."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Response, make_response, redirect, request, url_for

from mailer.admin_sessions import AdminSessions
from mailer.admin_users import AdminUsers, LoginLimits
from tracking.admin.core import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    bp,
    client_ip,
    conn,
    login_csrf_token,
    render,
    set_cookie,
)
from tracking.state import services


def _limits() -> LoginLimits:
    s = services().settings
    return LoginLimits(
        s.admin_login_max_failures, s.admin_login_max_failures_per_ip, s.admin_login_window_seconds
    )


def safe_next(target: str | None) -> str:
    """Where to go after login: a path inside the console only (no open redirect)."""
    default = url_for("admin.overview")
    if not target or "\\" in target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/admin"):
        return default
    return target


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response:
    error, status = None, 200
    if request.method == "POST":
        email = request.form.get("email", "")
        password = request.form.get("password", "")
        result = AdminUsers(conn()).login(email, password, client_ip(), _limits())
        if result.user is not None:
            return _logged_in(result.user.id)
        error, status = "Wrong address or password.", 401
        if result.refused:
            error, status = "Too many failed logins: wait a few minutes.", 429
    page = render("login.html", error=error, login_token=login_csrf_token())
    response = make_response(page, status)
    set_cookie(response, LOGIN_COOKIE, login_csrf_token(), max_age=3600)
    return response


def _logged_in(user_id: int) -> Response:
    sessions = AdminSessions(conn())
    sessions.end(request.cookies.get(SESSION_COOKIE))  # never keep a pre-login session
    lifetime = services().settings.admin_session_hours * 3600
    token = sessions.start(user_id, client_ip(), lifetime)
    response = redirect(safe_next(request.args.get("next")), 303)
    set_cookie(response, SESSION_COOKIE, token, max_age=int(lifetime))
    response.delete_cookie(LOGIN_COOKIE, path="/admin")
    return response


@bp.post("/logout")
def logout() -> Response:
    AdminSessions(conn()).end(request.cookies.get(SESSION_COOKIE))
    response = redirect(url_for("admin.login"), 303)
    response.delete_cookie(SESSION_COOKIE, path="/admin")
    return response
