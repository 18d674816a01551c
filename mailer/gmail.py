"""Gmail API access for one account: its credentials, the authorized service, its errors.

Anything that talks to Gmail as an account (the sender, ``mailer accounts check``, a
bounce reader) builds a :class:`GmailClient` with :func:`client_for_account` and runs its
blocking calls in a thread. Two kinds of credentials files work:

* a service account with domain-wide delegation (``"type": "service_account"``): it
  impersonates the account's address (``with_subject``);
* an authorized user (``"type": "authorized_user"``: client id, client secret, refresh
  token) for one mailbox.

The ``token_uri`` in the file is honoured and ``MAILER_GMAIL_API_ENDPOINT`` replaces
Google's API root, so a proxy or a local stand-in can take Google's place. The service is
built from the discovery document shipped inside google-api-python-client: nothing is
fetched at start-up. Access tokens live in memory only.

:func:`classify` maps Gmail's answers (and transport failures) to Mailer's error tree, as
Gmail's error guide documents them.
"""

from __future__ import annotations

import json
import re
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import google.auth.exceptions
import google_auth_httplib2
import httplib2
from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from mailer.config import Settings
from mailer.credentials import CredentialBox, SecretKeyError
from mailer.errors import (
    AccountError,
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
    UnknownOutcomeError,
)
from mailer.models import SenderAccount

SEND_SCOPES = ("https://www.googleapis.com/auth/gmail.send",)
#: What a bounce reader needs on top of sending (list, read, label messages).
MODIFY_SCOPES = ("https://www.googleapis.com/auth/gmail.modify",)
DEFAULT_ENDPOINT = "https://gmail.googleapis.com/"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"

# httplib2 repeats a request whose connection dropped; for messages.send that could send
# a message twice. One try only: Mailer's retry policy decides what happens next.
httplib2.RETRIES = 1

_REQUIRED = {
    "service_account": ("client_email", "private_key", "token_uri"),
    "authorized_user": ("client_id", "client_secret", "refresh_token"),
}
_RETRY_AFTER = re.compile(r"Retry after (\S+)", re.IGNORECASE)
_THROTTLE_REASONS = frozenset({"userRateLimitExceeded", "rateLimitExceeded", "quotaExceeded"})
_PROJECT_REASONS = frozenset({"dailyLimitExceeded"})


@dataclass(frozen=True)
class GmailCredentials:
    """A parsed credentials file. ``project`` names the Cloud project whose quota the
    account uses (a service account's ``project_id``, an OAuth client's id)."""

    info: dict[str, Any]
    kind: str

    @classmethod
    def parse(cls, text: str) -> GmailCredentials:
        """The credentials in ``text``, or ValueError saying what is wrong (never quoting
        the file: it holds secrets)."""
        try:
            info = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"the credentials file is not JSON (line {exc.lineno})") from None
        if not isinstance(info, dict) or info.get("type") not in _REQUIRED:
            raise ValueError(
                "the credentials file must be a service-account key or an authorized-user "
                'file ("type": "service_account" or "authorized_user")'
            )
        kind = info["type"]
        missing = [k for k in _REQUIRED[kind] if not info.get(k)]
        if missing:
            raise ValueError(f"the {kind} credentials file lacks {', '.join(missing)}")
        if kind == "service_account":
            try:  # the private key, read as the account's first token request would read it
                service_account.Credentials.from_service_account_info(info)
            except (ValueError, TypeError):
                raise ValueError(
                    "the service_account credentials file's private_key is not a usable PEM "
                    "private key (download the key file again)"
                ) from None
        return cls(info, kind)

    @property
    def project(self) -> str:
        if self.kind == "service_account":
            return str(self.info.get("project_id") or self.info["client_email"])
        return str(self.info.get("quota_project_id") or self.info["client_id"])

    def google_credentials(self, subject: str, scopes: tuple[str, ...]) -> Any:
        """google-auth credentials acting as ``subject`` (service accounts) or as the
        file's own user."""
        if self.kind == "service_account":
            base = service_account.Credentials.from_service_account_info(
                self.info, scopes=list(scopes)
            )
            return base.with_subject(subject)
        # from_authorized_user_info() would ignore the file's token_uri: build it here.
        # No scopes on the refresh: the token carries what the user granted (gmail.modify
        # includes sending), and asking for another scope would be refused.
        return user_credentials.Credentials(
            token=None,
            refresh_token=self.info["refresh_token"],
            token_uri=self.info.get("token_uri") or DEFAULT_TOKEN_URI,
            client_id=self.info["client_id"],
            client_secret=self.info["client_secret"],
            quota_project_id=self.info.get("quota_project_id"),
        )


class GmailClient:
    """An authorized Gmail ``v1`` service for one mailbox. Its methods block: run them in
    a thread."""

    def __init__(self, service: Any, credentials: Any = None, timeout: float = 30.0) -> None:
        """``credentials`` None: ``service`` authorizes its requests itself (tests)."""
        self.service = service
        self.credentials = credentials
        self.timeout = timeout

    def authorize(self) -> None:
        """Get an access token if there is none or it is about to expire (cheap when it
        is still valid)."""
        if self.credentials is not None and not self.credentials.valid:
            request = google_auth_httplib2.Request(httplib2.Http(timeout=self.timeout))
            self.credentials.refresh(request)

    def profile(self) -> dict[str, Any]:
        """``users.getProfile`` of the authorized mailbox."""
        return self.service.users().getProfile(userId="me").execute()


