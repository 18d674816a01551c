"""``/recurring``: recurring sends, a message (or a campaign) queued on a cron expression in
a time zone (see :mod:`mailer.recurring`); also the ``recurrence`` shorthands of
``POST /emails`` and ``POST /campaigns``. Create, list, read (with the latest occurrences), pause,
resume and delete; ``{ref}`` is a schedule's id or name. Occurrences are queued by the
scheduler (``mailer recurring run``), not by these routes."""

from __future__ import annotations

import secrets
from dataclasses import asdict
from typing import Any

from flask import Response, jsonify

from mailer.email_requests import FieldError
from mailer.recurring import (
    RecurringInvalid,
    RecurringNameTaken,
    RecurringSend,
    RecurringSends,
)
from tracking.api.core import bp, conn, found, json_body, key, respond_in_transaction, scope
from tracking.api.emails import int_arg
from tracking.api.problems import ApiProblem, validation
from tracking.api.serialize import jsonable
from tracking.state import services

#: What ``recurrence`` may hold on ``POST /emails`` and ``POST /campaigns``.
RECURRENCE_FIELDS = frozenset({"name", "cron", "timezone", "enabled"})


def _schedules() -> RecurringSends:
    reject = services().settings.reject_special_use_domains
    return RecurringSends(conn(), key(), reject_special_use=reject)


def _out(schedule: RecurringSend, *, runs: bool = False) -> dict[str, Any]:
    body = asdict(schedule)
    if not runs:
        body.pop("runs")
    return jsonable(body)


def _found(schedule: RecurringSend | None, ref: str) -> RecurringSend:
    return found(schedule, f"no recurring send {ref!r}")


@bp.post("/recurring")
@scope("send")
def create_recurring() -> Response:
    return _create(json_body())


def _create(body: object, pointers: dict[str, str] | None = None) -> Response:
    """201 with the schedule made of ``body``; error pointers renamed by ``pointers``
    (the shorthands' fields are not where ``/recurring`` has them)."""

    def create() -> tuple[dict[str, Any], int]:
        try:
            return _out(_schedules().create(body)), 201
        except RecurringInvalid as exc:
            raise validation([_moved(e, pointers or {}) for e in exc.errors]) from None
        except RecurringNameTaken as exc:
            raise ApiProblem("conflict", str(exc)) from None

    return respond_in_transaction(create)


def _moved(error: FieldError, pointers: dict[str, str]) -> FieldError:
    for old, new in pointers.items():
        if error.pointer == old or error.pointer.startswith(old + "/"):
            return FieldError(new + error.pointer[len(old) :], error.detail)
    return error


def _recurrence(body: dict[str, Any]) -> dict[str, Any]:
    """The schedule fields of a shorthand's ``recurrence`` object ({cron, timezone,
    name?, enabled?})."""
    recurrence = body.get("recurrence")
    if not isinstance(recurrence, dict):
        raise validation([FieldError("/recurrence", "must be an object with cron and timezone")])
    if unknown := sorted(set(recurrence) - RECURRENCE_FIELDS):
        raise validation([FieldError(f"/recurrence/{k}", "is not a known field") for k in unknown])
    return dict(recurrence)


def create_recurring_campaign(body: dict[str, Any]) -> Response:
    """``POST /campaigns`` with ``recurrence``: the recurring send (named as the campaign)
    that creates one such campaign per occurrence."""
    schedule = _recurrence(body)
    campaign = {k: v for k, v in body.items() if k != "recurrence"}
    schedule.setdefault("name", campaign.get("name"))
    definition = schedule | {"kind": "campaign", "campaign": campaign}
    return _create(definition, {"/campaign": "", **_RECURRENCE_POINTERS})


def create_recurring_email(body: dict[str, Any]) -> Response:
    """``POST /emails`` with ``recurrence``: the recurring send of that email (named by
    ``recurrence.name``, else ``email-<random>``)."""
    schedule = _recurrence(body)
    email = {k: v for k, v in body.items() if k != "recurrence"}
    schedule.setdefault("name", f"email-{secrets.token_hex(6)}")
    definition = schedule | {"kind": "email", "email": email}
    return _create(definition, {"/email": "", **_RECURRENCE_POINTERS})


#: Where a shorthand's schedule fields are in its body.
_RECURRENCE_POINTERS = {f"/{field}": f"/recurrence/{field}" for field in RECURRENCE_FIELDS}


@bp.get("/recurring")
@scope("read")
def list_recurring() -> Response:
    limit = int_arg("limit", 1, 200) or 50
    page = _schedules().list(cursor=int_arg("cursor", 1, 2**63 - 1), limit=limit)
    more = len(page) == limit
    return jsonify({"data": [_out(s) for s in page], "next_cursor": page[-1].id if more else None})


@bp.get("/recurring/<ref>")
@scope("read")
def get_recurring(ref: str) -> Response:
    return jsonify(_out(_found(_schedules().get(ref), ref), runs=True))


@bp.delete("/recurring/<ref>")
@scope("send")
def delete_recurring(ref: str) -> tuple[str, int]:
    if not _schedules().remove(ref):
        raise ApiProblem("not-found", f"no recurring send {ref!r}")
    return "", 204


@bp.post("/recurring/<ref>/pause")
@scope("send")
def pause_recurring(ref: str) -> Response:
    return jsonify(_out(_found(_schedules().pause(ref), ref)))


@bp.post("/recurring/<ref>/resume")
@scope("send")
def resume_recurring(ref: str) -> Response:
    return jsonify(_out(_found(_schedules().resume(ref), ref)))
