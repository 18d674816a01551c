"""The OpenAPI 3.1 document of the API, served at ``/api/v1/openapi.json``.

Written by hand next to the views it describes; ``tests/integration/test_api_openapi.py``
validates it (openapi-spec-validator) and runs Schemathesis against the live API.
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify

from mailer.webhooks_out import EVENTS as WEBHOOK_EVENTS
from tracking.api.core import bp
from tracking.api.problems import PROBLEM_MIMETYPE

STATUSES = ["queued", "sending", "sent", "failed", "suppressed", "cancelled"]
REASONS = ["hard_bounce", "soft_bounce", "complaint", "unsubscribe", "manual"]
NULL_STR = {"type": ["string", "null"]}
NULL_INT = {"type": ["integer", "null"]}
NULL_BOOL = {"type": ["boolean", "null"]}
TIME = {"type": "string", "format": "date-time"}
NULL_TIME = {"type": ["string", "null"], "format": "date-time"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _page(item: str) -> dict[str, Any]:
    """One page of a keyset-paginated listing of ``item`` schemas."""
    return {
        "type": "object",
        "required": ["data", "next_cursor"],
        "properties": {"data": {"type": "array", "items": _ref(item)}, "next_cursor": NULL_INT},
    }


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_MIMETYPE: {"schema": _ref("Problem")}}}


ERRORS = {
    "400": _problem("Malformed request (JSON, Idempotency-Key)"),
    "401": _problem("Missing or unknown API key"),
    "403": _problem("The key's scope does not allow this"),
    "404": _problem("Not found"),
    "409": _problem("Conflict (state, Idempotency-Key)"),
    "413": _problem("Body too large"),
    "415": _problem("Unsupported media type"),
    "422": _problem("Validation failed"),
    "429": _problem("Rate limited"),
    "503": _problem("Database unavailable"),
}


def _op(
    op_id: str,
    summary: str,
    responses: dict[str, Any],
    *,
    body: dict[str, Any] | None = None,
    params: list[dict[str, Any]] | None = None,
    idempotent: bool = False,
    body_type: str = "application/json",
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": op_id,
        "summary": summary,
        "responses": responses | ERRORS,
    }
    parameters = list(params or [])
    if idempotent:
        parameters.append({"$ref": "#/components/parameters/IdempotencyKey"})
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {body_type: {"schema": body}}}
    return operation


def _path_param(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _query_param(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


ID = {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
EMAIL_ID = _path_param("id", ID)
ACCOUNT_ID = _path_param("id", ID)
WEBHOOK_ID = _path_param("id", ID)
TEMPLATE_REF = _path_param("ref", {"type": "string", "minLength": 1})
CAMPAIGN_NAME = _path_param("name", {"type": "string", "minLength": 1, "maxLength": 200})
CAMPAIGN_STATES = ["active", "paused", "cancelled"]
ADDRESS = _path_param("email", {"type": "string", "minLength": 1})

_COUNT = {"type": "integer", "minimum": 0}
_ENGAGEMENT = {
    "type": "object",
    "required": ["unique", "total", "bots"],
    "description": "unique recipients and events of people; events of suspected bots",
    "properties": {"unique": _COUNT, "total": _COUNT, "bots": _COUNT},
}
_CAMPAIGN_PROPERTIES: dict[str, Any] = {
    "name": {"type": "string"},
    "state": {"type": "string", "enum": CAMPAIGN_STATES},
    "state_changed_at": NULL_TIME,
    "track_opens": NULL_BOOL,
    "track_clicks": NULL_BOOL,
    "created_at": NULL_TIME,
}
CAMPAIGN_SCHEMAS: dict[str, Any] = {
    "CampaignRecipient": {
        "oneOf": [
            {"type": "string", "format": "email"},
            {
                "type": "object",
                "additionalProperties": False,
                "description": "email (or to), an optional name, and variables that "
                "override the campaign's",
                "properties": {
                    "email": {"type": "string", "format": "email"},
                    "to": {"type": "string", "format": "email"},
                    "name": {"type": "string", "maxLength": 200},
                    "variables": {"type": "object"},
                },
            },
        ]
    },
    "CampaignIn": {
        "type": "object",
        "required": ["name"],
        "additionalProperties": False,
        "description": "subject and html or text, or a template; every recipient gets it",
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[^/]+$"},
            "recipients": {"type": "array", "maxItems": 500, "items": _ref("CampaignRecipient")},
            "mode": {"type": "string", "enum": ["strict", "permissive"]},
            "subject": {"type": "string", "maxLength": 998},
            "html": {"type": "string"},
            "text": {"type": "string"},
            "template": {"type": ["string", "integer"]},
            "variables": {"type": "object"},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "metadata": {"type": "object"},
            "pool": {"type": "string", "maxLength": 200},
            "account": {"type": "integer", "minimum": 1},
            "priority": {"type": "integer", "minimum": -1000, "maximum": 1000},
            "scheduled_at": TIME,
            "track_opens": {"type": "boolean"},
            "track_clicks": {"type": "boolean"},
        },
    },
    "Campaign": {
        "type": "object",
        "required": ["name", "state"],
        "properties": _CAMPAIGN_PROPERTIES,
    },
    "CampaignCreated": {
        "type": "object",
        "required": ["campaign", "mode", "queued", "results"],
        "properties": {
            "campaign": _ref("Campaign"),
            "mode": {"type": "string"},
            "queued": _COUNT,
            "results": {"$ref": "#/components/schemas/BatchOut/properties/results"},
        },
    },
    "CampaignCancelled": {
        "allOf": [
            _ref("Campaign"),
            {
                "type": "object",
                "required": ["cancelled_rows"],
                "properties": {"cancelled_rows": _COUNT},
            },
        ]
    },
    "CampaignPage": {
        "type": "object",
        "required": ["data", "next_cursor"],
        "properties": {
            "data": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "name", "state"],
                    "properties": _CAMPAIGN_PROPERTIES | {"id": {"type": "integer"}},
                },
            },
            "next_cursor": NULL_INT,
        },
    },
    "CampaignSummary": {
        "type": "object",
        "required": [
            "name",
            "state",
            "counts",
            "progress",
            "opens",
            "clicks",
            "bounces",
            "complaints",
            "unsubscribes",
            "top_links",
            "send_rate",
            "first_sent_at",
            "last_sent_at",
        ],
        "properties": _CAMPAIGN_PROPERTIES
        | {
            "counts": {
                "type": "object",
                "required": [*STATUSES, "total"],
                "properties": {s: _COUNT for s in [*STATUSES, "total"]},
            },
            "progress": {
                "type": "object",
                "required": ["done", "total", "ratio"],
                "properties": {
                    "done": _COUNT,
                    "total": _COUNT,
                    "ratio": {"type": "number", "minimum": 0, "maximum": 1},
                },
            },
            "opens": _ENGAGEMENT,
            "clicks": _ENGAGEMENT,
            "bounces": _COUNT,
            "complaints": _COUNT,
            "unsubscribes": _COUNT,
            "top_links": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["url", "unique_clicks", "clicks"],
                    "properties": {
                        "url": {"type": "string"},
                        "unique_clicks": _COUNT,
                        "clicks": _COUNT,
                    },
                },
            },
            "send_rate": {
                "type": "object",
                "description": "messages sent per minute over the last 5 and 60 minutes",
                "required": ["last_5_minutes", "last_60_minutes"],
                "properties": {
                    "last_5_minutes": {"type": "number", "minimum": 0},
                    "last_60_minutes": {"type": "number", "minimum": 0},
                },
            },
            "first_sent_at": NULL_TIME,
            "last_sent_at": NULL_TIME,
        },
    },
    "CsvReport": {
        "type": "object",
        "required": ["lines", "queued", "invalid", "suppressed", "duplicates", "problems"],
        "properties": {
            "lines": _COUNT,
            "queued": _COUNT,
            "invalid": _COUNT,
            "suppressed": _COUNT,
            "duplicates": _COUNT,
            "problems": {
                "type": "array",
                "maxItems": 100,
                "items": {
                    "type": "object",
                    "required": ["line", "reason"],
                    "properties": {"line": {"type": "integer"}, "reason": {"type": "string"}},
                },
            },
        },
    },
}

SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["pointer", "detail"],
                    "properties": {"pointer": {"type": "string"}, "detail": {"type": "string"}},
                },
            },
        },
    },
    "Recipient": {
        "oneOf": [
            {"type": "string", "format": "email", "description": "an email address"},
            {
                "type": "object",
                "required": ["email"],
                "additionalProperties": False,
                "properties": {
                    "email": {"type": "string", "format": "email"},
                    "name": {"type": "string"},
                },
            },
        ]
    },
    "EmailIn": {
        "type": "object",
        "required": ["to"],
        "additionalProperties": False,
        "description": "subject and html or text, or a template (name or id) and variables",
        "properties": {
            "to": _ref("Recipient"),
            "subject": {"type": "string", "maxLength": 998},
            "html": {"type": "string"},
            "text": {"type": "string"},
            "template": {"type": ["string", "integer"]},
            "variables": {"type": "object"},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "campaign": {"type": "string", "maxLength": 200},
            "metadata": {"type": "object"},
            "pool": {"type": "string", "maxLength": 200},
            "account": {"type": "integer", "minimum": 1},
            "priority": {"type": "integer", "minimum": -1000, "maximum": 1000},
            "scheduled_at": TIME,
            "track_opens": {"type": "boolean"},
            "track_clicks": {"type": "boolean"},
            "transactional": {"type": "boolean"},
        },
    },
    "Queued": {
        "type": "object",
        "required": ["id", "status", "message_id"],
        "properties": {
            "id": {"type": "integer"},
            "status": {"type": "string"},
            "message_id": NULL_STR,
        },
    },
    "BatchIn": {
        "type": "object",
        "required": ["emails"],
        "additionalProperties": False,
        "properties": {
            "emails": {"type": "array", "minItems": 1, "maxItems": 500, "items": _ref("EmailIn")},
            "mode": {"type": "string", "enum": ["strict", "permissive"]},
        },
    },
    "BatchOut": {
        "type": "object",
        "required": ["mode", "queued", "results"],
        "properties": {
            "mode": {"type": "string"},
            "queued": {"type": "integer"},
            "results": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["index"],
                    "properties": {
                        "index": {"type": "integer"},
                        "id": {"type": "integer"},
                        "status": {"type": "string"},
                        "message_id": NULL_STR,
                        "error": {"type": "object"},
                    },
                },
            },
        },
    },
    "EmailSummary": {
        "type": "object",
        "required": ["id", "to_address", "status", "created_at"],
        "properties": {
            "id": {"type": "integer"},
            "to_address": {"type": "string"},
            "subject": NULL_STR,
            "status": {"type": "string", "enum": STATUSES},
            "campaign": NULL_STR,
            "pool": {"type": "string"},
            "attempts": {"type": "integer"},
            "message_id": NULL_STR,
            "scheduled_at": TIME,
            "sent_at": NULL_TIME,
            "created_at": TIME,
        },
    },
    "Email": {
        "type": "object",
        "required": ["id", "to_address", "status", "attempt_count", "attempts", "events"],
        "properties": {
            "id": {"type": "integer"},
            "to_address": {"type": "string"},
            "to_name": NULL_STR,
            "subject": NULL_STR,
            "status": {"type": "string", "enum": STATUSES},
            "attempt_count": {"type": "integer"},
            "last_error": NULL_STR,
            "message_id": NULL_STR,
            "attempts": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer"},
                        "account_id": NULL_INT,
                        "outcome": {"type": "string"},
                        "code": NULL_INT,
                        "response": NULL_STR,
                        "duration_ms": NULL_INT,
                        "created_at": TIME,
                    },
                },
            },
            "events": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer"},
                        "type": {"type": "string"},
                        "data": {},
                        "created_at": TIME,
                    },
                },
            },
        },
    },
    "EmailPage": {
        "type": "object",
        "required": ["data", "next_cursor"],
        "properties": {
            "data": {"type": "array", "items": _ref("EmailSummary")},
            "next_cursor": NULL_INT,
        },
    },
    "TemplateIn": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 998},
            "subject": {"type": "string", "minLength": 1, "maxLength": 998},
            "html": {"type": ["string", "null"]},
            "text": {"type": ["string", "null"]},
        },
    },
    "Template": {
        "type": "object",
        "required": ["id", "name", "subject", "html", "text"],
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "subject": {"type": "string"},
            "html": NULL_STR,
            "text": NULL_STR,
            "created_at": TIME,
            "updated_at": TIME,
        },
    },
    "TemplatePage": {
        "type": "object",
        "required": ["data", "next_cursor"],
        "properties": {
            "data": {"type": "array", "items": _ref("Template")},
            "next_cursor": NULL_INT,
        },
    },
    "Suppression": {
        "type": "object",
        "required": ["email", "reason"],
        "properties": {
            "id": {"type": "integer"},
            "email": {"type": "string"},
            "reason": {"type": "string", "enum": REASONS},
            "source": NULL_STR,
            "created_at": TIME,
            "expires_at": NULL_TIME,
        },
    },
    "SuppressionPage": {
        "type": "object",
        "required": ["data", "next_cursor"],
        "properties": {
            "data": {"type": "array", "items": _ref("Suppression")},
            "next_cursor": NULL_INT,
        },
    },
    "SuppressionsIn": {
        "type": "object",
        "required": ["suppressions"],
        "properties": {
            "suppressions": {
                "type": "array",
                "minItems": 1,
                "maxItems": 1000,
                "items": {
                    "type": "object",
                    "required": ["email"],
                    "additionalProperties": False,
                    "properties": {
                        "email": {"type": "string"},
                        "reason": {"type": "string", "enum": REASONS},
                        "source": {"type": "string"},
                        "expires_at": TIME,
                    },
                },
            }
        },
    },
    "Account": {
        "type": "object",
        "required": ["id", "email", "status", "daily_limit", "pool"],
        "properties": {
            "id": {"type": "integer"},
            "email": {"type": "string"},
            "display_name": NULL_STR,
            "backend": {"type": "string"},
            "status": {"type": "string"},
            "daily_limit": {"type": "integer"},
            "hourly_limit": NULL_INT,
            "min_delay_ms": {"type": "integer"},
            "pool": {"type": "string"},
            "smtp_host": NULL_STR,
            "smtp_port": NULL_INT,
            "smtp_security": {"type": "string"},
            "last_error": NULL_STR,
            "created_at": TIME,
            "updated_at": TIME,
        },
    },
    "Webhook": {
        "type": "object",
        "required": ["id", "url", "events", "enabled", "created_at"],
        "properties": {
            "id": {"type": "integer"},
            "url": {"type": "string"},
            "events": {"type": "array", "items": {"type": "string"}},
            "enabled": {"type": "boolean"},
            "disabled_reason": NULL_STR,
            "disabled_at": NULL_TIME,
            "failing_since": NULL_TIME,
            "created_at": TIME,
            "pending": {"type": "integer"},
        },
    },
    "WebhookCreated": {
        "allOf": [
            {"$ref": "#/components/schemas/Webhook"},
            {
                "type": "object",
                "required": ["secret"],
                "properties": {"secret": {"type": "string"}},
            },
        ]
    },
    "WebhookIn": {
        "type": "object",
        "required": ["url", "events"],
        "additionalProperties": False,
        "properties": {
            "url": {"type": "string", "format": "uri"},
            "events": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "string",
                    "enum": list(WEBHOOK_EVENTS),
                },
            },
        },
    },
    "RecurringIn": {
        "type": "object",
        "required": ["name", "cron", "timezone"],
        "additionalProperties": False,
        "description": "kind email (the default) needs email; kind campaign needs campaign",
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "[^0-9]"},
            "kind": {"type": "string", "enum": ["email", "campaign"]},
            "cron": {
                "type": "string",
                "maxLength": 200,
                "description": "five fields (minute hour day-of-month month day-of-week) "
                "or @hourly, @daily, @weekly, @monthly, @yearly",
            },
            "timezone": {"type": "string", "description": "an IANA zone, e.g. Europe/Paris"},
            "email": {
                "allOf": [_ref("EmailIn")],
                "not": {"required": ["scheduled_at"]},
                "description": "what each occurrence queues (POST /emails' body, without "
                "scheduled_at)",
            },
            "campaign": {
                "allOf": [_ref("CampaignIn")],
                "not": {"required": ["scheduled_at"]},
                "description": "kind campaign: POST /campaigns' body (without scheduled_at; "
                "name at most 177 characters; at least one recipient, all valid). Each "
                "occurrence creates the campaign <name>-<occurrence local time, ISO 8601 to "
                "the minute with its offset>, e.g. news-2026-12-07T09:00+01:00, and queues "
                "every recipient once",
            },
            "enabled": {"type": "boolean"},
        },
    },
    "Recurring": {
        "type": "object",
        "required": ["id", "name", "kind", "cron", "timezone", "enabled", "next_run_at"],
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "kind": {"type": "string"},
            "cron": {"type": "string"},
            "timezone": {"type": "string"},
            "enabled": {"type": "boolean"},
            "next_run_at": TIME,
            "last_run_at": NULL_TIME,
            "last_error": NULL_STR,
            "payload": {"type": "object", "description": "the email_queue columns queued"},
            "created_at": TIME,
            "updated_at": TIME,
            "runs": {
                "type": "array",
                "description": "the latest occurrences queued (GET /recurring/{ref} only)",
                "items": {
                    "type": "object",
                    "properties": {
                        "occurrence_at": TIME,
                        "missed": {"type": "integer"},
                        "queued_at": TIME,
                        "email_id": NULL_INT,
                        "status": NULL_STR,
                        "campaign": {
                            "type": ["string", "null"],
                            "description": "the campaign a campaign occurrence created",
                        },
                    },
                },
            },
        },
    },
    "RecurringPage": _page("Recurring"),
    "Contact": {
        "type": "object",
        "description": "Everything held about an address",
        "required": [
            "email",
            "exported_at",
            "erased_at",
            "counts",
            "emails",
            "unmatched_events",
            "suppressions",
            "bounce_reports",
            "webhook_deliveries",
        ],
        "properties": {
            "email": {"type": "string"},
            "exported_at": TIME,
            "erased_at": NULL_TIME,
            "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
            "emails": {
                "type": "array",
                "description": "every row to the address, with its attempts and events",
                "items": {
                    "type": "object",
                    "required": ["id", "to_address", "status", "attempts", "events"],
                    "properties": {
                        "id": {"type": "integer"},
                        "to_address": {"type": "string"},
                        "status": {"type": "string", "enum": STATUSES},
                        "attempts": {"type": "array", "items": {"type": "object"}},
                        "events": {"type": "array", "items": {"type": "object"}},
                    },
                },
            },
            "unmatched_events": {"type": "array", "items": {"type": "object"}},
            "suppressions": {"type": "array", "items": _ref("Suppression")},
            "bounce_reports": {"type": "array", "items": {"type": "object"}},
            "webhook_deliveries": {"type": "array", "items": {"type": "object"}},
        },
    },
    "Erasure": {
        "type": "object",
        "required": ["email_hash", "counts"],
        "properties": {
            "email_hash": {"type": "string", "description": "SHA-256 of the address, kept"},
            "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
        },
    },
    "LimitsIn": {
        "type": "object",
        "minProperties": 1,
        "additionalProperties": False,
        "properties": {
            "daily_limit": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
            "hourly_limit": {"type": ["integer", "null"], "minimum": 0, "maximum": 2**31 - 1},
            "min_delay_ms": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
        },
    },
}
SCHEMAS.update(CAMPAIGN_SCHEMAS)
SCHEMAS["RecurrenceIn"] = {
    "type": "object",
    "required": ["cron", "timezone"],
    "additionalProperties": False,
    "description": "repeat instead of sending once: creates a recurring send (201 with it, "
    "as POST /recurring does)",
    "properties": {
        "cron": SCHEMAS["RecurringIn"]["properties"]["cron"],
        "timezone": SCHEMAS["RecurringIn"]["properties"]["timezone"],
        "name": {
            **SCHEMAS["RecurringIn"]["properties"]["name"],
            "description": "the schedule's name (default: the campaign's name; for an email, "
            "email-<random>)",
        },
        "enabled": {"type": "boolean"},
    },
}


def _with_recurrence(schema: str) -> dict[str, Any]:
    """``schema`` plus an optional ``recurrence`` (POST /emails and POST /campaigns)."""
    base = SCHEMAS[schema]
    return base | {"properties": base["properties"] | {"recurrence": _ref("RecurrenceIn")}}


SCHEMAS["SendEmailIn"] = _with_recurrence("EmailIn")
SCHEMAS["NewCampaignIn"] = _with_recurrence("CampaignIn")

_EMAIL_LIST_PARAMS = [
    _query_param("status", {"type": "string", "enum": STATUSES}),
    _query_param("campaign", {"type": "string"}),
    _query_param("to", {"type": "string"}),
    _query_param("since", TIME),
    _query_param("cursor", ID),
    _query_param("limit", {"type": "integer", "minimum": 1, "maximum": 200}),
]
_CURSOR = [_query_param("cursor", ID)]


def _action(
    op_id: str, summary: str, answer: dict[str, Any], param: dict[str, Any]
) -> dict[str, Any]:
    """A ``POST .../{param}/<verb>`` path item without a body."""
    return {"post": _op(op_id, summary, {"200": answer}, params=[param], idempotent=True)}


def _collection(name: str, schema: str, listing: str, creating: str) -> dict[str, Any]:
    """``GET`` (a page, by id) and ``POST`` (create, 201) on a collection of ``schema``."""
    return {
        "get": _op(
            f"list{name}",
            listing,
            {"200": _json(_ref(f"{schema}Page"), "A page")},
            params=[
                *_CURSOR,
                _query_param("limit", {"type": "integer", "minimum": 1, "maximum": 200}),
            ],
        ),
        "post": _op(
            f"create{name}",
            creating,
            {"201": _json(_ref(schema), "Created")},
            body=_ref(f"{schema}In"),
            idempotent=True,
        ),
    }


def _recurring_paths() -> dict[str, Any]:
    one = _json(_ref("Recurring"), "The recurring send")
    ref = _path_param("ref", {"type": "string", "minLength": 1})
    by_ref = [ref]
    return {
        "/recurring": _collection(
            "Recurring",
            "Recurring",
            "Recurring sends by id",
            "Queue an email or a campaign on a cron expression in a time zone",
        ),
        "/recurring/{ref}": {
            "get": _op(
                "getRecurring",
                "A recurring send with its latest occurrences",
                {"200": one},
                params=by_ref,
            ),
            "delete": _op(
                "deleteRecurring",
                "Delete it (rows already queued stay queued)",
                {"204": {"description": "Deleted"}},
                params=by_ref,
            ),
        },
        "/recurring/{ref}/pause": _action("pauseRecurring", "Stop queueing occurrences", one, ref),
        "/recurring/{ref}/resume": _action(
            "resumeRecurring",
            "Queue occurrences again from the next one (none missed while paused)",
            one,
            ref,
        ),
    }


def _paths() -> dict[str, Any]:
    queued = _json(_ref("Queued"), "The row and its state")
    return {
        **_recurring_paths(),
        "/emails": {
            "post": _op(
                "sendEmail",
                "Queue one email (202), or with recurrence a recurring send of it (201)",
                {
                    "202": _json(_ref("Queued"), "Queued"),
                    "201": _json(_ref("Recurring"), "The recurring send created"),
                },
                body=_ref("SendEmailIn"),
                idempotent=True,
            ),
            "get": _op(
                "listEmails",
                "Emails, newest first (keyset pagination)",
                {"200": _json(_ref("EmailPage"), "A page")},
                params=_EMAIL_LIST_PARAMS,
            ),
        },
        "/emails/batch": {
            "post": _op(
                "sendBatch",
                "Queue up to 500 emails in one statement",
                {"202": _json(_ref("BatchOut"), "One result per item, in order")},
                body=_ref("BatchIn"),
                idempotent=True,
                params=[
                    {
                        "name": "X-Batch-Mode",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "enum": ["strict", "permissive"]},
                    }
                ],
            ),
        },
        "/emails/{id}": {
            "get": _op(
                "getEmail",
                "An email with its attempts and events",
                {"200": _json(_ref("Email"), "The email")},
                params=[EMAIL_ID],
            ),
        },
        "/emails/{id}/cancel": {
            "post": _op(
                "cancelEmail",
                "Cancel a queued email",
                {"200": queued},
                params=[EMAIL_ID],
                idempotent=True,
            ),
        },
        "/emails/{id}/retry": {
            "post": _op(
                "retryEmail",
                "Queue a failed email again",
                {"200": queued},
                params=[EMAIL_ID],
                idempotent=True,
            ),
        },
        "/templates": {
            "get": _op(
                "listTemplates",
                "Templates by id",
                {"200": _json(_ref("TemplatePage"), "A page")},
                params=_CURSOR,
            ),
            "post": _op(
                "createTemplate",
                "Create a template",
                {"201": _json(_ref("Template"), "Created")},
                body=_ref("TemplateIn"),
                idempotent=True,
            ),
        },
        "/templates/{ref}": {
            "get": _op(
                "getTemplate",
                "A template by id or name",
                {"200": _json(_ref("Template"), "The template")},
                params=[TEMPLATE_REF],
            ),
            "patch": _op(
                "updateTemplate",
                "Change a template's subject or bodies",
                {"200": _json(_ref("Template"), "Updated")},
                body=_ref("TemplateIn"),
                params=[TEMPLATE_REF],
            ),
            "delete": _op(
                "deleteTemplate",
                "Delete a template no row uses",
                {"204": {"description": "Deleted"}},
                params=[TEMPLATE_REF],
            ),
        },
        "/suppressions": {
            "get": _op(
                "listSuppressions",
                "Suppressions, searchable",
                {"200": _json(_ref("SuppressionPage"), "A page")},
                params=[
                    *_CURSOR,
                    _query_param("search", {"type": "string"}),
                    _query_param("reason", {"type": "string", "enum": REASONS}),
                ],
            ),
            "post": _op(
                "addSuppressions",
                "Suppress addresses",
                {"201": _json({"type": "object"}, "Added")},
                body=_ref("SuppressionsIn"),
                idempotent=True,
            ),
        },
        "/suppressions/{email}": {
            "get": _op(
                "getSuppression",
                "One suppression",
                {"200": _json(_ref("Suppression"), "Suppressed")},
                params=[ADDRESS],
            ),
            "delete": _op(
                "removeSuppression",
                "Lift a suppression",
                {"204": {"description": "Removed"}},
                params=[ADDRESS],
            ),
        },
        "/suppressions/import": {
            "post": _op(
                "importSuppressions",
                "Import a CSV document (streamed)",
                {"200": _json({"type": "object"}, "Import report")},
                body={"type": "string"},
                body_type="text/csv",
                params=[_query_param("reason", {"type": "string", "enum": REASONS})],
            ),
        },
        "/suppressions/export": {
            "get": _op(
                "exportSuppressions",
                "Every suppression as CSV (streamed)",
                {
                    "200": {
                        "description": "CSV",
                        "content": {"text/csv": {"schema": {"type": "string"}}},
                    }
                },
            ),
        },
        "/accounts": {
            "get": _op(
                "listAccounts",
                "Sender accounts (no secrets)",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["data"],
                            "properties": {"data": {"type": "array", "items": _ref("Account")}},
                        },
                        "Accounts",
                    )
                },
            ),
        },
        "/accounts/{id}": {
            "get": _op(
                "getAccount",
                "A sender account",
                {"200": _json(_ref("Account"), "The account")},
                params=[ACCOUNT_ID],
            ),
        },
        "/accounts/{id}/pause": {
            "post": _op(
                "pauseAccount",
                "Pause an active account (admin)",
                {"200": _json(_ref("Account"), "Paused")},
                params=[ACCOUNT_ID],
                idempotent=True,
            ),
        },
        "/accounts/{id}/resume": {
            "post": _op(
                "resumeAccount",
                "Resume a paused account (admin)",
                {"200": _json(_ref("Account"), "Active")},
                params=[ACCOUNT_ID],
                idempotent=True,
            ),
        },
        "/webhooks": {
            "get": _op(
                "listWebhooks",
                "Outbound webhook endpoints (admin; never their secrets)",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["data"],
                            "properties": {"data": {"type": "array", "items": _ref("Webhook")}},
                        },
                        "Endpoints",
                    )
                },
            ),
            "post": _op(
                "addWebhook",
                "Add an endpoint (admin); its signing secret is in this answer only",
                {"201": _json(_ref("WebhookCreated"), "Created")},
                body=_ref("WebhookIn"),
                idempotent=True,
            ),
        },
        "/webhooks/{id}": {
            "get": _op(
                "getWebhook",
                "An endpoint (admin)",
                {"200": _json(_ref("Webhook"), "The endpoint")},
                params=[WEBHOOK_ID],
            ),
            "delete": _op(
                "removeWebhook",
                "Remove an endpoint and its pending deliveries (admin)",
                {"204": {"description": "Removed"}},
                params=[WEBHOOK_ID],
            ),
        },
        **_campaign_paths(),
        "/contacts/{email}": {
            "get": _op(
                "getContact",
                "Everything held about an address (admin; audited)",
                {"200": _json(_ref("Contact"), "The address's data")},
                params=[ADDRESS],
            ),
            "delete": _op(
                "eraseContact",
                "Erase an address; only its hash stays, suppressed (admin; audited)",
                {"200": _json(_ref("Erasure"), "What was erased")},
                params=[ADDRESS],
            ),
        },
        "/contacts/{email}/export": {
            "get": _op(
                "exportContact",
                "The same document as a download (admin; audited)",
                {"200": _json(_ref("Contact"), "The address's data")},
                params=[ADDRESS],
            ),
        },
        "/accounts/{id}/limits": {
            "patch": _op(
                "setAccountLimits",
                "Change an account's limits (admin)",
                {"200": _json(_ref("Account"), "Updated")},
                body=_ref("LimitsIn"),
                params=[ACCOUNT_ID],
            ),
        },
    }


def _campaign_paths() -> dict[str, Any]:
    states = {
        action: _op(
            f"{action}Campaign",
            summary,
            {"200": _json(_ref(schema), "The campaign")},
            params=[CAMPAIGN_NAME],
            idempotent=True,
        )
        for action, summary, schema in (
            ("pause", "Stop sending (rows stay queued; claimed ones go back)", "Campaign"),
            ("resume", "Send a paused campaign again", "Campaign"),
            ("cancel", "Cancel the campaign and its queued rows", "CampaignCancelled"),
        )
    }
    return {
        "/campaigns": {
            "post": _op(
                "createCampaign",
                "Create a campaign with up to 500 recipients (one statement); with "
                "recurrence, the recurring send creating one per occurrence",
                {
                    "201": _json(
                        {"anyOf": [_ref("CampaignCreated"), _ref("Recurring")]},
                        "Created: the campaign with one result per recipient, or the "
                        "recurring send (with recurrence)",
                    )
                },
                body=_ref("NewCampaignIn"),
                idempotent=True,
            ),
            "get": _op(
                "listCampaigns",
                "Campaigns, newest first (keyset pagination)",
                {"200": _json(_ref("CampaignPage"), "A page")},
                params=[
                    *_CURSOR,
                    _query_param("limit", {"type": "integer", "minimum": 1, "maximum": 200}),
                ],
            ),
        },
        "/campaigns/{name}": {
            "get": _op(
                "getCampaign",
                "A campaign's figures: counts, progress, send rate, engagement, top links",
                {"200": _json(_ref("CampaignSummary"), "The summary")},
                params=[CAMPAIGN_NAME],
            ),
        },
        "/campaigns/{name}/recipients": {
            "post": _op(
                "uploadCampaignRecipients",
                "Add recipients from CSV (header: email, name, variables...), streamed",
                {"202": _json(_ref("CsvReport"), "What was queued and skipped")},
                body={"type": "string"},
                body_type="text/csv",
                params=[CAMPAIGN_NAME, _query_param("strict", {"type": "boolean"})],
            ),
        },
        **{f"/campaigns/{{name}}/{action}": {"post": op} for action, op in states.items()},
    }


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Mailer HTTP API",
            "version": "1",
            "description": "Queue and inspect email. Errors are RFC 9457 problem documents.",
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "paths": _paths(),
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "parameters": {
                "IdempotencyKey": {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 255,
                        "pattern": "^[!-~]+$",
                    },
                }
            },
        },
    }


@bp.get("/openapi.json")
def openapi_document() -> Response:
    return jsonify(document())
