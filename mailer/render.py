"""Rendering: a claimed row plus its account become the exact bytes handed to a sender.

Templates run in Jinja2's sandbox with undefined variables as errors; HTML is autoescaped.
Every problem with the row itself (bad address, CR/LF in a header, template error,
oversize message) raises :class:`~mailer.errors.InvalidMessageError` with a message fit
for ``email_queue.last_error``. ``variables`` hooks add template variables (such as
``unsubscribe_url``, also substituted in non-template bodies) and ``post_render`` hooks
(tracking, unsubscribe headers) edit the :class:`Draft` — the bodies as text and the extra
headers — before :mod:`mailer.mime` serialises it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import formatdate
from functools import cached_property, lru_cache
from typing import Any, cast

import jinja2
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import escape

from mailer import mime
from mailer.addresses import Address, validated_address
from mailer.errors import InvalidMessageError
from mailer.models import QueuedEmail, SenderAccount

#: RFC 5322 field names (printable ASCII but ":"), short enough to fit a line.
_HEADER_NAME = re.compile(r"[!-9;-~]{1,900}")
#: Headers Mailer owns; a row may not set them through ``headers``.
RESERVED_HEADERS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "subject",
        "message-id",
        "date",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "sender",
        "return-path",
    }
)


@dataclass(frozen=True)
class RenderedMessage:
    """What a sender transmits: envelope and serialised message. ``needs_smtputf8``: an
    envelope address has a non-ASCII local part, so only a server offering SMTPUTF8 can
    take it (domains are always in their ASCII form)."""

    envelope_from: str
    recipient: str
    data: bytes
    needs_smtputf8: bool = False

    @cached_property
    def message(self) -> EmailMessage:
        """``data`` parsed back with the ``email`` package (for inspection; senders send
        ``data``)."""
        return cast(EmailMessage, BytesParser(policy=policy.default).parsebytes(self.data))


@dataclass
class Draft:
    """A message between templating and serialisation, as ``post_render`` hooks see it.

    ``html`` and ``text`` are the bodies (None: no such part; a hook may replace either
    string). ``headers`` are the row's own validated headers, then those hooks add with
    :meth:`add_header`. Mailer's own headers (From, To, Subject, ...) are not here and
    cannot be added."""

    html: str | None
    text: str | None
    headers: list[tuple[str, str]]

    def __contains__(self, name: object) -> bool:
        """Whether a header ``name`` (any case) is already in ``headers``."""
        return isinstance(name, str) and any(n.lower() == name.lower() for n, _ in self.headers)

    def add_header(self, name: str, value: str) -> None:
        """Append header ``name: value``; InvalidMessageError for a bad or reserved name
        or a value with CR/LF."""
        self.headers.append(checked_header(name, value))


PostRender = Callable[[Draft, QueuedEmail, SenderAccount], None]
#: Extra template variables for a row (e.g. ``unsubscribe_url``); the row's own win.
Variables = Callable[[QueuedEmail, SenderAccount], dict[str, str]]
#: The envelope sender (MAIL FROM) of a row, given the account's own (e.g. VERP).
EnvelopeFrom = Callable[[QueuedEmail, SenderAccount, str], str]


class Renderer:
    """Renders rows; one per worker so compiled templates are cached across rows."""

    def __init__(
        self,
        *,
        max_message_bytes: int,
        post_render: Iterable[PostRender] = (),
        variables: Iterable[Variables] = (),
        reject_special_use_domains: bool = False,
        smtputf8: bool = False,
        envelope_from: EnvelopeFrom | None = None,
    ) -> None:
        """``reject_special_use_domains``: see :mod:`mailer.addresses`. ``smtputf8``: the
        sender can use SMTPUTF8 when the server offers it (and fails the row when it does
        not); without it a non-ASCII local part fails the row here. ``envelope_from``:
        the row's envelope sender (None: the account's address)."""
        self.max_message_bytes = max_message_bytes
        self.envelope_from = envelope_from
        self.reject_special_use_domains = reject_special_use_domains
        self.smtputf8 = smtputf8
        self.post_render = tuple(post_render)
        self.variables = tuple(variables)
        self._text_env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
        self._html_env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=True)
        self._compile = lru_cache(maxsize=512)(self._compile_uncached)

    def render(self, row: QueuedEmail, account: SenderAccount) -> RenderedMessage:
        """Build the message for ``row`` sent by ``account``."""
        recipient = self.address(row.to_address, "to_address")
        try:
            sender = self.address(account.email, "account email")
        except InvalidMessageError as exc:  # not the row's fault: the worker checks first
            raise ValueError(str(exc)) from None
        extra: dict[str, str] = {}
        for provide in self.variables:
            extra.update(provide(row, account))
        subject, html, text = self._bodies(row, extra)
        head = [
            mime.address_header("From", clean_header(account.display_name or ""), sender.envelope),
            mime.address_header("To", clean_header(row.to_name or ""), recipient.envelope),
            mime.header("Subject", clean_header(subject)),
            f"Date: {formatdate(localtime=False)}\r\n",
            mime.header("Message-ID", clean_header(row.message_id)),
        ]
        draft = Draft(html, text, custom_headers(row.headers))
        if text is None and html is None:
            raise InvalidMessageError("the row has neither html_body nor text_body")
        for hook in self.post_render:
            hook(draft, row, account)
        head.extend(mime.header(name, value) for name, value in draft.headers)
        try:
            data = mime.message_bytes(head, draft.html, draft.text)
        except UnicodeEncodeError as exc:
            raise InvalidMessageError(f"the message is not valid Unicode: {exc}") from None
        if len(data) > self.max_message_bytes:
            raise InvalidMessageError(
                f"message is {len(data)} bytes, over the {self.max_message_bytes}-byte limit"
            )
        smtputf8 = sender.needs_smtputf8 or recipient.needs_smtputf8
        envelope = sender.envelope
        if self.envelope_from is not None:
            envelope = self.envelope_from(row, account, envelope)
        return RenderedMessage(envelope, recipient.envelope, data, smtputf8)

    def address(self, address: str, what: str) -> Address:
        """``address`` as this renderer's messages may use it (see
        :func:`~mailer.addresses.validated_address`), or InvalidMessageError: also when it
        needs SMTPUTF8 and the sender does not negotiate it."""
        policy = self.reject_special_use_domains
        checked = validated_address(address, what=what, reject_special_use=policy)
        if checked.needs_smtputf8 and not self.smtputf8:
            raise InvalidMessageError(
                f"{what} {address!r} has a non-ASCII local part: it needs SMTPUTF8, "
                "which this sender does not negotiate"
            )
        return checked

    def _bodies(
        self, row: QueuedEmail, extra: dict[str, str]
    ) -> tuple[str, str | None, str | None]:
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

    def template_errors(
        self,
        parts: tuple[str, str | None, str | None],
        variables: dict[str, Any] | None,
        stand_ins: Iterable[str] = (),
    ) -> dict[str, str]:
        """What rendering a row's (subject, html_body, text_body) with ``variables`` would
        fail it with, by part: the worker's own messages (a submission is refused with
        them instead of failing on its row). ``stand_ins``: the names the worker's
        ``variables`` hooks provide (empty strings here). ``variables`` None: the parts
        are only compiled (their variables are not known yet)."""
        context = dict.fromkeys(stand_ins, "") | dict(variables or {})
        problems = {}
        for part, env, source in zip(
            ("subject", "html_body", "text_body"),
            (self._text_env, self._html_env, self._text_env),
            parts,
            strict=True,
        ):
            if source is None:
                continue
            try:
                if variables is None:
                    self._compile(env, source)
                else:
                    self._run(env, part, source, context)
            except jinja2.TemplateError as exc:
                problems[part] = f"template error in {part}: {exc}"
            except InvalidMessageError as exc:
                problems[part] = str(exc)
            except Exception as exc:  # 1/0, a bad %: what the worker fails such a row with
                problems[part] = f"cannot render: {type(exc).__name__}: {exc}"
        return problems

    def _compile_uncached(self, env: SandboxedEnvironment, source: str) -> jinja2.Template:
        return env.from_string(source)

    def _run(
        self, env: SandboxedEnvironment, part: str, source: str, context: dict[str, Any]
    ) -> str:
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


def clean_header(value: str) -> str:
    """``value`` unchanged, or InvalidMessageError if it could inject headers."""
    if "\r" in value or "\n" in value or "\0" in value:
        raise InvalidMessageError(f"header value contains CR/LF: {value[:60]!r}")
    return value


def custom_headers(headers: dict[str, Any] | None) -> list[tuple[str, str]]:
    """The row's extra headers, validated by :func:`checked_header` and
    :func:`repeated_header`."""
    checked = [checked_header(name, value) for name, value in (headers or {}).items()]
    if problem := repeated_header(name for name, _ in checked):
        raise InvalidMessageError(problem[1])
    return checked


def repeated_header(names: Iterable[str]) -> tuple[str, str] | None:
    """The first field named twice in different case (``Reply-To`` and ``reply-to``), which
    would go out as two fields where RFC 5322 allows one, and the message saying so."""
    seen: dict[str, str] = {}
    for name in names:
        if (first := seen.setdefault(name.lower(), name)) != name:
            return name, f"header {name!r} is given twice (also as {first!r})"
    return None


def checked_header(name: str, value: object) -> tuple[str, str]:
    """``(name, str(value))``, or InvalidMessageError: the name must be an RFC 5322 field
    name Mailer does not own, the value a string or number without CR/LF/NUL."""
    if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
        raise InvalidMessageError(f"invalid header name {name!r}")
    if name.lower() in RESERVED_HEADERS:
        raise InvalidMessageError(f"header {name!r} is set by Mailer and cannot be overridden")
    if not isinstance(value, str | int | float):
        raise InvalidMessageError(f"header {name!r} must be a string")
    return name, clean_header(str(value))
