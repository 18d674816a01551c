"""``/accounts``: read for any key; pause, resume and limits for the admin scope."""

from __future__ import annotations

from flask import Response, jsonify

from mailer.account_admin import AccountAdmin
from mailer.email_requests import FieldError
from tracking.api.core import bp, checked_id, conn, json_body, scope
from tracking.api.problems import ApiProblem, validation
from tracking.api.serialize import jsonable

_LIMITS = ("daily_limit", "hourly_limit", "min_delay_ms")
MAX_LIMIT = 2**31 - 1


@bp.get("/accounts")
@scope("read")
def list_accounts() -> Response:
    return jsonify({"data": jsonable(AccountAdmin(conn()).list())})


@bp.get("/accounts/<int:account_id>")
@scope("read")
def get_account(account_id: int) -> Response:
    found = AccountAdmin(conn()).list(checked_id(account_id))
    if not found:
        raise ApiProblem("not-found", f"no sender account {account_id}")
    return jsonify(jsonable(found[0]))


@bp.post("/accounts/<int:account_id>/pause")
@scope("admin")
def pause_account(account_id: int) -> Response:
    return _set_paused(account_id, True)


@bp.post("/accounts/<int:account_id>/resume")
@scope("admin")
def resume_account(account_id: int) -> Response:
    return _set_paused(account_id, False)


def _set_paused(account_id: int, paused: bool) -> Response:
    admin = AccountAdmin(conn())
    if not admin.list(checked_id(account_id)):
        raise ApiProblem("not-found", f"no sender account {account_id}")
    if not admin.set_paused(account_id, paused):
        raise ApiProblem(
            "conflict", f"account {account_id} is not {'active' if paused else 'paused'}"
        )
    return jsonify(jsonable(admin.list(account_id)[0]))


@bp.patch("/accounts/<int:account_id>/limits")
@scope("admin")
def set_account_limits(account_id: int) -> Response:
    body = json_body()
    if not isinstance(body, dict) or not body:
        raise validation([FieldError("/", f"an object with some of {', '.join(_LIMITS)}")])
    errors = [FieldError(f"/{k}", "is not a known field") for k in sorted(set(body) - set(_LIMITS))]
    for name in set(body) & set(_LIMITS):
        value = body[name]
        nullable = name == "hourly_limit" and value is None
        if not nullable and (
            isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_LIMIT
        ):
            errors.append(FieldError(f"/{name}", f"must be an integer from 0 to {MAX_LIMIT}"))
    if errors:
        raise validation(errors)
    admin = AccountAdmin(conn())
    if not admin.set_limits(checked_id(account_id), body):
        raise ApiProblem("not-found", f"no sender account {account_id}")
    return jsonify(jsonable(admin.list(account_id)[0]))
