"""Address policy: RFC 5321/5322 syntax only by default; special-use domains refused
only on request; SMTPUTF8 reported for internationalized local parts."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailer.addresses import Address, is_plain, parse_syntax, validated_address
from mailer.errors import InvalidMessageError
from mailer.render import Renderer
from mailer.suppressions import checked_email
from tests.support.rows import sample_account, sample_row

SPECIAL_USE = [
    "someone@host.test",
    "sender@relay.internal",
    "printer@office.local",
    "root@localhost",
    "ops@mail.invalid",
    "dev@box.home.arpa",
]


@pytest.mark.parametrize("address", SPECIAL_USE)
def test_special_use_domains_are_valid_by_default(address):
    assert validated_address(address) == Address(address, needs_smtputf8=False)


@pytest.mark.parametrize("address", SPECIAL_USE)
def test_special_use_domains_are_refused_on_request(address):
    with pytest.raises(InvalidMessageError, match="special-use") as info:
        validated_address(address, reject_special_use=True)
    assert "MAILER_REJECT_SPECIAL_USE_DOMAINS" in str(info.value)
    assert repr(address) in str(info.value)


def test_ordinary_domains_pass_with_the_option_on():
    assert validated_address("bob@example.org", reject_special_use=True).envelope == (
        "bob@example.org"
    )


@pytest.mark.parametrize(
    "address",
    ["not-an-address", "a@@b.org", "a b@example.org", "@example.org", "bob@", "bob@exa_mple.org"],
)
def test_bad_syntax_is_still_refused(address):
    with pytest.raises(InvalidMessageError, match="invalid to_address"):
        validated_address(address)


def test_the_error_names_the_field():
    with pytest.raises(InvalidMessageError, match="invalid account email 'x'"):
        validated_address("x", what="account email")


def test_cr_lf_is_refused():
    with pytest.raises(InvalidMessageError, match="CR/LF"):
        validated_address("bob@example.org\r\nBcc: evil@example.org")


def test_an_idn_domain_with_an_ascii_local_part_gets_the_punycode_domain():
    assert validated_address(" bob@bücher.example ") == Address(
        "bob@xn--bcher-kva.example", needs_smtputf8=False
    )


def test_a_non_ascii_local_part_needs_smtputf8():
    address = validated_address("jöran@bücher.example")
    assert address.needs_smtputf8
    assert address.envelope == "jöran@xn--bcher-kva.example"


def test_the_renderer_sends_to_special_use_domains_and_reports_smtputf8():
    account = sample_account(email="sender@relay.internal")
    plain = Renderer(max_message_bytes=100_000).render(
        sample_row(to_address="someone@host.test"), account
    )
    assert (plain.envelope_from, plain.recipient) == ("sender@relay.internal", "someone@host.test")
    assert not plain.needs_smtputf8
    intl = Renderer(max_message_bytes=100_000, smtputf8=True).render(
        sample_row(to_address="jöran@example.org"), account
    )
    assert intl.needs_smtputf8 and intl.recipient == "jöran@example.org"
    assert "To: jöran@example.org\r\n".encode() in intl.data, "RFC 6532: UTF-8 header"


def test_the_renderer_uses_the_punycode_form_of_an_idn_sender():
    account = replace(sample_account(), email="news@bücher.example")
    rendered = Renderer(max_message_bytes=100_000).render(sample_row(), account)
    assert rendered.envelope_from == "news@xn--bcher-kva.example"
    assert not rendered.needs_smtputf8


def test_the_renderer_refuses_special_use_domains_on_request():
    renderer = Renderer(max_message_bytes=100_000, reject_special_use_domains=True)
    with pytest.raises(InvalidMessageError, match="special-use"):
        renderer.render(sample_row(to_address="someone@host.test"), sample_account())


def test_without_smtputf8_a_non_ascii_local_part_fails_the_row():
    with pytest.raises(InvalidMessageError, match="needs SMTPUTF8"):
        Renderer(max_message_bytes=100_000).render(
            sample_row(to_address="jöran@example.org"), sample_account()
        )


def test_special_use_domains_can_be_suppressed():
    assert checked_email(" someone@host.test ") == "someone@host.test"


def test_without_smtputf8_a_non_ascii_account_address_is_the_accounts_problem():
    renderer = Renderer(max_message_bytes=100_000)
    with pytest.raises(InvalidMessageError, match=r"account email 'jöran@shop\.example'"):
        renderer.address("jöran@shop.example", "account email")
    with pytest.raises(ValueError, match="needs SMTPUTF8") as info:
        renderer.render(sample_row(), sample_account(email="jöran@shop.example"))
    assert not isinstance(info.value, InvalidMessageError), "not the row's fault"


_ADDRESS_CHARS = "aZ09.-_+@x" + "Ab.-"


@settings(max_examples=3000, deadline=None)
@given(
    st.text(alphabet=_ADDRESS_CHARS, min_size=1, max_size=30)
    | st.from_regex(r"[a-z0-9._+-]{1,70}@[a-z0-9.-]{1,70}\.[a-z0-9]{1,5}", fullmatch=True)
)
def test_the_plain_address_shortcut_agrees_with_email_validator(address):
    """What is_plain takes without email-validator, email-validator takes unchanged."""
    if is_plain(address):
        result = parse_syntax(address)
        assert (result.local_part, result.ascii_domain, result.smtputf8) == (
            *address.rsplit("@", 1),
            False,
        )


@pytest.mark.parametrize(
    "address",
    ["user@example.org", "a.b+c_d-e@mail.example.co", "x@a-b.c.example.museum"],
)
def test_common_addresses_take_the_shortcut(address):
    assert is_plain(address)
    assert validated_address(address) == Address(address, False)


@pytest.mark.parametrize(
    "address",
    [
        "User@Example.org",
        ".a@example.org",
        "a..b@example.org",
        "a@example",
        "a@ex--ample.org",
        "a@example.123",
        '"q"@example.org',
        "ü@example.org",
        "a@bücher.example",
    ],
)
def test_anything_else_goes_to_email_validator(address):
    assert not is_plain(address)
