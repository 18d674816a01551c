"""VERP return paths: made with the secret, verified exactly; forged or altered addresses,
another secret's, and plain addresses name no row; the renderer puts them in the envelope
of SMTP accounts that enable VERP only; the parser finds them in a bounce."""

from __future__ import annotations

import re

import pytest

from mailer.bounces.parse import parse_report
from mailer.render import Renderer
from mailer.verp import VerpCodec
from tests.support.bounce_samples import SAMPLES, bare_dsn
from tests.support.rows import sample_account, sample_row

CODEC = VerpCodec("test-secret-key")


def test_an_address_names_its_row_and_keeps_the_mailbox() -> None:
    address = CODEC.address("news@shop.example", 1234)
    assert re.fullmatch(r"news\+b-1234-[0-9a-f]{12}@shop\.example", address)
    assert CODEC.queue_id(address) == 1234
    assert CODEC.queue_id(f"<{address.upper()}>") == 1234  # case and brackets do not matter
    assert CODEC.address("news@shop.example", 1234) == address  # deterministic
    assert CODEC.address("news@shop.example", 1235) != address
    plus = CODEC.address("news+promo@shop.example", 7)
    assert plus.startswith("news+promo+b-7-") and CODEC.queue_id(plus) == 7


@pytest.mark.parametrize(
    "change",
    [
        lambda a: a.replace("+b-1234-", "+b-1235-"),  # another row
        lambda a: a.replace("@shop.example", "@evil.example"),  # another domain
        lambda a: a.replace("news+", "admin+"),  # another mailbox
        lambda a: re.sub(r"[0-9a-f]@", lambda m: "1@" if m[0] == "0@" else "0@", a),  # 1 digit
        lambda a: re.sub(r"-[0-9a-f]{12}@", "-000000000000@", a),  # made up
        lambda a: re.sub(r"-([0-9a-f]{12})@", r"-\g<1>0@", a),  # mac too long
        lambda a: re.sub(r"-([0-9a-f]{11})[0-9a-f]@", r"-\1@", a),  # mac cut
        lambda a: VerpCodec("another-secret").address("news@shop.example", 1234),
        lambda a: "news@shop.example",
        lambda a: "news+b-1234@shop.example",
    ],
)
def test_forged_or_altered_addresses_name_no_row(change) -> None:
    address = CODEC.address("news@shop.example", 1234)
    forged = change(address)
    assert forged != address
    assert CODEC.queue_id(forged) is None


def test_queue_ids_keeps_only_genuine_addresses_once() -> None:
    good = CODEC.address("news@shop.example", 5)
    forged = good.replace("+b-5-", "+b-6-")
    assert CODEC.queue_ids([forged, good, "news@shop.example", good]) == [5]


def test_a_local_part_that_would_be_too_long_stays_plain() -> None:
    sender = "x" * 50 + "@shop.example"
    assert CODEC.address(sender, 123456) == sender


def test_the_renderer_puts_verp_in_the_envelope_of_smtp_accounts_that_enable_it() -> None:
    renderer = Renderer(max_message_bytes=1 << 20, envelope_from=CODEC.envelope_from)
    row = sample_row()
    on = sample_account(verp=True)
    message = renderer.render(row, on)
    assert message.envelope_from == CODEC.address(on.email, row.id)
    assert message.message["From"] == "Shop News <news@shop.example>"  # the header stays
    assert renderer.render(row, sample_account()).envelope_from == on.email
    gmail = sample_account(verp=True, backend="gmail")
    assert renderer.render(row, gmail).envelope_from == on.email
    plain = Renderer(max_message_bytes=1 << 20).render(row, on)
    assert plain.envelope_from == on.email


def test_the_parser_lists_where_a_report_was_delivered_and_the_original_sender() -> None:
    verp = CODEC.address("news@shop.example", 42)
    report = parse_report(bare_dsn(verp, "bob@example.org"))
    assert report.original_message_ids == ()
    assert report.return_paths == (verp,)
    quoted = SAMPLES["exim"]("<a.1@shop.example>", "bob@example.org").replace(
        b"Return-Path: <news@shop.example>", f"Return-Path: <{verp}>".encode()
    )
    assert verp in parse_report(quoted).return_paths
    arf = parse_report(SAMPLES["arf"]("<a.1@shop.example>", "bob@example.org"))
    assert arf.return_paths == ("fbl@shop.example", "news@shop.example")
