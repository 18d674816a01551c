"""A queued row rendered for the console: the message as the worker would build it
(template applied, no tracking rewrite, no DKIM signature) for the sandboxed preview and
the ``.eml`` download."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mailer.errors import InvalidMessageError
from mailer.models import QueuedEmail, SenderAccount
from mailer.render import Renderer


@dataclass(frozen=True)
class Preview:
    """``eml`` is None when the row cannot be rendered; ``error`` then says why."""

    eml: bytes | None
    html: str | None
    text: str | None
    error: str | None = None


def render_preview(row: dict[str, Any], account: dict[str, Any] | None, max_bytes: int) -> Preview:
    """Render ``row`` (a ``console_message`` row) as sent by ``account``."""
    if account is None:
        return Preview(None, row["html_body"], row["text_body"], "no account to render it as")
    queued = dict(row)
    queued["message_id"] = row["message_id"] or f"<preview-{row['id']}@mailer.invalid>"
    queued["metadata"] = row["metadata"] or {}
    renderer = Renderer(max_message_bytes=max_bytes, smtputf8=True)
    try:
        rendered = renderer.render(QueuedEmail.from_row(queued), SenderAccount.from_row(account))
    except (InvalidMessageError, ValueError) as exc:
        return Preview(None, row["html_body"], row["text_body"], str(exc))
    message = rendered.message
    html = message.get_body(("html",))
    text = message.get_body(("plain",))
    return Preview(
        rendered.data,
        html.get_content() if html is not None else None,
        text.get_content() if text is not None else None,
    )
