"""Rendering a row into the bytes a sender transmits, and every way a row can be bad."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser

import pytest

from mailer.errors import InvalidMessageError
from mailer.models import QueuedEmail
from mailer.render import Renderer
from tests.support.rows import sample_account, sample_row

ACCOUNT = sample_account()


def row(**fields) -> QueuedEmail:
    return sample_row(**fields)


def render(**fields):
    rendered = Renderer(max_message_bytes=100_000).render(row(**fields), ACCOUNT)
    return rendered, BytesParser(policy=policy.default).parsebytes(rendered.data)


def test_plain_row_renders_headers_and_html():
    rendered, msg = render(to_name="Bob Müller")
    assert rendered.recipient == "bob@example.org"
    assert rendered.envelope_from == "news@shop.example"
    assert msg["From"] == "Shop News <news@shop.example>"
    assert msg["To"] == "Bob Müller <bob@example.org>"
    assert msg["Message-ID"] == "<7.abc@shop.example>"
    assert msg.get_content_type() == "text/html"
    assert b"\r\n" in rendered.data


def test_text_and_html_make_alternative():
    _, msg = render(text_body="Hi in text")
    assert msg.get_content_type() == "multipart/alternative"
    assert msg.get_body(("plain",)).get_content().strip() == "Hi in text"


def test_body_without_variables_is_not_templated():
    _, msg = render(html_body="<p>{{ not a variable }}</p>")
    assert "{{ not a variable }}" in msg.get_content()


def test_custom_headers_pass_through():
    _, msg = render(headers={"Reply-To": "help@shop.example", "X-Campaign": "spring"})
    assert msg["Reply-To"] == "help@shop.example" and msg["X-Campaign"] == "spring"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"to_address": "not-an-address"}, "invalid to_address"),
        ({"to_address": "bob@example.org\r\nBcc: evil@example.org"}, "CR/LF"),
        ({"to_name": "Bob\r\nBcc: evil@example.org"}, "CR/LF"),
        ({"subject": "Hi\nBcc: evil@example.org"}, "CR/LF"),
        ({"headers": {"X-Tag": "a\r\nBcc: evil@example.org"}}, "CR/LF"),
        ({"headers": {"Bad Name": "x"}}, "invalid header name"),
        ({"headers": {"X-Tag\n": "x"}}, "invalid header name"),
        ({"headers": {"X-Tag": "a\x00b"}}, "CR/LF"),
        ({"message_id": "<7.abc@shop.example>\r\nBcc: evil@example.org"}, "CR/LF"),
        ({"headers": {"From": "ceo@bank.example"}}, "set by Mailer"),
        ({"headers": {"Reply-To": "a@x.example", "reply-to": "b@x.example"}}, "given twice"),
        ({"variables": {}, "html_body": "{{ unclosed"}, "template error in html_body"),
        ({"variables": {}, "subject": "Hi {{ name }}"}, "template error in subject"),
        ({"variables": {}, "html_body": "{{ ''.__class__.__mro__ }}"}, "template error"),
        ({"html_body": "x" * 200_000}, "over the 100000-byte limit"),
        ({"html_body": None, "text_body": None}, "neither html_body nor text_body"),
    ],
)
def test_bad_rows_raise_invalid_message(fields, message):
    with pytest.raises(InvalidMessageError, match=message):
        render(**fields)


def test_template_row_uses_template_parts():
    _, msg = render(
        template_id=3,
        template_subject="Order {{ n }}",
        template_html_body="<p>#{{ n }}</p>",
        template_text_body=None,
        subject=None,
        html_body=None,
        variables={"n": 42},
    )
    assert msg["Subject"] == "Order 42" and "<p>#42</p>" in msg.get_content()
