"""``/templates``: CRUD, by id or name. Bodies are checked to compile as Jinja2 templates
(the worker's sandbox) so a broken template is refused here rather than failing rows."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import jinja2
from flask import Response, jsonify, request
from jinja2.sandbox import SandboxedEnvironment

from mailer.email_requests import FieldError
from mailer.template_store import Template, TemplateInUse, TemplateStore
from tracking.api.core import bp, conn, json_body, scope
from tracking.api.problems import ApiProblem, validation
from tracking.api.serialize import jsonable

_FIELDS = {"name": "name", "subject": "subject", "html": "html_body", "text": "text_body"}
MAX_TEMPLATE = 1024 * 1024
_ENV = SandboxedEnvironment()


def _out(template: Template) -> dict[str, Any]:
    row = asdict(template)
    row["html"], row["text"] = row.pop("html_body"), row.pop("text_body")
    return jsonable(row)


def _fields(body: object, *, creating: bool) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise validation([FieldError("/", "must be a JSON object")])
    errors = [FieldError(f"/{k}", "is not a known field") for k in sorted(set(body) - set(_FIELDS))]
    fields: dict[str, Any] = {}
    for name, column in _FIELDS.items():
        if name not in body:
            continue
        value = body[name]
        if value is None and name in ("html", "text"):
            fields[column] = None
        elif not isinstance(value, str) or not value.strip() or "\0" in value:
            errors.append(FieldError(f"/{name}", "must be a non-empty string"))
        elif len(value) > MAX_TEMPLATE or (name in ("name", "subject") and len(value) > 998):
            errors.append(FieldError(f"/{name}", "is too long"))
        elif name != "name" and (problem := _syntax_error(value)):
            errors.append(FieldError(f"/{name}", problem))
        else:
            fields[column] = value
    if creating:
        for name in ("name", "subject"):
            if name not in body:
                errors.append(FieldError(f"/{name}", "is required"))
        if fields.get("html_body") is None and fields.get("text_body") is None:
            errors.append(FieldError("/html", "html or text is required"))
    elif "name" in body:
        errors.append(FieldError("/name", "cannot be changed"))
    if errors:
        raise validation(errors)
    return fields


def _syntax_error(source: str) -> str | None:
    try:
        _ENV.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        return f"template syntax error: {exc}"
    return None


def _found(ref: str) -> Template:
    template = TemplateStore(conn()).get(ref)
    if template is None:
        raise ApiProblem("not-found", f"no template {ref!r}")
    return template


@bp.get("/templates")
@scope("read")
def list_templates() -> Response:
    cursor = request.args.get("cursor", "")
    start = int(cursor) if cursor.isdigit() and len(cursor) < 19 else None
    items = TemplateStore(conn()).list(start, 101)
    more = len(items) > 100
    items = items[:100]
    return jsonify(
        {"data": [_out(t) for t in items], "next_cursor": items[-1].id if more else None}
    )


@bp.post("/templates")
@scope("admin")
def create_template() -> tuple[Response, int]:
    fields = _fields(json_body(), creating=True)
    fields.setdefault("html_body", None)
    fields.setdefault("text_body", None)
    created = TemplateStore(conn()).create(fields)
    if created is None:
        raise ApiProblem("conflict", f"a template named {fields['name']!r} exists")
    return jsonify(_out(created)), 201


@bp.get("/templates/<ref>")
@scope("read")
def get_template(ref: str) -> Response:
    return jsonify(_out(_found(ref)))


@bp.patch("/templates/<ref>")
@scope("admin")
def update_template(ref: str) -> Response:
    fields = _fields(json_body(), creating=False)
    try:
        updated = TemplateStore(conn()).update(ref, fields)
    except ValueError as exc:
        raise validation([FieldError("/html", str(exc))]) from None
    if updated is None:
        raise ApiProblem("not-found", f"no template {ref!r}")
    return jsonify(_out(updated))


@bp.delete("/templates/<ref>")
@scope("admin")
def delete_template(ref: str) -> tuple[str, int]:
    try:
        deleted = TemplateStore(conn()).delete(ref)
    except TemplateInUse as exc:
        raise ApiProblem("conflict", f"template {ref!r} cannot be deleted: {exc}") from None
    if not deleted:
        raise ApiProblem("not-found", f"no template {ref!r}")
    return "", 204
