"""``/campaigns``: create a campaign with its first recipients (up to the batch cap, in
one statement), add recipients from a CSV upload of any size (streamed into the queue
with COPY), read its figures, list campaigns, and pause, resume or cancel one."""

from __future__ import annotations

import io
from dataclasses import asdict
from typing import Any

from flask import Response, jsonify, request

from mailer.campaign_csv import CsvHeaderError
from mailer.campaign_stats import campaign_summary
from mailer.campaigns import (
    Campaign,
    CampaignConflict,
    CampaignManager,
    CampaignNotFound,
    CsvRejected,
    CsvReport,
)
from mailer.email_requests import FIELDS, MAX_LABEL, FieldError, check_recipient, check_shared
from mailer.email_submissions import EmailSubmissions
from tracking.api.core import bp, conn, json_body, key, respond_in_transaction, scope
from tracking.api.emails import MAX_BATCH, int_arg, item_result, refuse_if_strict
from tracking.api.problems import ApiProblem, validation
from tracking.api.serialize import jsonable
from tracking.state import services

#: What every recipient shares: an email's fields but its recipient, campaign and
#: transactional flag (a campaign is bulk mail).
SHARED_FIELDS = FIELDS - {"to", "campaign", "transactional"}
CAMPAIGN_FIELDS = SHARED_FIELDS | {"name", "recipients", "mode"}
TRACKING = ("track_opens", "track_clicks")


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
    body = json_body()
    if not isinstance(body, dict):
        raise validation([FieldError("/", "must be a JSON object")])
    errors = [
        FieldError(f"/{n}", "is not a known field") for n in sorted(set(body) - CAMPAIGN_FIELDS)
    ]
    name = _name(body.get("name"), errors)
    recipients, mode = _recipients(body, errors)
    message, found = check_shared({k: v for k, v in body.items() if k in SHARED_FIELDS})
    errors += found
    if errors or message is None or name is None:
        raise validation(errors)
    submissions = EmailSubmissions(conn(), key())
    if unresolved := submissions.resolve([message], [""])[0]:
        raise validation(unresolved)
    tracking = {flag: message.pop(flag, None) for flag in TRACKING}
    rows, item_errors = _recipient_rows(recipients, message, name)
    refuse_if_strict(item_errors, mode, "recipients", "nothing was created")

    def create() -> tuple[dict[str, Any], int]:
        campaign = _call(lambda: _manager().create(name, message, **tracking))
        valid = [(i, r) for i, r in enumerate(rows) if r is not None]
        queued = dict(
            zip((i for i, _ in valid), submissions.queue([r for _, r in valid]), strict=True)
        )
        results = [item_result(i, queued.get(i), item_errors[i]) for i in range(len(rows))]
        out = {"campaign": campaign_json(campaign), "mode": mode, "queued": len(queued)}
        return out | {"results": results}, 201

    return respond_in_transaction(create)


def _name(raw: object, errors: list[FieldError]) -> str | None:
    if not isinstance(raw, str) or not raw.strip() or len(raw) > MAX_LABEL:
        errors.append(FieldError("/name", f"is required: 1 to {MAX_LABEL} characters"))
    elif "/" in raw or any(ord(c) < 32 or ord(c) == 127 for c in raw):
        errors.append(FieldError("/name", "must not contain '/' or control characters"))
    else:
        return raw
    return None


def _recipients(body: dict[str, Any], errors: list[FieldError]) -> tuple[list[Any], str]:
    recipients = body.get("recipients", [])
    if not isinstance(recipients, list) or len(recipients) > MAX_BATCH:
        errors.append(FieldError("/recipients", f"must be an array of at most {MAX_BATCH}"))
        recipients = []
    mode = body.get("mode") or request.headers.get("X-Batch-Mode") or "strict"
    if mode not in ("strict", "permissive"):
        errors.append(FieldError("/mode", "must be 'strict' or 'permissive'"))
    return recipients, mode


def _recipient_rows(
    recipients: list[Any], message: dict[str, Any], name: str
) -> tuple[list[dict[str, Any] | None], list[list[FieldError]]]:
    """Each recipient's row (the message with its address, name and variables), or None
    and its errors."""
    rows: list[dict[str, Any] | None] = []
    errors: list[list[FieldError]] = []
    for index, item in enumerate(recipients):
        found, problems = check_recipient(
            item, base=f"/recipients/{index}", reject_special_use=_reject_special_use()
        )
        errors.append(problems)
        if found is None:
            rows.append(None)
            continue
        variables = (message.get("variables") or {}) | found.pop("variables", {})
        row = message | found | {"campaign": name}
        if variables or "variables" in message:
            row["variables"] = variables
        rows.append(row)
    return rows, errors


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
