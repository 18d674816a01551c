"""In-memory records for pure tests: a sender account and a claimed row, as the worker
would hold them, without a database."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mailer.models import QueuedEmail, SenderAccount


def sample_account(**fields: Any) -> SenderAccount:
    """An active SMTP account ``news@shop.example`` ("Shop News")."""
    base: dict[str, Any] = dict(
        id=1,
        email="news@shop.example",
        display_name="Shop News",
        backend="smtp",
        status="active",
        daily_limit=100,
        hourly_limit=None,
        min_delay_ms=0,
        pool="default",
        smtp_host="localhost",
        smtp_port=25,
        smtp_username=None,
        smtp_security="none",
        smtp_password_encrypted=None,
        last_error=None,
        backoff_until=None,
        updated_at=datetime.now(UTC),
    )
    return SenderAccount(**(base | fields))


def sample_row(**fields: Any) -> QueuedEmail:
    """Row 7 to bob@example.org, subject "Hi", HTML "<p>Hi</p>", first attempt."""
    base: dict[str, Any] = dict(
        id=7,
        to_address="bob@example.org",
        to_name=None,
        subject="Hi",
        html_body="<p>Hi</p>",
        text_body=None,
        template_id=None,
        variables=None,
        headers=None,
        pool="default",
        campaign=None,
        priority=0,
        attempts=1,
        max_attempts=5,
        message_id="<7.abc@shop.example>",
        metadata={},
        due_at=datetime.now(UTC),
    )
    return QueuedEmail(**(base | fields))
