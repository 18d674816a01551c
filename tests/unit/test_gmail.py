"""The Gmail backend without a network: the exact request (googleapiclient's
HttpMockSequence), the credentials file, and every error mapping of Gmail's error guide."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser

import google.auth.exceptions
import pytest
from googleapiclient.http import HttpMockSequence

from mailer.config import Settings
from mailer.credentials import CredentialBox
from mailer.errors import (
    AccountError,
    PermanentDeliveryError,
    TransientDeliveryError,
    UnknownOutcomeError,
)
from mailer.gmail import (
    GmailClient,
    GmailCredentials,
    build_service,
    classify,
    classify_response,
)
from mailer.render import Renderer
from mailer.senders.gmail import GmailSender
from mailer.tokens import TokenCodec
from mailer.tracking_hooks import TrackingHooks
from tests.support.rows import sample_account, sample_row

ENDPOINT = "https://gmail.standin.example/"


def error_body(status: int, message: str, reason: str = "") -> bytes:
    errors = [{"domain": "global", "reason": reason, "message": message}] if reason else []
    return json.dumps({"error": {"code": status, "message": message, "errors": errors}}).encode()


def rendered(settings: Settings):
    tracking = TrackingHooks(settings, TokenCodec("k"))
    renderer = Renderer(max_message_bytes=1 << 20, post_render=[tracking.post_render])
    return renderer.render(sample_row(), sample_account(backend="gmail"))


def sender_with(http: HttpMockSequence, settings: Settings) -> GmailSender:
    service = build_service(http, ENDPOINT)
    return GmailSender(
        sample_account(backend="gmail"),
        settings,
        CredentialBox("k"),
        client_factory=lambda *_: GmailClient(service),
    )


async def test_send_posts_the_rendered_bytes_as_raw(settings: Settings) -> None:
    http = HttpMockSequence([({"status": "200"}, '{"id": "18cabc", "labelIds": ["SENT"]}')])
    message = rendered(settings)
    result = await sender_with(http, settings).send(message)

    [(uri, method, body, _headers)] = http.request_sequence
    assert method == "POST"
    assert uri == ENDPOINT + "gmail/v1/users/me/messages/send?alt=json"
    raw = base64.urlsafe_b64decode(json.loads(body)["raw"])
    assert raw == message.data
    parsed = BytesParser(policy=policy.default).parsebytes(raw)
    assert parsed["From"] == "Shop News <news@shop.example>"
    assert parsed["To"] == "bob@example.org"
    assert parsed["Message-ID"] == "<7.abc@shop.example>"
    assert parsed["List-Unsubscribe"].startswith("<http://127.0.0.1:8025/unsubscribe/")
    assert result.code == 200 and result.response == "gmail id 18cabc"
    assert result.mail_from_at is not None


async def test_an_error_answer_raises_the_mapped_error_with_its_start(settings: Settings) -> None:
    body = error_body(400, "Invalid To header", "invalidArgument").decode()
    http = HttpMockSequence([({"status": "400"}, body)])
    with pytest.raises(PermanentDeliveryError) as caught:
        await sender_with(http, settings).send(rendered(settings))
    assert caught.value.code == 400 and "Invalid To header" in str(caught.value)
    assert caught.value.mail_from_at is not None


def test_429_retry_after_waits_until_that_moment() -> None:
    message = "User-rate limit exceeded.  Retry after 2026-12-02T09:30:00.000Z (Mail sending)"
    error = classify_response(429, error_body(429, message, "rateLimitExceeded"))
    assert isinstance(error, AccountError) and error.kind == "throttle"
    assert error.until == datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
    assert "daily sending limit" in str(error) and "2026-12-02T09:30:00+00:00" in str(error)


def test_429_without_a_time_backs_off_the_usual_way() -> None:
    error = classify_response(429, error_body(429, "Too many requests", "rateLimitExceeded"))
    assert isinstance(error, AccountError) and error.kind == "throttle" and error.until is None


@pytest.mark.parametrize("reason", ["userRateLimitExceeded", "rateLimitExceeded"])
def test_403_rate_limits_back_the_account_off(reason: str) -> None:
    error = classify_response(403, error_body(403, "Rate Limit Exceeded", reason))
    assert isinstance(error, AccountError)
    assert (error.kind, error.scope) == ("throttle", "account")


def test_403_daily_limit_backs_off_the_whole_project() -> None:
    error = classify_response(403, error_body(403, "Daily Limit Exceeded", "dailyLimitExceeded"))
    assert isinstance(error, AccountError)
    assert (error.kind, error.scope) == ("throttle", "project")


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_makes_the_account_unavailable(status: int) -> None:
    error = classify_response(status, error_body(status, "Backend Error", "backendError"))
    assert isinstance(error, AccountError) and error.kind == "unavailable"


def test_400_fails_the_row_without_suppressing() -> None:
    error = classify_response(400, error_body(400, "Invalid To header", "invalidArgument"))
    assert isinstance(error, PermanentDeliveryError) and not error.hard_bounce


@pytest.mark.parametrize(
    ("status", "reason"), [(401, "authError"), (403, "forbidden"), (403, "domainPolicy")]
)
def test_401_and_other_403_suspend(status: int, reason: str) -> None:
    error = classify_response(status, error_body(status, "Delegation denied", reason))
    assert isinstance(error, AccountError) and error.kind == "auth"


def test_refresh_errors() -> None:
    revoked = google.auth.exceptions.RefreshError(
        "invalid_grant: Token has been expired or revoked.", {"error": "invalid_grant"}
    )
    error = classify(revoked)
    assert isinstance(error, AccountError) and error.kind == "auth"
    assert "invalid_grant" in str(error)
    down = google.auth.exceptions.RefreshError("server error", retryable=True)
    assert classify(down).kind == "unavailable"  # type: ignore[attr-defined]


def test_transport_failures() -> None:
    assert isinstance(classify(TimeoutError()), UnknownOutcomeError)
    refused = classify(ConnectionRefusedError("refused"))
    assert isinstance(refused, AccountError) and refused.kind == "unavailable"
    assert type(classify(ConnectionResetError("reset"))) is TransientDeliveryError


def test_an_unparsable_error_body_still_names_the_status() -> None:
    error = classify_response(502, b"<html>Bad Gateway</html>")
    assert str(error).startswith("502 Gmail API 502: <html>Bad Gateway")


def test_credentials_files() -> None:
    user = GmailCredentials.parse(
        json.dumps(
            {
                "type": "authorized_user",
                "client_id": "42-x.apps.googleusercontent.com",
                "client_secret": "s",
                "refresh_token": "r",
            }
        )
    )
    assert (user.kind, user.project) == ("authorized_user", "42-x.apps.googleusercontent.com")
    with pytest.raises(ValueError, match="lacks private_key, token_uri"):
        GmailCredentials.parse('{"type": "service_account", "client_email": "a@b"}')
    with pytest.raises(ValueError, match="not JSON"):
        GmailCredentials.parse("refresh_token=secret")
    with pytest.raises(ValueError, match="service-account key or an authorized-user"):
        GmailCredentials.parse('{"type": "external_account"}')


def test_service_account_impersonates_the_account_through_the_files_token_uri() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from mailer.gmail import build_client
    from tests.support.gmail_api import GmailStandIn

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    with GmailStandIn("news@shop.example") as standin:
        info = {
            "type": "service_account",
            "project_id": "shop-mail",
            "client_email": "mailer@shop-mail.iam.gserviceaccount.com",
            "private_key": pem,
            "token_uri": standin.url + "token",
        }
        credentials = GmailCredentials.parse(json.dumps(info))
        client = build_client(credentials, "news@shop.example", endpoint=standin.url, timeout=5)
        client.authorize()
        assert client.profile()["emailAddress"] == "news@shop.example"
    assert credentials.project == "shop-mail"
    [grant] = standin.token_requests
    assert grant["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    claims = json.loads(base64.urlsafe_b64decode(grant["assertion"][0].split(".")[1] + "=="))
    assert claims["sub"] == "news@shop.example"
    assert claims["scope"] == "https://www.googleapis.com/auth/gmail.send"
