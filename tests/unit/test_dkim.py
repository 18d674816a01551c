"""DKIM keys and signatures, verified with dkimpy against a stand-in for DNS."""

from __future__ import annotations

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from mailer.dkim_keys import DkimKey, DkimKeyError
from mailer.feedback_headers import add_feedback_headers, campaign_label
from mailer.render import Renderer
from tests.support.rows import sample_account, sample_row

MESSAGE = (
    b"From: News <news@shop.example>\r\nTo: bob@example.org\r\nSubject: Hi\r\n"
    b"Date: Tue, 01 Dec 2026 14:00:00 +0000\r\nMessage-ID: <1@shop.example>\r\n"
    b"List-Unsubscribe: <https://t.example/u/x>\r\n"
    b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\r\nHello\r\n"
)

#: A 512-bit RSA key (cryptography refuses to generate one), made with ``openssl genrsa``.
WEAK_RSA_512 = """-----BEGIN PRIVATE KEY-----
MIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEAnnjUSNwTnej7Kez3
7S80e6SPG4bgeMJzMfou9+6ph1m5M7NRl9gQISQllOgO1IUOFaUGWrNjTBwZD5Df
1et/2QIDAQABAkEAlCgVGBUhBfYms1jHpekHIT2FSc/8lwn8ltH3DXcE6fNgsY41
KKeucHH4AdvUsGgIyveqZrDs4YRjBv7EDoDWgQIhAM7W4x6xs6ujHjxwweuAK3B1
x2LmzyPk8JVJalmtm2FxAiEAxCMIrz7qipaUon5RidbyrGPcfw4l2tuhgPGd4q+U
0OkCIQCNc7HBJP/dqmEcLnS/7FhIwZNI1NXmE0Rgo+OCTtLLUQIgZxhDKFpZzh74
YbEkCuABDrwu2loFa9SmP7DA3LaN8oECICnM/+c81jYiF+4FcC5sLb5dh2vDuV3H
R3WRqmspPFOh
-----END PRIVATE KEY-----
"""


def dnsfunc_for(key: DkimKey):
    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        return key.txt_record.encode() if name == f"{key.record_name}.".encode() else None

    return dnsfunc


@pytest.mark.parametrize("algorithm", ["rsa-sha256", "ed25519-sha256"])
def test_signature_verifies_and_covers_the_issue_headers(algorithm: str) -> None:
    key = DkimKey.generate("Shop.Example", "s1", algorithm)
    signed = key.sign(MESSAGE)
    assert signed.endswith(MESSAGE)
    assert dkim.verify(signed, dnsfunc=dnsfunc_for(key))
    tags = dkim.util.parse_tag_value(
        signed.split(b"\r\n\r\n")[0].split(b"DKIM-Signature: ")[1].replace(b"\r\n", b"")
    )
    assert tags[b"a"] == algorithm.encode() and tags[b"c"] == b"relaxed/simple"
    assert (tags[b"d"], tags[b"s"]) == (b"shop.example", b"s1")
    signed_names = set(tags[b"h"].replace(b" ", b"").lower().split(b":"))
    assert {
        b"from", b"to", b"subject", b"date", b"message-id",
        b"list-unsubscribe", b"list-unsubscribe-post",
    } <= signed_names  # fmt: skip
    tampered = signed.replace(b"Subject: Hi", b"Subject: Ho")
    assert not dkim.verify(tampered, dnsfunc=dnsfunc_for(key))


def test_a_pkcs1_rsa_pem_is_accepted_and_weak_or_other_keys_are_not() -> None:
    def pem(private, fmt=serialization.PrivateFormat.TraditionalOpenSSL) -> str:
        return private.private_bytes(
            serialization.Encoding.PEM, fmt, serialization.NoEncryption()
        ).decode()

    strong = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key = DkimKey.from_pem("shop.example", "s", pem(strong))
    assert key.algorithm == "rsa-sha256" and key.txt_record.startswith("v=DKIM1; k=rsa; p=MII")
    with pytest.raises(DkimKeyError, match="1024 bits"):
        DkimKey.from_pem("shop.example", "s", WEAK_RSA_512)
    curve = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(DkimKeyError, match="RSA or Ed25519"):
        DkimKey.from_pem("shop.example", "s", pem(curve, serialization.PrivateFormat.PKCS8))
    with pytest.raises(DkimKeyError, match="PEM"):
        DkimKey.from_pem("shop.example", "s", "not a key")


def render(**row_fields: object) -> bytes:
    renderer = Renderer(max_message_bytes=1 << 20, post_render=[add_feedback_headers])
    return renderer.render(sample_row(**row_fields), sample_account()).data


def test_bulk_mail_gets_list_id_and_feedback_id() -> None:
    message = render(campaign="Winter Sale 2026!").decode()
    assert "List-Id: <winter-sale-2026.shop.example>\r\n" in message
    assert "Feedback-ID: winter-sale-2026:1:mailer\r\n" in message
    assert "List-Id: <default.shop.example>" in render().decode()
    assert campaign_label("::") == "default"


def test_transactional_mail_gets_neither() -> None:
    message = render(campaign="receipts", transactional=True).decode()
    assert "List-Id" not in message and "Feedback-ID" not in message


def test_a_rows_own_list_id_wins() -> None:
    message = render(headers={"List-Id": "<mine.example>"}).decode()
    assert message.count("List-Id") == 1 and "List-Id: <mine.example>" in message
