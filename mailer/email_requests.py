"""Validation of one email submitted through the API: the same checks, and the same
messages, as the worker's (:mod:`mailer.addresses`, :func:`mailer.render.checked_header`),
so a bad message is refused at the door instead of failing on its row later.

:func:`check_email` turns a JSON object into the columns of an ``email_queue`` row (still
naming its template and account as given) or a list of :class:`FieldError`, each with a
JSON Pointer to the field at fault.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mailer.addresses import validated_address
from mailer.errors import InvalidMessageError
from mailer.render import checked_header, clean_header, repeated_header

#: Fields an email object may carry; anything else is an error (a typo must not be lost).
FIELDS = frozenset(
    {
        "to",
        "subject",
        "html",
        "text",
        "template",
        "variables",
        "headers",
        "campaign",
        "metadata",
        "pool",
        "account",
        "priority",
        "scheduled_at",
        "track_opens",
        "track_clicks",
        "transactional",
    }
)
MAX_SUBJECT = 998
MAX_NAME = 200
MAX_BODY = 5 * 1024 * 1024
MAX_HEADERS = 50
MAX_LABEL = 200
PRIORITY_RANGE = (-1000, 1000)


@dataclass(frozen=True)
class FieldError:
    """One problem: ``pointer`` (RFC 6901) into the request body, and what is wrong."""

    pointer: str
    detail: str


class _Errors(list[FieldError]):
    def add(self, pointer: str, detail: str) -> None:
        self.append(FieldError(pointer, detail))


def check_email(
    body: object, *, base: str = "", reject_special_use: bool = False
) -> tuple[dict[str, Any] | None, list[FieldError]]:
    """``(row, [])`` for a valid email object, else ``(None, errors)``. The row has
    ``template`` (name or id as given) and ``account_id`` still to be resolved."""
    errors = _Errors()
    if not isinstance(body, dict):
        errors.add(base or "/", "must be a JSON object")
        return None, errors
    for name in sorted(set(body) - FIELDS):
        errors.add(f"{base}/{_escape(name)}", "is not a known field")
    row: dict[str, Any] = {}
    _recipient(body.get("to"), row, errors, base, reject_special_use)
    _content(body, row, errors, base)
    _headers(body.get("headers"), row, errors, base)
    _routing(body, row, errors, base)
    return (None, errors) if errors else (row, errors)


def _recipient(to: object, row: dict[str, Any], errors: _Errors, base: str, reject: bool) -> None:
    name: object = None
    pointer = f"{base}/to"
    if isinstance(to, dict):
        extra = set(to) - {"email", "name"}
        if extra:
            errors.add(f"{pointer}/{_escape(sorted(extra)[0])}", "is not a known field")
        name, to, pointer = to.get("name"), to.get("email"), f"{pointer}/email"
    if not isinstance(to, str) or not to.strip():
        errors.add(pointer, "is required: an address or {email, name}")
        return
    if (problem := address_problem(to, reject_special_use=reject)) is not None:
        errors.add(pointer, problem)
        return
    row["to_address"] = to.strip()
    if name is not None:
        text = _text(name, f"{base}/to/name", errors, MAX_NAME, header=True)
        row["to_name"] = text


def address_problem(address: str, *, reject_special_use: bool = False) -> str | None:
    """Why ``address`` cannot be a recipient (the worker's own check), or None."""
    try:
        validated_address(address, what="to_address", reject_special_use=reject_special_use)
    except InvalidMessageError as exc:
        return str(exc)
    return None


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a recipient's display name, or None."""
    errors = _Errors()
    _text(name, "", errors, MAX_NAME, header=True)
    return errors[0].detail if errors else None


#: What a campaign recipient object may carry (``to`` is a synonym of ``email``).
RECIPIENT_FIELDS = frozenset({"email", "to", "name", "variables"})


def check_recipient(
    item: object, *, base: str, reject_special_use: bool = False
) -> tuple[dict[str, Any] | None, list[FieldError]]:
    """One campaign recipient, an address or ``{email|to, name?, variables?}``: its
    ``to_address``, ``to_name`` and ``variables`` columns, or errors."""
    errors = _Errors()
    if isinstance(item, str):
        item = {"email": item}
    if not isinstance(item, dict):
        errors.add(base or "/", "must be an address or an object with an email")
        return None, errors
    for name in sorted(set(item) - RECIPIENT_FIELDS):
        errors.add(f"{base}/{_escape(name)}", "is not a known field")
    field = "to" if "email" not in item and "to" in item else "email"
    row: dict[str, Any] = {}
    address = item.get(field)
    if not isinstance(address, str) or not address.strip():
        errors.add(f"{base}/{field}", "is required: an address")
    elif (problem := address_problem(address, reject_special_use=reject_special_use)) is not None:
        errors.add(f"{base}/{field}", problem)
    else:
        row["to_address"] = address.strip()
    if item.get("name") is not None:
        row["to_name"] = _text(item["name"], f"{base}/name", errors, MAX_NAME, header=True)
    variables = item.get("variables")
    if variables is not None and (not isinstance(variables, dict) or has_nul(variables)):
        errors.add(f"{base}/variables", "must be an object without NUL characters")
    elif variables is not None:
        row["variables"] = variables
    return (None, errors) if errors else (row, errors)


def check_shared(
    body: dict[str, Any], *, base: str = ""
) -> tuple[dict[str, Any] | None, list[FieldError]]:
    """The fields of :func:`check_email` but the recipient: what every recipient of a
    campaign shares (content, headers, routing, schedule, metadata)."""
    errors = _Errors()
    row: dict[str, Any] = {}
    _content(body, row, errors, base)
    _headers(body.get("headers"), row, errors, base)
    _routing(body, row, errors, base)
    return (None, errors) if errors else (row, errors)


def _content(body: dict[str, Any], row: dict[str, Any], errors: _Errors, base: str) -> None:
    template = body.get("template")
    if (
        template is not None and not (isinstance(template, str | int) and str(template).strip())
    ) or isinstance(template, bool):
        errors.add(f"{base}/template", "must be a template name or id")
    elif template is not None:
        row["template"] = str(template).strip()
    for field, column, cap, header in (
        ("subject", "subject", MAX_SUBJECT, True),
        ("html", "html_body", MAX_BODY, False),
        ("text", "text_body", MAX_BODY, False),
    ):
        if body.get(field) is not None:
            row[column] = _text(body[field], f"{base}/{field}", errors, cap, header=header)
    if template is None:
        if body.get("subject") is None:
            errors.add(f"{base}/subject", "is required without a template")
        if body.get("html") is None and body.get("text") is None:
            errors.add(f"{base}/html", "html or text is required without a template")
    variables = body.get("variables")
    if variables is not None:
        _json_object(variables, "variables", row, errors, base)
    elif template is not None:
        row["variables"] = {}


def _json_object(
    value: object, field: str, row: dict[str, Any], errors: _Errors, base: str
) -> None:
    """``row[field] = value`` if it is a JSON object without a NUL character."""
    if not isinstance(value, dict):
        errors.add(f"{base}/{field}", "must be an object")
    elif has_nul(value):
        errors.add(f"{base}/{field}", "contains a NUL character")
    else:
        row[field] = value


def _headers(headers: object, row: dict[str, Any], errors: _Errors, base: str) -> None:
    if headers is None:
        return
    if not isinstance(headers, dict):
        errors.add(f"{base}/headers", "must be an object of header names to values")
        return
    if len(headers) > MAX_HEADERS:
        errors.add(f"{base}/headers", f"at most {MAX_HEADERS} headers")
        return
    checked = {}
    for name, value in headers.items():
        try:
            key, text = checked_header(name, value)
        except InvalidMessageError as exc:
            errors.add(f"{base}/headers/{_escape(name)}", str(exc))
        else:
            checked[key] = text
    if repeated := repeated_header(checked):
        errors.add(f"{base}/headers/{_escape(repeated[0])}", repeated[1])
    row["headers"] = checked


def _routing(body: dict[str, Any], row: dict[str, Any], errors: _Errors, base: str) -> None:
    for field in ("campaign", "pool"):
        if body.get(field) is not None:
            row[field] = _text(body[field], f"{base}/{field}", errors, MAX_LABEL, header=True)
    account = body.get("account")
    if account is not None:
        if isinstance(account, bool) or not isinstance(account, int) or not 1 <= account < 2**63:
            errors.add(f"{base}/account", "must be a sender account id")
        else:
            row["account_id"] = account
    priority = body.get("priority")
    if priority is not None:
        low, high = PRIORITY_RANGE
        if isinstance(priority, bool) or not isinstance(priority, int):
            errors.add(f"{base}/priority", "must be an integer")
        elif not low <= priority <= high:
            errors.add(f"{base}/priority", f"must be between {low} and {high}")
        else:
            row["priority"] = priority
    _schedule(body.get("scheduled_at"), row, errors, base)
    if body.get("metadata") is not None:
        _json_object(body["metadata"], "metadata", row, errors, base)
    for flag in ("track_opens", "track_clicks", "transactional"):
        value = body.get(flag)
        if value is not None and not isinstance(value, bool):
            errors.add(f"{base}/{flag}", "must be true or false")
        elif value is not None:
            row[flag] = value


def _schedule(raw: object, row: dict[str, Any], errors: _Errors, base: str) -> None:
    if raw is None:
        return
    try:
        moment = datetime.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        errors.add(f"{base}/scheduled_at", "must be an ISO 8601 time with a time zone")
    elif not 1970 <= moment.year <= 9999:
        errors.add(f"{base}/scheduled_at", "is out of range")
    else:
        row["scheduled_at"] = moment.isoformat()


def _text(value: object, pointer: str, errors: _Errors, cap: int, *, header: bool) -> str | None:
    if not isinstance(value, str):
        errors.add(pointer, "must be a string")
        return None
    if len(value) > cap:
        errors.add(pointer, f"is longer than {cap} characters")
        return None
    if "\0" in value:
        errors.add(pointer, "contains a NUL character")
        return None
    if header:
        try:
            clean_header(value)
        except InvalidMessageError as exc:
            errors.add(pointer, str(exc))
            return None
    return value


def has_nul(value: object) -> bool:
    """Whether a JSON value holds a NUL character anywhere (PostgreSQL text and jsonb
    cannot store one)."""
    return nul_pointer(value) is not None


def nul_pointer(value: object, pointer: str = "") -> str | None:
    """The JSON Pointer of the first string (or key) holding a NUL in ``value``, or None."""
    if isinstance(value, str):
        return (pointer or "/") if "\0" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{pointer}/{_escape(key)}"
            if "\0" in key:
                return here
            if (found := nul_pointer(item, here)) is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            if (found := nul_pointer(item, f"{pointer}/{index}")) is not None:
                return found
    return None


def _escape(name: object) -> str:
    """``name`` as one JSON Pointer reference token (RFC 6901)."""
    return str(name).replace("~", "~0").replace("/", "~1")
