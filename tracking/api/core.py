"""What every API request goes through, in order: a pooled connection, the bearer key,
the route's scope, the per-key rate limit, the body checks (media type, size, JSON) and,
on a POST, the Idempotency-Key. Views declare their scope with :func:`scope` and read
the key and connection through :func:`key` and :func:`conn`."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from flask import Blueprint, Response, current_app, g, jsonify, request
from psycopg_pool import PoolTimeout
from werkzeug.exceptions import HTTPException

from mailer.api_keys import ApiKey, ApiKeyManager
from mailer.email_requests import FieldError, nul_pointer
from mailer.idempotency import MAX_KEY_LENGTH, Claim, IdempotencyKeys, request_hash
from mailer.rate_limits import count_request, prune
from tracking.api.problems import ApiProblem, validation
from tracking.state import services
from tracking.store import DATABASE_ERRORS

#: The database is down or too slow: 503, retry (any other database error is a bug: 500).
OUTAGE_ERRORS: tuple[type[Exception], ...] = (psycopg.OperationalError, PoolTimeout)

bp = Blueprint("api", __name__, url_prefix="/api/v1")

F = TypeVar("F", bound=Callable[..., Any])

#: Largest body of each kind of request (413 above).
MAX_JSON_BYTES = 2 * 1024 * 1024
MAX_BATCH_BYTES = 16 * 1024 * 1024
MAX_IMPORT_BYTES = 256 * 1024 * 1024
#: Routes whose body is CSV, read as a stream (no Idempotency-Key: it would need the whole
#: body; a campaign upload skips addresses already in the campaign, so a retry is safe).
CSV_ENDPOINTS = frozenset({"api.import_suppressions", "api.upload_recipients"})
#: Routes anyone may read (the API's own description).
PUBLIC_ENDPOINTS = frozenset({"api.openapi_document"})
_IDEMPOTENCY_KEY = re.compile(rf"[!-~]{{1,{MAX_KEY_LENGTH}}}")
#: The largest id PostgreSQL's bigint holds: a larger one cannot exist.
MAX_ID = 2**63 - 1


def scope(name: str) -> Callable[[F], F]:
    """Declare the scope (``read``, ``send``, ``admin``) a view requires."""

    def mark(view: F) -> F:
        view.api_scope = name  # type: ignore[attr-defined]
        return view

    return mark


def key() -> ApiKey:
    return g.api_key


def conn() -> psycopg.Connection[Any]:
    return g.api_conn


def json_body() -> Any:
    """The request's JSON document (400 when it does not parse)."""
    raw = request.get_data(cache=True) or b""
    # A NUL or a lone surrogate can only come from a \u escape, raw surrogate bytes (UTF-8
    # lead byte 0xED) or a UTF-16/32 body (NUL bytes): plain bodies skip both walks.
    suspect = b"\\u" in raw or b"\xed" in raw or b"\x00" in raw
    try:
        document = json.loads(raw, parse_constant=_no_constant)
        if suspect:
            json.dumps(document, ensure_ascii=False).encode("utf-8")  # lone surrogates
    except (ValueError, RecursionError):
        raise ApiProblem("malformed-request", "the body is not valid JSON") from None
    except UnicodeEncodeError:
        raise ApiProblem("malformed-request", "the body holds an unpaired surrogate") from None
    if suspect and (pointer := nul_pointer(document)) is not None:
        raise validation([FieldError(pointer, "contains a NUL character")])
    return document


def respond_in_transaction(work: Callable[[], tuple[Any, int]]) -> Response:
    """Run ``work`` (the row changes; it returns the JSON body and status) and, when the
    request carries an Idempotency-Key, record the response in the same transaction: a
    crash can never leave rows queued under a key that has no answer to replay."""
    pending = g.get("api_idempotency")
    with conn().transaction():
        body, status = work()
        response = jsonify(body)
        response.status_code = status
        if pending is not None:
            keys, idem, claimed_at = pending
            if not keys.complete(idem, claimed_at, status, response.get_data(as_text=True)):
                raise _claim_lost()  # rolls this request's changes back
    g.pop("api_idempotency", None)
    return response


def _claim_lost() -> ApiProblem:
    """This request ran so long its Idempotency-Key was taken over as stale."""
    return ApiProblem(
        "idempotency-key-in-use",
        "this request's Idempotency-Key was taken over by a retry; nothing was changed",
        headers={"Retry-After": "1"},
    )


def _no_constant(name: str) -> None:
    """NaN and Infinity are not JSON (RFC 8259), and PostgreSQL's jsonb refuses them."""
    raise ValueError(f"{name} is not JSON")


T = TypeVar("T")


def found(value: T | None, detail: str) -> T:
    """``value``, or a 404 problem saying ``detail`` when it is None."""
    if value is None:
        raise ApiProblem("not-found", detail)
    return value


def checked_id(value: int) -> int:
    if value > MAX_ID:
        raise ApiProblem("not-found", "no such resource")
    return value


@bp.before_request
def _open() -> Response | None:
    request.max_content_length = _size_cap()
    if "\0" in request.path or any("\0" in v for v in request.args.values()):
        raise ApiProblem("malformed-request", "the path or query holds a NUL character")
    endpoint = request.endpoint or ""
    view = current_app.view_functions.get(endpoint)
    if endpoint in PUBLIC_ENDPOINTS or view is None:
        return None
    g.api_conn_cm = services().store.connection()
    g.api_conn = g.api_conn_cm.__enter__()
    g.api_key = _authenticate()
    _rate_limit()
    required = getattr(view, "api_scope", "admin")
    if not g.api_key.allows(required):
        raise ApiProblem("forbidden", f"this route needs the {required!r} scope")
    _check_media_type()
    return _idempotency()


