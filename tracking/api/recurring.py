"""``/recurring``: recurring sends, a message queued on a cron expression in a time zone
(see :mod:`mailer.recurring`). Create, list, read (with the latest occurrences), pause,
resume and delete; ``{ref}`` is a schedule's id or name. Occurrences are queued by the
scheduler (``mailer recurring run``), not by these routes."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import Response, jsonify

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
    body = json_body()

    def create() -> tuple[dict[str, Any], int]:
        try:
            return _out(_schedules().create(body)), 201
        except RecurringInvalid as exc:
            raise validation(exc.errors) from None
        except RecurringNameTaken as exc:
            raise ApiProblem("conflict", str(exc)) from None

    return respond_in_transaction(create)


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
