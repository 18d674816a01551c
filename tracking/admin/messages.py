"""Messages: search (address, campaign, state, dates, Message-ID; keyset pagination), one
message's page (timeline of attempts and events, bounce reports, the rendered message in a
sandboxed iframe, ``.eml`` download), cancel and retry, one or a filtered set (audited)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Response, abort, flash, redirect, request, url_for

from mailer.console_preview import Preview, render_preview
from mailer.console_queries import BULK_LIMIT, ConsoleQueries, MessageDetail, MessageFilter
from mailer.status import QUEUE_STATUSES
from tracking.admin.core import audit, bp, conn, render
from tracking.admin.paging import MAX_ID, PAGE_SIZE, cursor_arg, date_arg, page_of, text_arg
from tracking.state import services

FILTER_FIELDS = ("to", "campaign", "status", "message_id", "since", "until")


def message_filter(source: Mapping[str, str]) -> MessageFilter:
    status = text_arg("status", source)
    if status is not None and status not in QUEUE_STATUSES:
        abort(400, f"status must be one of {', '.join(QUEUE_STATUSES)}")
    return MessageFilter(
        to=text_arg("to", source),
        campaign=text_arg("campaign", source),
        status=status,
        message_id=text_arg("message_id", source),
        since=date_arg("since", source),
        until=date_arg("until", source),
    )


@bp.get("/messages")
def messages() -> str:
    search = message_filter(request.args)
    found = ConsoleQueries(conn()).search(search, cursor_arg(), PAGE_SIZE + 1)
    rows, next_cursor = page_of(found, lambda r: r["id"])
    return render(
        "messages.html",
        rows=rows,
        args={k: request.args.get(k, "") for k in FILTER_FIELDS},
        next_cursor=next_cursor,
        statuses=QUEUE_STATUSES,
        filtered=not search.is_empty(),
        bulk_limit=BULK_LIMIT,
    )


def _detail(queue_id: int) -> MessageDetail:
    detail = ConsoleQueries(conn()).message(queue_id) if queue_id <= MAX_ID else None
    if detail is None:
        abort(404, "no such message")
    return detail


def _preview(row: dict[str, Any]) -> Preview:
    account = ConsoleQueries(conn()).preview_account(row)
    return render_preview(row, account, services().settings.max_message_bytes)


@bp.get("/messages/<int:queue_id>")
def message(queue_id: int) -> str:
    detail = _detail(queue_id)
    return render("message.html", d=detail, m=detail.row, preview=_preview(detail.row))


@bp.get("/messages/<int:queue_id>.eml")
def message_eml(queue_id: int) -> Response:
    preview = _preview(_detail(queue_id).row)
    if preview.eml is None:
        abort(404, f"this message cannot be rendered: {preview.error}")
    return Response(
        preview.eml,
        mimetype="message/rfc822",
        headers={"Content-Disposition": f'attachment; filename="message-{queue_id}.eml"'},
    )


@bp.post("/messages/<int:queue_id>/<any(retry, cancel):action>")
def message_action(queue_id: int, action: str) -> Response:
    row = _detail(queue_id).row
    changed = _apply(action, [queue_id])
    if changed:
        audit(
            f"message.{action}",
            f"message {queue_id} <{row['to_address']}>",
            before={"status": row["status"]},
            after={"status": _new_status(action)},
        )
        flash(f"Message {queue_id}: {action} done.")
    else:
        done = {"retry": "retried", "cancel": "cancelled"}.get(action, f"{action}ed")
        flash(f"Message {queue_id} is {row['status']}: it cannot be {done} now.")
    return redirect(url_for("admin.message", queue_id=queue_id), 303)


@bp.post("/messages/bulk")
def bulk_action() -> Response:
    action = request.form.get("action")
    if action not in ("retry", "cancel"):
        abort(400, "action must be retry or cancel")
    search = message_filter(request.form)
    if search.is_empty():
        abort(400, "filter the messages first: a bulk action needs at least one filter")
    status = "failed" if action == "retry" else "queued"
    changed: list[int] = []
    if search.status in (None, status):  # a filter on another state matches none
        narrowed = MessageFilter(**(search.params() | {"status": status}))
        rows = ConsoleQueries(conn()).search(narrowed, None, BULK_LIMIT)
        changed = _apply(action, [r["id"] for r in rows])
    audit(
        f"messages.bulk_{action}",
        f"{len(changed)} messages",
        before={"filter": search.params(), "status": status},
        after={"status": _new_status(action), "ids": changed},
    )
    flash(f"{action}: {len(changed)} messages changed.")
    args = {k: request.form.get(k, "") for k in FILTER_FIELDS}
    return redirect(url_for("admin.messages", **{k: v for k, v in args.items() if v}), 303)


def _apply(action: str, ids: list[int]) -> list[int]:
    queries = ConsoleQueries(conn())
    return queries.retry(ids) if action == "retry" else queries.cancel(ids)


def _new_status(action: str) -> str:
    return "queued" if action == "retry" else "cancelled"
