"""The tracking web app (Flask): opens, clicks, unsubscribes, SES webhooks, health.

Routes (DESIGN.md): ``GET /track/open/<token>``, ``GET /track/click/<token>``,
``GET|POST /unsubscribe/<token>``, ``POST /webhooks/ses``, ``GET /healthz``,
``GET /readyz``, ``GET /metrics``; the HTTP API under ``/api/v1`` (:mod:`tracking.api`);
and the operator console under ``/admin`` (:mod:`tracking.admin`). Production serves it
with gunicorn (``gunicorn tracking.wsgi:app``), ``mailer web`` with werkzeug's server.
``MAILER_WEB_ROUTES`` (or config ``WEB_ROUTES``) chooses what one process serves:
``tracking`` (the public routes), ``api``, ``admin`` (the console, :mod:`tracking.admin`) or
``all`` (the default); health, readiness and metrics are always there.

``create_app`` reads ``SETTINGS`` (a :class:`mailer.config.Settings`, else the
environment) and ``DATABASE_URL`` from its config; tests may also inject
``SNS_CERT_FETCHER`` (url -> PEM bytes), ``SNS_CONFIRM`` (url -> None) and ``CLOCK``.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Flask
from psycopg.types.json import Jsonb
from werkzeug.middleware.proxy_fix import ProxyFix

from mailer.config import Settings, load_settings
from mailer.credentials import secret_key
from mailer.db import resolve_database_url
from mailer.tokens import TokenCodec
from tracking import engagement, health, unsubscribe, webhooks
from tracking.events import EventWriter
from tracking.metrics import make_registry
from tracking.request_limits import BoundedRequest
from tracking.sns import CertificateCache, SnsVerifier, https_get
from tracking.state import Services
from tracking.store import Store

#: What ``MAILER_WEB_ROUTES`` (or ``mailer web --routes``) may ask for. Health, readiness
#: and metrics are served in every case.
ROUTE_SETS = ("tracking", "api", "admin", "all")

#: Largest request body accepted (SNS messages are at most 256 KiB).
MAX_CONTENT_LENGTH = 512 * 1024


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """The Flask application; ``test_config`` overrides configuration."""
    app = Flask(__name__, static_folder=None)
    app.request_class = BoundedRequest
    app.config.update(MAX_CONTENT_LENGTH=MAX_CONTENT_LENGTH, MAX_FORM_MEMORY_SIZE=64 * 1024)
    app.config.update(test_config or {})
    settings = app.config.get("SETTINGS") or load_settings()
    url = app.config.get("DATABASE_URL") or resolve_database_url(settings)
    app.extensions["mailer"] = _services(app.config, settings, url)
    if settings.trusted_proxies > 0:
        hops = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    routes = app.config.get("WEB_ROUTES") or settings.web_routes
    if routes not in ROUTE_SETS:
        raise ValueError(f"MAILER_WEB_ROUTES must be one of {', '.join(ROUTE_SETS)}")
    if routes in ("tracking", "all"):
        for module in (engagement, unsubscribe, webhooks):
            app.register_blueprint(module.bp)
    if routes in ("api", "all"):
        from tracking import api

        api.register(app)
    if routes in ("admin", "all"):
        from tracking import admin

        admin.register(app)
    app.register_blueprint(health.bp)
    return app


def close_app(app: Flask) -> None:
    """Write pending events and close the app's database pool."""
    app.extensions["mailer"].close()


def _services(config: dict[str, Any], settings: Settings, url: str) -> Services:
    store = Store(url, timeout=settings.tracking_db_timeout_seconds)
    writer = EventWriter(
        lambda batch: store.fetch_all(
            "insert_events",
            {"events": Jsonb(batch), "burst_seconds": settings.scanner_burst_seconds},
        )
    )
    clock = config.get("CLOCK") or time.time
    certificates = CertificateCache(config.get("SNS_CERT_FETCHER") or https_get)
    return Services(
        settings=settings,
        codec=TokenCodec(secret_key(settings)),
        store=store,
        writer=writer,
        verifier=SnsVerifier(
            certificates, max_age_seconds=settings.sns_max_age_seconds, clock=clock
        ),
        confirm_subscription=config.get("SNS_CONFIRM") or https_get,
        clock=clock,
        registry=make_registry(store, writer),
    )
