"""Rendering with the tracking hooks: links, pixel, List-Unsubscribe, per-row switches."""

from __future__ import annotations

import re
from email import policy
from email.parser import BytesParser

import pytest

from mailer.config import Settings
from mailer.errors import InvalidMessageError
from mailer.models import QueuedEmail
from mailer.render import Renderer
from mailer.tokens import TokenCodec
from mailer.tracking_hooks import (
    TEMPLATE_VARIABLES,
    TrackingHooks,
    TrackingPolicy,
    tracking_policy,
)
from tests.support.rows import sample_account, sample_row

BASE = "https://t.shop.example"
SETTINGS = Settings(secret_key="s3cret", base_url=BASE + "/")
CODEC = TokenCodec("s3cret")
ACCOUNT = sample_account()


def row(**fields) -> QueuedEmail:
    html = '<p>Hi <a href="https://shop.example/sale?a=1&amp;b=2">sale</a></p>'
    return sample_row(**({"html_body": html} | fields))


def render(settings=SETTINGS, **fields):
    hooks = TrackingHooks(settings, CODEC, clock=lambda: 1_700_000_000.0)
    renderer = Renderer(
        max_message_bytes=200_000, post_render=[hooks.post_render], variables=[hooks.variables]
    )
    rendered = renderer.render(row(**fields), ACCOUNT)
    return rendered, BytesParser(policy=policy.default).parsebytes(rendered.data)


def html_of(msg) -> str:
    return msg.get_body(("html",)).get_content()


@pytest.mark.parametrize("transactional", [False, True])
def test_template_variables_names_what_the_hook_gives(transactional):
    """The API tries submissions' templates with these names as stand-ins."""
    hooks = TrackingHooks(SETTINGS, CODEC)
    given = hooks.variables(row(transactional=transactional), ACCOUNT)
    assert tuple(given) == TEMPLATE_VARIABLES


def test_policy_defaults_and_switches():
    assert tracking_policy(row()) == TrackingPolicy(True, True, True)
    assert tracking_policy(row(transactional=True)) == TrackingPolicy(False, False, False)
    assert tracking_policy(row(track_opens=False)) == TrackingPolicy(False, True, True)
    assert tracking_policy(row(track_clicks=False)) == TrackingPolicy(True, False, True)
    assert tracking_policy(row(transactional=True, track_clicks=True)) == TrackingPolicy(
        False, True, False
    )


def test_bulk_mail_gets_tracked_links_pixel_and_one_click_headers():
    _, msg = render()
    html = html_of(msg)
    [click] = re.findall(r'href="https://t\.shop\.example/track/click/([\w-]+)"', html)
    token = CODEC.read_click(click)
    assert (token.queue_id, token.link, token.url) == (7, 1, "https://shop.example/sale?a=1&b=2")
    assert token.issued_at == 1_700_000_000
    [opened] = re.findall(r'<img src="https://t\.shop\.example/track/open/([\w-]+)"', html)
    assert CODEC.read_open(opened).queue_id == 7
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    https, mailto = re.fullmatch(
        r"<(https://[^>]+)>, <(mailto:[^>]+)>", str(msg["List-Unsubscribe"])
    ).groups()
    assert https.startswith(BASE + "/unsubscribe/")
    unsub = CODEC.read_unsubscribe(https.rpartition("/")[2])
    assert (unsub.queue_id, unsub.email) == (7, "bob@example.org")
    assert mailto.startswith("mailto:news@shop.example?subject=unsubscribe%20")


def test_list_unsubscribe_is_never_encoded_and_lines_stay_short():
    long_address = "a-very-long-local-part-for-testing-header-folding@example.org"
    rendered, _ = render(to_address=long_address)
    raw = rendered.data.decode()
    header = re.search(r"^List-Unsubscribe: .*?(?=^\S)", raw, re.MULTILINE | re.DOTALL)[0]
    assert "=?" not in header
    lines = header.split("\r\n")
    assert lines[0].startswith("List-Unsubscribe: <https://") and lines[0].endswith(">,")
    assert lines[1].startswith(" <mailto:")
    assert all(len(line) < 998 for line in lines)