def build_client(
    credentials: GmailCredentials,
    subject: str,
    *,
    scopes: tuple[str, ...] = SEND_SCOPES,
    endpoint: str = "",
    timeout: float = 30.0,
) -> GmailClient:
    """A :class:`GmailClient` for ``subject`` (no network until the first call)."""
    google_creds = credentials.google_credentials(subject, scopes)
    http = google_auth_httplib2.AuthorizedHttp(google_creds, http=httplib2.Http(timeout=timeout))
    return GmailClient(build_service(http, endpoint), google_creds, timeout)


def build_service(http: Any, endpoint: str = "") -> Any:
    """The Gmail ``v1`` service over ``http`` (which authorizes requests), from the
    discovery document shipped with google-api-python-client, rooted at ``endpoint``."""
    return build(
        "gmail",
        "v1",
        http=http,
        static_discovery=True,
        cache_discovery=False,
        client_options={"api_endpoint": endpoint or DEFAULT_ENDPOINT},
    )


def client_for_account(
    account: SenderAccount,
    settings: Settings,
    box: CredentialBox,
    scopes: tuple[str, ...] = SEND_SCOPES,
) -> GmailClient:
    """The Gmail client of a ``gmail`` account, from its encrypted credentials;
    AccountError(kind=config|auth) when they are missing or unusable."""
    if not account.gmail_credentials_encrypted:
        raise AccountError("Gmail account has no credentials", kind="config")
    try:
        text = box.decrypt(account.gmail_credentials_encrypted)
    except SecretKeyError as exc:
        raise AccountError(str(exc), kind="auth") from None
    try:
        credentials = GmailCredentials.parse(text)
        return build_client(
            credentials,
            account.email,
            scopes=scopes,
            endpoint=settings.gmail_api_endpoint,
            timeout=settings.gmail_timeout_seconds,
        )
    except ValueError as exc:  # e.g. a private key that does not load
        raise AccountError(f"unusable Gmail credentials: {exc}", kind="config") from None


# -- errors -----------------------------------------------------------------------------


def classify(exc: BaseException, recipient: str | None = None) -> DeliveryError:
    """The DeliveryError a failed Gmail call (or token refresh) means."""
    if isinstance(exc, DeliveryError):
        return exc
    if isinstance(exc, HttpError):
        return classify_response(exc.status_code, exc.content, recipient=recipient)
    if isinstance(exc, google.auth.exceptions.RefreshError):
        return classify_refresh(exc)
    if isinstance(exc, google.auth.exceptions.TransportError):
        return AccountError(f"cannot reach the token endpoint: {exc}", kind="unavailable")
    if isinstance(exc, ConnectionRefusedError | httplib2.ServerNotFoundError | socket.gaierror):
        return AccountError(f"cannot connect to the Gmail API: {exc}", kind="unavailable")
    if isinstance(exc, TimeoutError):
        return UnknownOutcomeError("no answer from the Gmail API in time", recipient=recipient)
    return TransientDeliveryError(
        f"Gmail API request failed: {type(exc).__name__}: {exc}", recipient=recipient
    )


def classify_refresh(exc: google.auth.exceptions.RefreshError) -> AccountError:
    """A token refresh that failed: revoked or invalid grant, delegation not allowed
    (suspend), or a token endpoint that is down (back off)."""
    text = str(exc.args[0]) if exc.args else str(exc)
    if getattr(exc, "retryable", False):
        return AccountError(f"token endpoint unavailable: {text}", kind="unavailable")
    return AccountError(f"Gmail authorization failed: {text}", kind="auth")


def classify_response(
    status: int, content: bytes, *, recipient: str | None = None
) -> DeliveryError:
    """The DeliveryError of a Gmail API error answer (pure)."""
    message, reasons = error_details(content)
    text = f"Gmail API {status}: {message}" + (f" ({', '.join(reasons)})" if reasons else "")
    kwargs: dict[str, Any] = {"code": status, "recipient": recipient}
    if status == 429:
        until = retry_after(message)
        if until is not None:
            text = f"Gmail daily sending limit reached, sending resumes at {until.isoformat()}"
        return AccountError(text, kind="throttle", until=until, reached_provider=True, **kwargs)
    if status == 403 and reasons & _PROJECT_REASONS:
        return AccountError(text, kind="throttle", scope="project", **kwargs)
    if status == 403 and reasons & _THROTTLE_REASONS:
        return AccountError(text, kind="throttle", reached_provider=True, **kwargs)
    if status in (401, 403):
        return AccountError(text, kind="auth", **kwargs)
    if status == 400:
        return PermanentDeliveryError(text, **kwargs)
    if status >= 500:
        return AccountError(text, kind="unavailable", reached_provider=True, **kwargs)
    return TransientDeliveryError(text, **kwargs)


def error_details(content: bytes) -> tuple[str, frozenset[str]]:
    """``(message, reasons)`` of a Google API error body (``{"error": {...}}``)."""
    try:
        error = json.loads(content.decode("utf-8", "replace"))["error"]
    except (ValueError, KeyError, TypeError):
        return content.decode("utf-8", "replace")[:200].strip() or "no details", frozenset()
    if not isinstance(error, dict):
        return str(error)[:200], frozenset()
    reasons = frozenset(
        str(e["reason"]) for e in error.get("errors") or [] if isinstance(e, dict) and "reason" in e
    )
    return str(error.get("message") or error.get("status") or "no details"), reasons


def retry_after(message: str) -> datetime | None:
    """The timestamp of Gmail's "Retry after 2026-12-01T15:00:00.000Z" (None: none)."""
    match = _RETRY_AFTER.search(message)
    if match is None:
        return None
    try:
        moment = datetime.fromisoformat(match[1])
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None
