"""Frozen records the managers return: what a sender account and a claimed row are."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Self

from mailer.limits import Limits


def _from_row(cls: type[Any], row: dict[str, Any]) -> Any:
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in row.items() if k in names})


@dataclass(frozen=True)
class SenderAccount:
    """A row of ``sender_accounts`` (credentials stay encrypted here)."""

    id: int
    email: str
    display_name: str | None
    backend: str
    status: str
    daily_limit: int
    hourly_limit: int | None
    min_delay_ms: int
    pool: str
    smtp_host: str | None
    smtp_port: int | None
    smtp_username: str | None
    smtp_security: str
    smtp_password_encrypted: str | None
    last_error: str | None
    backoff_until: datetime | None
    updated_at: datetime
    #: EHLO name of this account's connections (None: MAILER_EHLO_HOSTNAME).
    ehlo_hostname: str | None = None
    #: PEM file of the CA(s) that sign the SMTP server's certificate (None: the system's).
    smtp_tls_ca_file: str | None = None
    #: False turns certificate verification off (discouraged, logged at every connect).
    smtp_tls_verify: bool = True
    #: The mailbox bounces and complaints arrive in (bounce reader); password encrypted.
    imap_host: str | None = None
    imap_port: int | None = None
    imap_security: str = "tls"
    imap_username: str | None = None
    imap_password_encrypted: str | None = None
    gmail_credentials_encrypted: str | None = None
    #: The Google Cloud project (or OAuth client) behind a Gmail account's credentials.
    gmail_project: str | None = None
    #: The envelope sender names the row it carries (VERP; SMTP accounts, mailer.verp).
    verp: bool = False

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Self:
        return _from_row(cls, row)

    @property
    def limits(self) -> Limits:
        return Limits(self.daily_limit, self.hourly_limit, self.min_delay_ms)

    @property
    def domain(self) -> str:
        return self.email.rpartition("@")[2] or "localhost"

    def connection_settings(self) -> tuple[Any, ...]:
        """What a sender's connection depends on; a change means reconnect."""
        return (
            self.smtp_host,
            self.smtp_port,
            self.smtp_username,
            self.smtp_security,
            self.smtp_password_encrypted,
            self.gmail_credentials_encrypted,
            self.email,
            self.ehlo_hostname,
            self.smtp_tls_ca_file,
            self.smtp_tls_verify,
        )


@dataclass(frozen=True)
class QueuedEmail:
    """A row leased by a worker's claim, with its template (if any) joined in."""

    id: int
    to_address: str
    to_name: str | None
    subject: str | None
    html_body: str | None
    text_body: str | None
    template_id: int | None
    variables: dict[str, Any] | None
    headers: dict[str, Any] | None
    pool: str
    campaign: str | None
    priority: int
    attempts: int
    max_attempts: int
    message_id: str
    metadata: dict[str, Any]
    due_at: datetime
    template_subject: str | None = None
    template_html_body: str | None = None
    template_text_body: str | None = None
    suppression_reason: str | None = None
    #: Transactional mail has no List-Unsubscribe and is not tracked unless asked to be.
    transactional: bool = False
    #: The row's (else its campaign's) tracking switches; None = the default for its kind.
    track_opens: bool | None = None
    track_clicks: bool | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Self:
        return _from_row(cls, row)