def test_unsubscribe_mailto_can_be_configured():
    _, msg = render(
        Settings(secret_key="s3cret", base_url=BASE, unsubscribe_mailto="unsub@lists.shop.example")
    )
    assert "<mailto:unsub@lists.shop.example?subject=" in str(msg["List-Unsubscribe"])


def test_transactional_mail_is_left_alone():
    _, msg = render(transactional=True)
    assert "List-Unsubscribe" not in msg and "List-Unsubscribe-Post" not in msg
    assert (
        html_of(msg).strip() == '<p>Hi <a href="https://shop.example/sale?a=1&amp;b=2">sale</a></p>'
    )


def test_switching_tracking_off_per_row():
    _, msg = render(track_opens=False, track_clicks=False)
    assert "/track/" not in html_of(msg)
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    _, msg = render(track_opens=False)
    assert "/track/click/" in html_of(msg) and "/track/open/" not in html_of(msg)


def test_unsubscribe_url_variable_in_plain_bodies_and_templates():
    body = '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'
    _, msg = render(html_body=body, text_body="Unsubscribe: {{unsubscribe_url}}")
    html = html_of(msg)
    [link] = re.findall(r'href="([^"]+)">Unsubscribe', html)
    assert link.startswith(BASE + "/unsubscribe/")  # not rewritten into a click link
    text = msg.get_body(("plain",)).get_content()
    assert text.strip() == "Unsubscribe: " + link
    _, msg = render(html_body="<p>{{ name }} {{ unsubscribe_url }}</p>", variables={"name": "B"})
    assert re.search(r"<p>B https://t\.shop\.example/unsubscribe/[\w-]+", html_of(msg))


def test_plain_bodies_keep_other_braces():
    _, msg = render(html_body="<p>{{ not_a_variable }} {% raw %}</p>")
    assert "{{ not_a_variable }} {% raw %}" in html_of(msg)


def test_transactional_templates_see_an_empty_unsubscribe_url():
    _, msg = render(transactional=True, html_body="<p>[{{ unsubscribe_url }}]</p>", variables={})
    assert "<p>[]</p>" in html_of(msg)


def test_a_row_with_its_own_list_unsubscribe_keeps_it():
    _, msg = render(headers={"List-Unsubscribe": "<https://crm.example/u/1>"})
    assert msg.get_all("List-Unsubscribe") == ["<https://crm.example/u/1>"]
    assert "List-Unsubscribe-Post" not in msg


def test_a_rows_own_list_unsubscribe_post_is_not_doubled():
    _, msg = render(headers={"List-Unsubscribe-Post": "List-Unsubscribe=One-Click"})
    assert msg.get_all("List-Unsubscribe-Post") == ["List-Unsubscribe=One-Click"]
    assert msg["List-Unsubscribe"].startswith("<https://t.shop.example/unsubscribe/")


def test_text_only_mail_gets_headers_but_no_html():
    _, msg = render(html_body=None, text_body="Hello https://shop.example/")
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content().strip() == "Hello https://shop.example/"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_non_ascii_html_survives_rewriting():
    _, msg = render(html_body='<p>Grüße — <a href="https://shop.example/café">Café</a></p>')
    assert 'Grüße — <a href="https://t.shop.example/track/click/' in html_of(msg)


def test_bad_rows_still_fail_clearly():
    with pytest.raises(InvalidMessageError):
        render(to_address="not an address")


def test_multipart_alternative_keeps_its_structure():
    _, msg = render(text_body="Plain")
    assert msg.get_content_type() == "multipart/alternative"
    html_part = msg.get_body(("html",))
    assert "/track/click/" in html_part.get_content()
    assert msg.get_body(("plain",)).get_content().strip() == "Plain"


def test_links_to_the_base_url_site_are_tracked_but_its_tracking_links_are_not():
    settings = Settings(secret_key="s3cret", base_url="https://shop.example")
    body = (
        '<a href="https://shop.example/sale">Sale</a>'
        '<a href="https://shop.example/track/click/abc">Tracked already</a>'
        '<a href="{{ unsubscribe_url }}">Unsubscribe</a>'
    )
    _, msg = render(settings, html_body=body)
    html = html_of(msg)
    assert html.count("https://shop.example/track/click/") == 2
    assert 'href="https://shop.example/track/click/abc"' in html
    assert re.search(r'href="https://shop\.example/unsubscribe/[\w-]+">Unsubscribe', html)
