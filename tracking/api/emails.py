"""``/emails``: queue one message or a batch, read one or a page, cancel and retry."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Response, jsonify, request

from mailer.email_requests import FieldError, check_email
from mailer.email_submissions import EmailSubmissions, QueuedEmailRef
from tracking.api.core import bp, checked_id, conn, json_body, key, respond_in_transaction, scope
from tracking.api.problems import ApiProblem, validation
from tracking.api.serialize import jsonable
from tracking.state import services

MAX_BATCH = 500
STATUSES = ("queued", "sending", "sent", "failed", "suppressed", "cancelled")
_MODES = ("strict", "permissive")


def _submissions() -> EmailSubmissions:
    return EmailSubmissions(conn(), key())


def _check(body: object, base: str) -> tuple[dict[str, Any] | None, list[FieldError]]:
    reject = services().settings.reject_special_use_domains
    return check_email(body, base=base, reject_special_use=reject)


def _ref(ref: QueuedEmailRef) -> dict[str, Any]:
    return {"id": ref.id, "message_id": ref.message_id, "status": ref.status}


@bp.post("/emails")
@scope("send")
def send_one() -> Response:
    body = json_body()
    if isinstance(body, dict) and "recurrence" in body:
        # imported here: tracking.api.recurring imports this module
        from tracking.api.recurring import create_recurring_email

        return create_recurring_email(body)
    row, errors = _check(body, "")
    if row is None:
        raise validation(errors)
    submissions = _submissions()
    errors = submissions.resolve([row], [""])[0] or submissions.template_errors(row, "")
    if errors:
        raise validation(errors)
    return respond_in_transaction(lambda: (_ref(submissions.queue([row])[0]), 202))


@bp.post("/emails/batch")
@scope("send")
def send_batch() -> Response:
    body = json_body()
    items, mode = _batch_items(body)
    rows: list[dict[str, Any] | None] = []
    errors: list[list[FieldError]] = []
    for index, item in enumerate(items):
        row, found = _check(item, f"/emails/{index}")
        rows.append(row)
        errors.append(found)
    valid = [(i, r) for i, r in enumerate(rows) if r is not None]
    submissions = _submissions()
    resolved = submissions.resolve([r for _, r in valid], [f"/emails/{i}" for i, _ in valid])
    for (index, row), found in zip(valid, resolved, strict=True):
        errors[index] = found or submissions.template_errors(row, f"/emails/{index}")
    refuse_if_strict(errors, mode, "emails", "none was queued")
    to_queue = [(i, r) for i, r in valid if not errors[i]]

    def queue() -> tuple[dict[str, Any], int]:
        queued = dict(
            zip(
                (i for i, _ in to_queue),
                submissions.queue([r for _, r in to_queue]),
                strict=True,
            )
        )
        results = [item_result(i, queued.get(i), errors[i]) for i in range(len(items))]
        return {"mode": mode, "queued": len(queued), "results": results}, 202

    return respond_in_transaction(queue)


def refuse_if_strict(errors: list[list[FieldError]], mode: str, noun: str, outcome: str) -> None:
    """In strict mode, a 422 listing every item's errors when any item has one."""
    failed = [e for found in errors for e in found]
    if failed and mode == "strict":
        raise validation(
            failed,
            f"{len([e for e in errors if e])} of {len(errors)} {noun} "
            f"are invalid; {outcome} (strict mode)",
        )


def item_result(
    index: int, queued: QueuedEmailRef | None, errors: list[FieldError]
) -> dict[str, Any]:
    if queued is not None:
        return {"index": index} | _ref(queued)
    error = {"detail": errors[0].detail, "errors": [e.__dict__ for e in errors]}
    return {"index": index, "error": error}


def _batch_items(body: object) -> tuple[list[Any], str]:
    if not isinstance(body, dict) or not isinstance(body.get("emails"), list):
        raise validation([FieldError("/emails", "is required: an array of email objects")])
    unknown = sorted(set(body) - {"emails", "mode"})
    if unknown:
        raise validation([FieldError(f"/{unknown[0]}", "is not a known field")])
    mode = body.get("mode") or request.headers.get("X-Batch-Mode") or "strict"
    if mode not in _MODES:
        raise validation([FieldError("/mode", "must be 'strict' or 'permissive'")])
    items = body["emails"]
    if not 1 <= len(items) <= MAX_BATCH:
        raise validation([FieldError("/emails", f"must hold 1 to {MAX_BATCH} emails")])
    return items, mode


@bp.get("/emails/<int:email_id>")
@scope("read")
def get_email(email_id: int) -> Response:
    row = _submissions().get(checked_id(email_id))
    if row is None:
        raise ApiProblem("not-found", f"no email {email_id}")
    return jsonify(jsonable(row))


@bp.get("/emails")
@scope("read")
def list_emails() -> Response:
    args = request.args
    status = args.get("status") or None
    if status is not None and status not in STATUSES:
        raise validation([FieldError("/status", f"must be one of {', '.join(STATUSES)}")])
    page = _submissions().list(
        status=status,
        campaign=args.get("campaign") or None,
        to=args.get("to") or None,
        since=_since(args.get("since")),
        cursor=int_arg("cursor", 1, 2**63 - 1),
        limit=int_arg("limit", 1, 200) or 50,
    )
    return jsonify({"data": jsonable(page.items), "next_cursor": page.next_cursor})


def _since(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None or not 1970 <= moment.year <= 9999:
        raise validation([FieldError("/since", "must be an ISO 8601 time with a time zone")])
    return moment


def int_arg(name: str, low: int, high: int) -> int | None:
    raw = request.args.get(name)
    if not raw:
        return None
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise validation([FieldError(f"/{name}", f"must be an integer from {low} to {high}")])
    return int(raw)


@bp.post("/emails/<int:email_id>/cancel")
@scope("send")
def cancel_email(email_id: int) -> Response:
    return _transition(email_id, _submissions().cancel, "queued")


@bp.post("/emails/<int:email_id>/retry")
@scope("send")
def retry_email(email_id: int) -> Response:
    return _transition(email_id, _submissions().retry, "failed")


def _transition(email_id: int, change: Any, needed: str) -> Response:
    changed = change(checked_id(email_id))
    if changed is not None:
        return jsonify(_ref(changed))
    if _submissions().get(email_id) is None:
        raise ApiProblem("not-found", f"no email {email_id}")
    raise ApiProblem("conflict", f"email {email_id} is not {needed}")
