"""``/campaigns``: create a campaign with its first recipients (up to the batch cap, in
one statement), add recipients from a CSV upload of any size (streamed into the queue
with COPY), read its figures, list campaigns, and pause, resume or cancel one."""

from __future__ import annotations

import io
from dataclasses import asdict
from typing import Any

from flask import Response, jsonify, request

from mailer.campaign_csv import CsvHeaderError
from mailer.campaign_requests import check_campaign
from mailer.campaign_stats import campaign_summary
from mailer.campaigns import (
    Campaign,
    CampaignConflict,
    CampaignManager,
    CampaignNotFound,
    CsvRejected,
    CsvReport,
)
from mailer.email_requests import FieldError
from mailer.email_submissions import EmailSubmissions
from tracking.api.core import bp, conn, json_body, key, respond_in_transaction, scope
from tracking.api.emails import int_arg, item_result, refuse_if_strict
from tracking.api.problems import ApiProblem, validation
from tracking.api.recurring import create_recurring_campaign
from tracking.api.serialize import jsonable
from tracking.state import services


def _manager() -> CampaignManager:
    return CampaignManager(conn(), key())


def _reject_special_use() -> bool:
    return services().settings.reject_special_use_domains


def campaign_json(campaign: Campaign) -> dict[str, Any]:
    fields = asdict(campaign)
    fields.pop("message")
    fields.pop("id")
    return jsonable(fields)


@bp.post("/campaigns")
@scope("send")
def create_campaign() -> Response:
    """A campaign with its first recipients; with ``recurrence`` (cron, timezone), the
    recurring send that creates one such campaign per occurrence instead."""
    body = json_body()
    if isinstance(body, dict) and "recurrence" in body:
        return create_recurring_campaign(body)
    submissions = EmailSubmissions(conn(), key())
    found, errors = check_campaign(
        body,
        submissions,
        mode=request.headers.get("X-Batch-Mode"),
        reject_special_use=_reject_special_use(),
    )
    if found is None:
        raise validation(errors)
    rows = found.rows(found.name)
    refuse_if_strict(found.recipient_errors, found.mode, "recipients", "nothing was created")

    def create() -> tuple[dict[str, Any], int]:
        campaign = _call(lambda: _manager().create(found.name, found.message, **found.tracking))
        valid = [(i, r) for i, r in enumerate(rows) if r is not None]
        queued = dict(
            zip((i for i, _ in valid), submissions.queue([r for _, r in valid]), strict=True)
        )
        results = [
            item_result(i, queued.get(i), found.recipient_errors[i]) for i in range(len(rows))
        ]
        out = {"campaign": campaign_json(campaign), "mode": found.mode, "queued": len(queued)}
        return out | {"results": results}, 201

    return respond_in_transaction(create)


@bp.post("/campaigns/<name>/recipients")
@scope("send")
def upload_recipients(name: str) -> Response:
    """A CSV body (header row: email, name, variables...), read as a stream."""
    strict = (request.args.get("strict") or "false").lower()
    if strict not in ("true", "false"):
        raise validation([FieldError("/strict", "must be true or false")])
    lines = io.TextIOWrapper(request.stream, encoding="utf-8-sig", errors="replace", newline="")

    def upload() -> tuple[dict[str, Any], int]:
        report = _call(
            lambda: _manager().add_csv(
                name,
                lines,
                strict=strict == "true",
                reject_special_use=_reject_special_use(),
                timeout_seconds=services().settings.api_csv_timeout_seconds,
            )
        )
        return _report_json(report), 202

    return respond_in_transaction(upload)


def _report_json(report: CsvReport) -> dict[str, Any]:
    out = asdict(report)
    out["problems"] = [asdict(p) for p in report.problems]
    return out


@bp.get("/campaigns")
@scope("read")
def list_campaigns() -> Response:
    page = _manager().list(
        cursor=int_arg("cursor", 1, 2**63 - 1), limit=int_arg("limit", 1, 200) or 50
    )
    data = [campaign_json(c) | {"id": c.id} for c in page.items]
    return jsonify({"data": data, "next_cursor": page.next_cursor})


@bp.get("/campaigns/<name>")
@scope("read")
def get_campaign(name: str) -> Response:
    campaign = _manager().get(name)
    if campaign is None:
        raise ApiProblem("not-found", f"no campaign {name!r}")
    summary = campaign_summary(conn(), name, api_key_id=key().owner_filter)
    out = campaign_json(campaign) | asdict(summary)
    counts = summary.counts
    out["counts"] = asdict(counts) | {"total": counts.total}
    out["progress"] = {"done": counts.done, "total": counts.total, "ratio": summary.progress}
    return jsonify(jsonable(out))


@bp.post("/campaigns/<name>/pause")
@scope("send")
def pause_campaign(name: str) -> Response:
    return respond_in_transaction(
        lambda: (campaign_json(_call(lambda: _manager().pause(name))), 200)
    )


@bp.post("/campaigns/<name>/resume")
@scope("send")
def resume_campaign(name: str) -> Response:
    return respond_in_transaction(
        lambda: (campaign_json(_call(lambda: _manager().resume(name))), 200)
    )


@bp.post("/campaigns/<name>/cancel")
@scope("send")
def cancel_campaign(name: str) -> Response:
    def cancel() -> tuple[dict[str, Any], int]:
        campaign, rows = _call(lambda: _manager().cancel(name))
        return campaign_json(campaign) | {"cancelled_rows": rows}, 200

    return respond_in_transaction(cancel)


def _call(work: Any) -> Any:
    """``work()``, with the manager's errors as problem documents."""
    try:
        return work()
    except CampaignNotFound as exc:
        raise ApiProblem("not-found", str(exc)) from None
    except CampaignConflict as exc:
        raise ApiProblem("conflict", str(exc)) from None
    except CsvHeaderError as exc:
        raise validation([FieldError("/", str(exc))]) from None
    except CsvRejected as exc:
        problem = validation(
            [FieldError(f"/lines/{p.line}", p.reason) for p in exc.report.problems],
            f"{exc} (strict: nothing was queued)",
        )
        raise problem from None
