"""Tracking tokens: round trips, and every way a forged or altered token fails."""

from __future__ import annotations

import base64

import pytest

from mailer.tokens import ClickToken, InvalidToken, OpenToken, TokenCodec, UnsubscribeToken

CODEC = TokenCodec("test-secret")
CLICK = ClickToken(42, 1_700_000_000, 3, "https://shop.example/p?id=7&utm_source=mail#top")


def test_round_trips():
    assert CODEC.read_open(CODEC.open_token(OpenToken(42, 1_700_000_000))) == OpenToken(
        42, 1_700_000_000
    )
    assert CODEC.read_click(CODEC.click_token(CLICK)) == CLICK
    unsub = UnsubscribeToken(42, "Alice@Example.org")
    assert CODEC.read_unsubscribe(CODEC.unsubscribe_token(unsub)) == unsub


def test_tokens_are_url_safe_compact_and_opaque():
    long_url = "https://shop.example/" + "category/" * 30 + "?utm_source=mail"
    token = CODEC.click_token(ClickToken(42, 1_700_000_000, 1, long_url))
    assert token.replace("-", "").replace("_", "").isalnum()
    assert len(token) < len(long_url)  # deflated
    assert "shop.example" not in base64.urlsafe_b64decode(token + "==").decode("latin-1")
    assert len(CODEC.open_token(OpenToken(42, 1_700_000_000))) <= 48


def test_a_token_of_another_kind_does_not_open():
    open_token = CODEC.open_token(OpenToken(42, 1_700_000_000))
    with pytest.raises(InvalidToken):
        CODEC.read_click(open_token)
    with pytest.raises(InvalidToken):
        CODEC.read_unsubscribe(open_token)


def test_another_secret_does_not_open():
    with pytest.raises(InvalidToken):
        TokenCodec("other-secret").read_click(CODEC.click_token(CLICK))


@pytest.mark.parametrize("position", [0, 5, 20, -1])
def test_every_altered_character_is_rejected(position):
    token = CODEC.click_token(CLICK)
    chars = list(token)
    chars[position] = "A" if chars[position] != "A" else "B"
    with pytest.raises(InvalidToken):
        CODEC.read_click("".join(chars))


@pytest.mark.parametrize(
    "bad",
    ["", "x", "not a token", "a/b", "A" * 22, "A" * 5000, "é" * 30, "AAAA====AAAAAAAAAAAAAAAAAAAA"],
)
def test_garbage_is_rejected(bad):
    with pytest.raises(InvalidToken):
        CODEC.read_click(bad)


def test_truncated_and_extended_tokens_are_rejected():
    token = CODEC.click_token(CLICK)
    for forged in (token[:-1], token[:-4], token + "A", token + "AAAA"):
        with pytest.raises(InvalidToken):
            CODEC.read_click(forged)
