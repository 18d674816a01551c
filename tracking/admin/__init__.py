"""The operator console under ``/admin`` (issue 11): server-rendered Jinja pages, no
front-end build; one small script of ours (``static/console.js``) polls the overview's
counters.

One module per page group (``auth``, ``overview``, ``accounts``, ``account_setup``,
``gmail_accounts``, ``messages``, ``suppressions``, ``campaigns``, ``audit_log``) adds its
routes to :data:`tracking.admin.core.bp`; :mod:`tracking.admin.core` holds what every request goes
through (session, CSRF, security headers). Served with ``mailer web --routes admin|all``
or ``MAILER_WEB_ROUTES``.
"""

from __future__ import annotations

import hashlib

from flask import Flask

from mailer.credentials import secret_key
from tracking.admin import (
    account_setup,
    accounts,
    audit_log,
    auth,
    campaigns,
    gmail_accounts,
    messages,
    overview,
    suppressions,
)
from tracking.admin.core import bp

__all__ = [
    "account_setup",
    "accounts",
    "audit_log",
    "auth",
    "campaigns",
    "gmail_accounts",
    "messages",
    "overview",
    "register",
    "suppressions",
]


def register(app: Flask) -> None:
    """Serve the console on ``app``; every template is autoescaped. Flask's own session
    cookie carries only flash messages (the login is :mod:`mailer.admin_sessions`)."""
    settings = app.extensions["mailer"].settings
    app.jinja_env.autoescape = True
    key = secret_key(settings).encode()
    app.secret_key = app.secret_key or hashlib.sha256(b"mailer admin flash\0" + key).digest()
    app.config.update(
        SESSION_COOKIE_NAME="mailer_admin_flash",
        SESSION_COOKIE_PATH="/admin",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.base_url.lower().startswith("https://"),
    )
    app.register_blueprint(bp)