def _size_cap() -> int:
    if request.endpoint == "api.send_batch":
        return MAX_BATCH_BYTES
    if request.endpoint == "api.import_suppressions":
        return MAX_IMPORT_BYTES
    if request.endpoint == "api.upload_recipients":
        return services().settings.api_csv_max_bytes
    return MAX_JSON_BYTES


def _authenticate() -> ApiKey:
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    found = None
    if scheme.lower() == "bearer" and secret.strip():
        found = ApiKeyManager(conn()).verify(secret.strip())
    if found is None:
        raise ApiProblem(
            "unauthorized",
            "send a valid key as 'Authorization: Bearer KEY'",
            headers={"WWW-Authenticate": 'Bearer realm="mailer"'},
        )
    return found


def _rate_limit() -> None:
    limit = services().settings.api_rate_limit_per_minute
    decision = count_request(conn(), key().id, limit)
    g.api_rate_headers = decision.headers()
    if decision.first:
        prune(conn())
    if not decision.allowed:
        raise ApiProblem(
            "rate-limited",
            f"this key may make {limit} requests a minute",
            headers=decision.headers(),
        )


def _check_media_type() -> None:
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    if request.endpoint in CSV_ENDPOINTS:
        accepted = ("text/csv", "text/plain")
    else:
        accepted = ("application/json",)
    if not request.content_length and not request.headers.get("Transfer-Encoding"):
        return  # an empty body is fine where the route takes none
    if request.mimetype not in accepted:
        raise ApiProblem(
            "unsupported-media-type",
            f"send the body as {' or '.join(accepted)}",
        )


def _idempotency() -> Response | None:
    idem = request.headers.get("Idempotency-Key")
    if request.method != "POST" or idem is None or request.endpoint in CSV_ENDPOINTS:
        return None
    if not _IDEMPOTENCY_KEY.fullmatch(idem):
        raise ApiProblem(
            "malformed-request",
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters",
        )
    stale = services().settings.api_idempotency_stale_seconds
    keys = IdempotencyKeys(conn(), key().id, stale_seconds=stale)
    result = keys.claim(idem, request_hash(request.method, request.path, request.get_data()))
    if result.claim is Claim.MISMATCH:
        raise ApiProblem(
            "idempotency-key-reused", "this Idempotency-Key was used for a different request"
        )
    if result.claim is Claim.IN_PROGRESS:
        raise ApiProblem(
            "idempotency-key-in-use",
            "a request with this Idempotency-Key is still running; retry later",
            headers={"Retry-After": "1"},
        )
    if result.claim is Claim.REPLAY:
        assert result.status_code is not None
        mimetype = "application/problem+json" if result.status_code >= 400 else None
        response = Response(
            result.body, status=result.status_code, mimetype=mimetype or "application/json"
        )
        response.headers["Idempotent-Replayed"] = "true"
        return response
    g.api_idempotency = (keys, idem, result.claimed_at)
    return None


@bp.after_request
def _finish(response: Response) -> Response:
    response.headers.update(getattr(g, "api_rate_headers", {}))
    pending = g.pop("api_idempotency", None)
    if pending is not None:
        keys, idem, claimed_at = pending
        try:
            if response.status_code >= 500:
                keys.release(idem, claimed_at)
            else:
                body = response.get_data(as_text=True)
                keys.complete(idem, claimed_at, response.status_code, body)
        except DATABASE_ERRORS:
            current_app.logger.exception("could not record Idempotency-Key %r", idem)
    return response


@bp.teardown_request
def _close(exc: BaseException | None) -> None:
    pending = g.pop("api_idempotency", None)
    if pending is not None:  # the view raised: let a retry run again
        keys, idem, claimed_at = pending
        try:
            keys.release(idem, claimed_at)
        except DATABASE_ERRORS:
            current_app.logger.exception("could not release Idempotency-Key %r", idem)
    cm = g.pop("api_conn_cm", None)
    if cm is not None:
        cm.__exit__(None, None, None)


@bp.errorhandler(ApiProblem)
def _problem(problem: ApiProblem) -> Response:
    response = problem.response()
    return response


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    slug = {
        400: "malformed-request",
        404: "not-found",
        405: "method-not-allowed",
        413: "payload-too-large",
        415: "unsupported-media-type",
    }.get(exc.code or 500, "malformed-request" if (exc.code or 500) < 500 else "internal-error")
    problem = ApiProblem(slug, exc.description or exc.name)
    response = problem.response()
    response.status_code = exc.code or 500
    return response


@bp.errorhandler(Exception)
def _unexpected(exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        return _http_error(exc)
    if isinstance(exc, OUTAGE_ERRORS):
        return database_problem(exc)
    current_app.logger.exception("unexpected error in %s %s", request.method, request.path)
    return ApiProblem("internal-error", "an unexpected error; it has been logged").response()


def database_problem(exc: Exception) -> Response:
    current_app.logger.warning("API request failed on the database: %s", exc)
    return ApiProblem("database-unavailable", "the database did not answer; retry").response()
