"""What every benchmark message contains: a realistic small newsletter (about 3 KB once
rendered as multipart/alternative), the same for the ceiling clients and for Mailer."""

from __future__ import annotations

from datetime import UTC, datetime

from mailer.models import QueuedEmail, SenderAccount

_PARAGRAPH = (
    "Thank you for your order. Your parcel has left our warehouse and is on its "
    "way; you can follow it with the link below. "
)
HTML = (
    "<html><body><h1>Your order has shipped</h1>"
    + "".join(f"<p>{_PARAGRAPH * 2}</p>" for _ in range(6))
    + '<p><a href="https://shop.example/track">Track your parcel</a></p></body></html>'
)
TEXT = "Your order has shipped\n\n" + "\n\n".join(_PARAGRAPH * 2 for _ in range(4))


def bench_row(i: int, message_id: str) -> QueuedEmail:
    """The row ``insert_rows`` queues as its ``i``-th, as a claim would return it."""
    return QueuedEmail(
        id=i,
        to_address=f"user{i}@example.org",
        to_name=f"User {i}",
        subject=f"Benchmark message {i}",
        html_body=HTML,
        text_body=TEXT,
        template_id=None,
        variables=None,
        headers=None,
        pool="default",
        campaign="bench",
        priority=0,
        attempts=1,
        max_attempts=5,
        message_id=message_id,
        metadata={},
        due_at=datetime.now(UTC),
    )


def bench_account(email: str) -> SenderAccount:
    return SenderAccount(
        id=1,
        email=email,
        display_name="Bench",
        backend="smtp",
        status="active",
        daily_limit=10**9,
        hourly_limit=None,
        min_delay_ms=0,
        pool="default",
        smtp_host="127.0.0.1",
        smtp_port=25,
        smtp_username=None,
        smtp_security="none",
        smtp_password_encrypted=None,
        last_error=None,
        backoff_until=None,
        updated_at=datetime.now(UTC),
    )
