"""Rendering: a claimed row plus its account become the exact bytes handed to a sender.

Templates run in Jinja2's sandbox with undefined variables as errors; HTML is autoescaped.
Every problem with the row itself (bad address, CR/LF in a header, template error,
oversize message) raises :class:`~mailer.errors.InvalidMessageError` with a message fit
for ``email_queue.last_error``. ``variables`` hooks add template variables (such as
``unsubscribe_url``, also substituted in non-template bodies) and ``post_render`` hooks
(tracking, unsubscribe headers) may adjust the message before it is serialised.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate
from functools import lru_cache
from typing import Any

import jinja2
from email_validator import EmailNotValidError, validate_email
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import escape

from mailer.errors import InvalidMessageError
from mailer.models import QueuedEmail, SenderAccount

_HEADER_NAME = re.compile(r"^[!-9;-~]+$")
#: Headers Mailer owns; a row may not set them through ``headers``.
RESERVED_HEADERS = frozenset(
    {"from", "to", "cc", "bcc", "subject", "message-id", "date", "mime-version",
     "content-type", "content-transfer-encoding", "sender", "return-path"}
)


@dataclass(frozen=True)
class RenderedMessage:
    """What a sender transmits: envelope and serialised message."""

    envelope_from: str
    recipient: str
    data: bytes
    message: EmailMessage


PostRender = Callable[[EmailMessage, QueuedEmail, SenderAccount], None]
#: Extra template variables for a row (e.g. ``unsubscribe_url``); the row's own win.
Variables = Callable[[QueuedEmail, SenderAccount], dict[str, str]]


class Renderer:
    """Renders rows; one per worker so compiled templates are cached across rows."""

    def __init__(self, *, max_message_bytes: int, post_render: Iterable[PostRender] = (),
                 variables: Iterable[Variables] = ()) -> None:
        self.max_message_bytes = max_message_bytes
        self.post_render = tuple(post_render)
        self.variables = tuple(variables)
        self._text_env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
        self._html_env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=True)
        self._compile = lru_cache(maxsize=512)(self._compile_uncached)

    def render(self, row: QueuedEmail, account: SenderAccount) -> RenderedMessage:
        """Build the message for ``row`` sent by ``account``."""
        recipient = validated_address(row.to_address)
        extra: dict[str, str] = {}
        for provide in self.variables:
            extra.update(provide(row, account))
        subject, html, text = self._bodies(row, extra)
        msg = EmailMessage(policy=policy.SMTP)
        msg["From"] = Address(display_name=clean_header(account.display_name or ""),
                              addr_spec=account.email)
        msg["To"] = Address(display_name=clean_header(row.to_name or ""), addr_spec=recipient)
        msg["Subject"] = clean_header(subject)
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = row.message_id
        for name, value in custom_headers(row.headers):
            msg[name] = value
        set_bodies(msg, html, text)
        for hook in self.post_render:
            hook(msg, row, account)
        data = msg.as_bytes()
        if len(data) > self.max_message_bytes:
            raise InvalidMessageError(
                f"message is {len(data)} bytes, over the {self.max_message_bytes}-byte limit"
            )
        return RenderedMessage(account.email, recipient, data, msg)

    def _bodies(self, row: QueuedEmail,
                extra: dict[str, str]) -> tuple[str, str | None, str | None]:
        subject = row.subject if row.template_id is None else row.template_subject
        html = row.html_body if row.template_id is None else row.template_html_body
        text = row.text_body if row.template_id is None else row.template_text_body
        if row.template_id is None and row.variables is None:
            # Not a template: only the extra variables' own {{ name }} are replaced.
            return subject or "", substitute(html, extra, True), substitute(text, extra, False)
        context = extra | dict(row.variables or {})
        return (
            self._run(self._text_env, "subject", subject or "", context),
            None if html is None else self._run(self._html_env, "html_body", html, context),
            None if text is None else self._run(self._text_env, "text_body", text, context),
        )

    def _compile_uncached(self, env: SandboxedEnvironment, source: str) -> jinja2.Template:
        return env.from_string(source)

    def _run(self, env: SandboxedEnvironment, part: str, source: str,
             context: dict[str, Any]) -> str:
        try:
            return self._compile(env, source).render(context)
        except jinja2.TemplateError as exc:
            raise InvalidMessageError(f"template error in {part}: {exc}") from None


def substitute(body: str | None, values: dict[str, str], html: bool) -> str | None:
    """``body`` with each ``{{ name }}`` of ``values`` replaced (HTML-escaped when
    ``html``); anything else that looks like a template is left alone."""
    if body is None or not values or "{{" not in body:
        return body
    names = "|".join(re.escape(name) for name in values)
    pattern = re.compile(r"\{\{\s*(" + names + r")\s*\}\}")
    return pattern.sub(lambda m: str(escape(values[m[1]])) if html else values[m[1]], body)


def validated_address(address: str) -> str:
    """The ASCII form of ``address``, or InvalidMessageError saying what is wrong."""
    if "\r" in address or "\n" in address:
        raise InvalidMessageError("to_address contains CR/LF")
    try:
        result = validate_email(address.strip(), check_deliverability=False,
                                allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise InvalidMessageError(f"invalid to_address {address!r}: {exc}") from None
    return result.ascii_email or result.normalized


def clean_header(value: str) -> str:
    """``value`` unchanged, or InvalidMessageError if it could inject headers."""
    if "\r" in value or "\n" in value or "\0" in value:
        raise InvalidMessageError(f"header value contains CR/LF: {value[:60]!r}")
    return value


def custom_headers(headers: dict[str, Any] | None) -> list[tuple[str, str]]:
    """The row's extra headers, validated: RFC 5322 names, no CR/LF, none Mailer owns."""
    result = []
    for name, value in (headers or {}).items():
        if not _HEADER_NAME.match(name):
            raise InvalidMessageError(f"invalid header name {name!r}")
        if name.lower() in RESERVED_HEADERS:
            raise InvalidMessageError(f"header {name!r} is set by Mailer and cannot be overridden")
        if not isinstance(value, str | int | float):
            raise InvalidMessageError(f"header {name!r} must be a string")
        result.append((name, clean_header(str(value))))
    return result


def set_bodies(msg: EmailMessage, html: str | None, text: str | None) -> None:
    """Text and/or HTML parts; both make a multipart/alternative."""
    if text is None and html is None:
        raise InvalidMessageError("the row has neither html_body nor text_body")
    if text is not None:
        msg.set_content(text, subtype="plain", cte=_cte(text))
        if html is not None:
            msg.add_alternative(html, subtype="html", cte=_cte(html))
    else:
        msg.set_content(html or "", subtype="html", cte=_cte(html or ""))


def _cte(body: str) -> str:
    # 7bit would break lines over 998 octets; quoted-printable keeps text readable.
    return "7bit" if body.isascii() and all(len(ln) < 990 for ln in body.splitlines()) \
        else "quoted-printable"
