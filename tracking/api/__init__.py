"""The HTTP API under ``/api/v1`` (issue 10): JSON in and out, bearer API keys with
scopes, Idempotency-Key on every POST, a per-key rate limit, RFC 9457 problem documents.

One module per resource (``emails``, ``campaigns``, ``templates``, ``suppressions``,
``accounts``, ``webhooks``, ``recurring``, ``contacts``) adds
its routes to :data:`tracking.api.core.bp`; :mod:`tracking.api.core` holds what every
request goes through; the OpenAPI 3.1 document is :mod:`tracking.api.openapi`.
"""

from __future__ import annotations

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from tracking.api import (
    accounts,
    campaigns,
    contacts,
    emails,
    openapi,
    recurring,
    suppressions,
    templates,
    webhooks,
)
from tracking.api.core import bp
from tracking.api.problems import ApiProblem

__all__ = [
    "accounts",
    "campaigns",
    "contacts",
    "emails",
    "openapi",
    "recurring",
    "register",
    "suppressions",
    "templates",
    "webhooks",
]
PREFIX = "/api/"


def register(app: Flask) -> None:
    """Serve the API on ``app``, with problem documents for unknown paths and methods
    under ``/api/`` (errors outside any view)."""
    app.register_blueprint(bp)
    app.register_error_handler(404, _routing_problem)
    app.register_error_handler(405, _routing_problem)


def _routing_problem(exc: HTTPException) -> HTTPException | Response:
    if not request.path.startswith(PREFIX):
        return exc
    slug = "method-not-allowed" if exc.code == 405 else "not-found"
    response = ApiProblem(slug, exc.description or exc.name).response()
    response.status_code = exc.code or 404
    allowed = getattr(exc, "valid_methods", None)
    if allowed:
        response.headers["Allow"] = ", ".join(allowed)
    return response
