"""``/webhooks``: outbound webhook endpoints (admin scope). The signing secret is in the
answer to the POST that creates an endpoint, and nowhere else; deliveries are made by
``mailer webhooks run`` (see :mod:`mailer.webhooks_out`)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import Response, jsonify

from mailer.credentials import CredentialBox, secret_key
from mailer.email_requests import FieldError
from mailer.sync_db import run
from mailer.webhooks_out import SyncWebhookManager, WebhookError
from tracking.api.core import bp, checked_id, conn, json_body, scope
from tracking.api.problems import ApiProblem, validation
from tracking.api.serialize import jsonable
from tracking.state import services


class _Queries:
    """The request's connection as the manager's query runner."""

    def fetch_all(self, name: str, params: dict[str, Any] | None = None) -> list[Any]:
        return run(conn(), name, params)


def _manager() -> SyncWebhookManager:
    return SyncWebhookManager(_Queries(), CredentialBox(secret_key(services().settings)))


@bp.get("/webhooks")
@scope("admin")
def list_webhooks() -> Response:
    return jsonify({"data": [jsonable(asdict(e)) for e in _manager().list()]})


@bp.post("/webhooks")
@scope("admin")
def add_webhook() -> tuple[Response, int]:
    body = json_body()
    if not isinstance(body, dict):
        raise validation([FieldError("/", "an object with url and events")])
    url, events = body.get("url"), body.get("events")
    unknown = sorted(set(body) - {"url", "events"})
    errors = [FieldError(f"/{k}", "is not a known field") for k in unknown]
    if not isinstance(url, str):
        errors.append(FieldError("/url", "a string (an http:// or https:// URL)"))
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        errors.append(FieldError("/events", "a list of event names"))
    if errors:
        raise validation(errors)
    try:
        created = _manager().add(url, events)
    except WebhookError as exc:
        raise validation([FieldError("/", str(exc))]) from None
    return jsonify(jsonable(asdict(created.endpoint)) | {"secret": created.secret}), 201


@bp.get("/webhooks/<int:endpoint_id>")
@scope("admin")
def get_webhook(endpoint_id: int) -> Response:
    found = _manager().get(checked_id(endpoint_id))
    if found is None:
        raise ApiProblem("not-found", f"no webhook endpoint {endpoint_id}")
    return jsonify(jsonable(asdict(found)))


@bp.delete("/webhooks/<int:endpoint_id>")
@scope("admin")
def remove_webhook(endpoint_id: int) -> tuple[str, int]:
    if not _manager().remove(checked_id(endpoint_id)):
        raise ApiProblem("not-found", f"no webhook endpoint {endpoint_id}")
    return "", 204
