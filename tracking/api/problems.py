"""RFC 9457 problem details: every API error is ``application/problem+json`` with a
stable ``type`` URI (``/api/v1/problems/<slug>``), a ``title``, the HTTP ``status``, a
human ``detail`` and, for validation, ``errors``: one ``{pointer, detail}`` per field."""

from __future__ import annotations

import json
from typing import Any

from flask import Response

from mailer.email_requests import FieldError

PROBLEM_MIMETYPE = "application/problem+json"
TYPE_BASE = "/api/v1/problems/"

#: slug -> (status, title); the slugs are the stable part of the contract.
PROBLEMS: dict[str, tuple[int, str]] = {
    "malformed-request": (400, "Malformed request"),
    "unauthorized": (401, "Missing or unknown API key"),
    "forbidden": (403, "The API key's scope does not allow this"),
    "not-found": (404, "Not found"),
    "method-not-allowed": (405, "Method not allowed"),
    "conflict": (409, "Conflict"),
    "idempotency-key-reused": (409, "Idempotency-Key reused with a different request"),
    "idempotency-key-in-use": (409, "A request with this Idempotency-Key is still running"),
    "payload-too-large": (413, "Request body too large"),
    "unsupported-media-type": (415, "Unsupported media type"),
    "validation-failed": (422, "Validation failed"),
    "rate-limited": (429, "Too many requests"),
    "internal-error": (500, "Internal error"),
    "database-unavailable": (503, "Database unavailable"),
}


class ApiProblem(Exception):
    """Raise from a view to answer with a problem document."""

    def __init__(
        self,
        slug: str,
        detail: str,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.slug = slug
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}

    @property
    def status(self) -> int:
        return PROBLEMS[self.slug][0]

    def document(self) -> dict[str, Any]:
        status, title = PROBLEMS[self.slug]
        doc: dict[str, Any] = {
            "type": TYPE_BASE + self.slug,
            "title": title,
            "status": status,
            "detail": self.detail,
        }
        if self.errors is not None:
            doc["errors"] = [{"pointer": e.pointer, "detail": e.detail} for e in self.errors]
        return doc

    def response(self) -> Response:
        body = json.dumps(self.document())
        response = Response(body, status=self.status, mimetype=PROBLEM_MIMETYPE)
        response.headers.update(self.headers)
        return response


def validation(errors: list[FieldError], detail: str | None = None) -> ApiProblem:
    """A 422 listing ``errors``."""
    first = errors[0]
    summary = detail or f"{first.pointer} {first.detail}" + (
        f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    )
    return ApiProblem("validation-failed", summary, errors=errors)
