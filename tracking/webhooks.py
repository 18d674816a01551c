"""Webhook intake: ``POST /webhooks/ses`` takes Amazon SNS messages carrying SES
bounce, complaint and delivery notifications.

Order of checks: well-formed and signed (400/403), ``x-amz-sns-message-type`` agrees,
``TopicArn`` in ``MAILER_SES_TOPIC_ARNS`` (403), signature, certificate and freshness
(:mod:`tracking.sns`, 403; 502 when the certificate cannot be fetched, so SNS retries).
Only then is a ``SubscriptionConfirmation`` confirmed or a ``Notification`` applied
(:mod:`tracking.intake`; 503 on a database failure, so SNS retries).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, request

from tracking.intake import apply_notification
from tracking.ses import NotSesNotification, parse_notification
from tracking.sns import SnsRejected, is_sns_url, parse_message
from tracking.state import services
from tracking.store import DATABASE_ERRORS

log = logging.getLogger("tracking.webhooks")

bp = Blueprint("webhooks", __name__)


def _answer(code: int, **body: Any) -> Response:
    return Response(json.dumps(body), status=code, mimetype="application/json")


@bp.post("/webhooks/ses")
def ses() -> Response:
    """Verify and apply one SNS message."""
    try:
        message = _verified_message()
    except SnsRejected as exc:
        log.warning("rejected SNS message from %s: %s", request.remote_addr, exc.reason)
        return _answer(exc.status, error=exc.reason)
    if message["Type"] == "SubscriptionConfirmation":
        return _confirm(message)
    if message["Type"] == "UnsubscribeConfirmation":
        log.warning("SNS unsubscribed this endpoint from %s", message["TopicArn"])
        return _answer(200, status="ok")
    return _notification(message)


def _verified_message() -> dict[str, Any]:
    svc = services()
    message = parse_message(request.get_data(cache=False))
    header = request.headers.get("x-amz-sns-message-type")
    if header is not None and header != message["Type"]:
        raise SnsRejected(400, "x-amz-sns-message-type does not match the message Type")
    if message["TopicArn"] not in svc.settings.ses_topic_arn_list:
        raise SnsRejected(403, f"TopicArn {message['TopicArn']!r} is not allowed")
    svc.verifier.verify(message)
    return message


def _confirm(message: dict[str, Any]) -> Response:
    url = message["SubscribeURL"]
    if not is_sns_url(url):
        return _answer(403, error="SubscribeURL is not an SNS URL")
    try:
        services().confirm_subscription(url)
    except Exception as exc:
        log.error("confirming the subscription to %s failed: %s", message["TopicArn"], exc)
        return _answer(502, error="subscription confirmation failed")
    log.info("confirmed the SNS subscription to %s", message["TopicArn"])
    return _answer(200, status="confirmed")


def _notification(message: dict[str, Any]) -> Response:
    svc = services()
    try:
        notification = parse_notification(json.loads(message["Message"]))
    except (ValueError, NotSesNotification) as exc:
        log.info("ignored SNS notification %s: %s", message["MessageId"], exc)
        return _answer(200, status="ignored")
    now = datetime.fromtimestamp(svc.clock(), UTC)
    try:
        result = apply_notification(svc.store, svc.settings, message, notification, now)
    except DATABASE_ERRORS as exc:
        log.error("applying SNS notification %s failed: %s", message["MessageId"], exc)
        return _answer(503, error="database unavailable")
    if result.duplicate:
        return _answer(200, status="duplicate")
    return _answer(
        200,
        status="processed",
        type=notification.kind,
        matched_rows=result.matched_rows,
        suppressed=result.suppressed,
        paused_accounts=result.paused_accounts,
    )
