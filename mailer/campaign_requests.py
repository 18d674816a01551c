"""Checking a campaign request (``POST /campaigns``' body, or the ``campaign`` of a
recurring send): its name, the message every recipient shares, the inline recipients (up
to :data:`MAX_RECIPIENTS`) with their variables, and the tracking switches.

:func:`check_campaign` returns a :class:`CampaignRequest` whose message is resolved
(template and account, against the submitting key) and one row per recipient (None and
its errors for a bad one); the caller decides whether bad recipients refuse everything
(strict) or are left out (permissive).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mailer.email_requests import FIELDS, MAX_LABEL, FieldError, check_recipient, check_shared
from mailer.email_submissions import EmailSubmissions

#: What every recipient shares: an email's fields but its recipient, campaign and
#: transactional flag (a campaign is bulk mail).
SHARED_FIELDS = FIELDS - {"to", "campaign", "transactional"}
CAMPAIGN_FIELDS = SHARED_FIELDS | {"name", "recipients", "mode"}
TRACKING = ("track_opens", "track_clicks")
MODES = ("strict", "permissive")
#: Inline recipients one request may carry (the batch cap).
MAX_RECIPIENTS = 500


@dataclass(frozen=True)
class CampaignRequest:
    """A checked campaign: ``message`` (resolved ``email_queue`` columns without the
    tracking switches, which are in ``tracking``), and per recipient its columns
    (``to_address``, ``to_name``, ``variables`` merged over the message's) or None."""

    name: str
    message: dict[str, Any]
    tracking: dict[str, bool | None]
    mode: str
    recipients: list[dict[str, Any] | None] = field(default_factory=list)
    recipient_errors: list[list[FieldError]] = field(default_factory=list)

    def rows(self, campaign: str) -> list[dict[str, Any] | None]:
        """Each recipient's full ``email_queue`` row in campaign ``campaign``."""
        shared = self.message | {"campaign": campaign}
        return [None if r is None else shared | r for r in self.recipients]


def check_campaign(
    body: object,
    submissions: EmailSubmissions,
    *,
    base: str = "",
    mode: str | None = None,
    max_name: int = MAX_LABEL,
    reject_special_use: bool = False,
) -> tuple[CampaignRequest | None, list[FieldError]]:
    """The request, or None and every problem of its name and shared message (recipients'
    problems are in the request's ``recipient_errors``). ``mode`` is the default when the
    body has none (``X-Batch-Mode``)."""
    if not isinstance(body, dict):
        return None, [FieldError(base or "/", "must be a JSON object")]
    errors = [
        FieldError(f"{base}/{n}", "is not a known field")
        for n in sorted(set(body) - CAMPAIGN_FIELDS)
    ]
    name = check_name(body.get("name"), errors, base=base, longest=max_name)
    recipients, chosen = _recipients(body, errors, base, mode)
    message, found = check_shared({k: v for k, v in body.items() if k in SHARED_FIELDS}, base=base)
    errors += found
    if errors or message is None or name is None:
        return None, errors
    if unresolved := submissions.resolve([message], [base])[0]:
        return None, unresolved
    tracking = {flag: message.pop(flag, None) for flag in TRACKING}
    rows, item_errors = _recipient_rows(recipients, message, base, reject_special_use)
    templated = any(r is not None and "variables" in r for r in rows)
    if templated:
        for row in rows:  # a template for one recipient is a template for all of them
            if row is not None:
                row.setdefault("variables", {})
    # Rows a CSV upload adds are always templates: without inline recipients, or when
    # one is a template, the shared content must compile whatever the variables.
    if not recipients or templated:
        probe = message | {"variables": message.get("variables") or {}}
        if broken := submissions.template_errors(probe, base, compile_only=True):
            return None, broken
    for index, row in enumerate(rows):
        if row is not None and not item_errors[index]:
            where = f"{base}/recipients/{index}/variables"
            if failed := submissions.template_errors(message | row, base):
                item_errors[index] = [FieldError(where, error.detail) for error in failed]
                rows[index] = None
    return CampaignRequest(name, message, tracking, chosen, rows, item_errors), []


def check_name(
    raw: object, errors: list[FieldError], *, base: str = "", longest: int = MAX_LABEL
) -> str | None:
    """A campaign name: 1 to ``longest`` characters, no '/' nor control characters."""
    if not isinstance(raw, str) or not raw.strip() or len(raw) > longest:
        errors.append(FieldError(f"{base}/name", f"is required: 1 to {longest} characters"))
    elif "/" in raw or any(ord(c) < 32 or ord(c) == 127 for c in raw):
        errors.append(FieldError(f"{base}/name", "must not contain '/' or control characters"))
    else:
        return raw
    return None


def _recipients(
    body: dict[str, Any], errors: list[FieldError], base: str, default_mode: str | None
) -> tuple[list[Any], str]:
    recipients = body.get("recipients", [])
    if not isinstance(recipients, list) or len(recipients) > MAX_RECIPIENTS:
        errors.append(
            FieldError(f"{base}/recipients", f"must be an array of at most {MAX_RECIPIENTS}")
        )
        recipients = []
    mode = body.get("mode") or default_mode or "strict"
    if mode not in MODES:
        errors.append(FieldError(f"{base}/mode", "must be 'strict' or 'permissive'"))
    return recipients, mode


def _recipient_rows(
    recipients: list[Any], message: dict[str, Any], base: str, reject_special_use: bool
) -> tuple[list[dict[str, Any] | None], list[list[FieldError]]]:
    """Each recipient's columns (address, name, variables over the message's), or None
    and its errors."""
    rows: list[dict[str, Any] | None] = []
    errors: list[list[FieldError]] = []
    for index, item in enumerate(recipients):
        found, problems = check_recipient(
            item, base=f"{base}/recipients/{index}", reject_special_use=reject_special_use
        )
        errors.append(problems)
        if found is not None:
            variables = (message.get("variables") or {}) | found.pop("variables", {})
            if variables or "variables" in message:
                found["variables"] = variables
        rows.append(found)
    return rows, errors
