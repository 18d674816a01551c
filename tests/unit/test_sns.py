"""SNS signature verification with a certificate and key made here."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.sns import CERT_URL, SnsSigner
from tracking.sns import (
    CertificateCache,
    SnsRejected,
    SnsVerifier,
    check_certificate_url,
    parse_message,
    string_to_sign,
)


@pytest.fixture
def signer():
    return SnsSigner()


def verifier(signer, *, max_age=3600.0, clock=time.time):
    return SnsVerifier(CertificateCache(signer.fetcher), max_age_seconds=max_age, clock=clock)


def roundtrip(message):
    return parse_message(json.dumps(message).encode())


def rejected(signer, message, **kwargs) -> SnsRejected:
    with pytest.raises(SnsRejected) as info:
        verifier(signer, **kwargs).verify(roundtrip(message))
    return info.value


def test_string_to_sign_follows_the_documented_order():
    message = {
        "Type": "Notification",
        "MessageId": "m",
        "TopicArn": "t",
        "Message": "hi",
        "Timestamp": "ts",
        "Subject": "s",
        "UnsubscribeURL": "u",
    }
    assert string_to_sign(message) == (
        b"Message\nhi\nMessageId\nm\nSubject\ns\nTimestamp\nts\nTopicArn\nt\nType\nNotification\n"
    )
    del message["Subject"]
    assert b"Subject" not in string_to_sign(message)
    sub = {
        "Type": "SubscriptionConfirmation",
        "MessageId": "m",
        "TopicArn": "t",
        "Message": "hi",
        "Timestamp": "ts",
        "Token": "k",
        "SubscribeURL": "u",
    }
    assert string_to_sign(sub) == (
        b"Message\nhi\nMessageId\nm\nSubscribeURL\nu\nTimestamp\nts\n"
        b"Token\nk\nTopicArn\nt\nType\nSubscriptionConfirmation\n"
    )


@pytest.mark.parametrize("version", ["1", "2"])
@pytest.mark.parametrize("subject", [None, "Amazon SES Email Event Notification"])
def test_good_signatures_verify(signer, version, subject):
    message = signer.notification({"hello": "world"}, version=version, subject=subject)
    verifier(signer).verify(roundtrip(message))


def test_subscription_confirmation_verifies(signer):
    verifier(signer).verify(roundtrip(signer.subscription()))


def test_certificates_are_cached(signer):
    check = verifier(signer)
    for _ in range(3):
        check.verify(roundtrip(signer.notification({})))
    assert signer.fetched == [CERT_URL]


@pytest.mark.parametrize("field", ["Message", "MessageId", "Timestamp", "TopicArn", "Subject"])
def test_any_altered_signed_field_fails(signer, field):
    message = signer.notification({"a": 1}, subject="s")
    message[field] = message[field][:-1] + ("0" if message[field][-1] != "0" else "1")
    assert rejected(signer, message).status == 403


def test_a_signature_made_with_another_key_fails(signer):
    forged = signer.notification({"a": 1})
    other = SnsSigner()
    from cryptography.hazmat.primitives.asymmetric import rsa

    other.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged["Signature"] = other.sign(forged)["Signature"]
    assert rejected(signer, forged).reason == "signature does not verify"


def test_version_1_signature_claimed_as_version_2_fails(signer):
    message = signer.notification({"a": 1}, version="1")
    message["SignatureVersion"] = "2"
    assert rejected(signer, message).status == 403


@pytest.mark.parametrize(
    "url",
    [
        "http://sns.eu-west-1.amazonaws.com/cert.pem",
        "https://sns.eu-west-1.amazonaws.com.evil.example/cert.pem",
        "https://evil.example/sns.eu-west-1.amazonaws.com/cert.pem",
        "https://s3.amazonaws.com/sns/cert.pem",
        "https://sns.eu-west-1.amazonaws.com/cert.txt",
        "https://user@sns.eu-west-1.amazonaws.com/cert.pem",
        "https://sns.eu-west-1.amazonaws.com:8443/cert.pem",
        "https://sns.amazonaws.com/cert.pem",
    ],
)
def test_certificate_must_come_from_an_sns_host(signer, url):
    message = signer.notification({"a": 1})
    message["SigningCertURL"] = url
    signer.certificates[url] = signer.certificates[CERT_URL]
    error = rejected(signer, signer.sign(message))
    assert error.status == 403 and "SigningCertURL" in error.reason
    assert signer.fetched == []


def test_china_region_certificate_url_is_accepted():
    check_certificate_url("https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-x.pem")


def test_expired_certificate_fails():
    signer = SnsSigner(expired=True)
    assert "expired" in rejected(signer, signer.notification({"a": 1})).reason


def test_stale_and_future_messages_fail(signer):
    old = signer.notification({"a": 1}, timestamp=datetime.now(UTC) - timedelta(hours=2))
    assert "stale" in rejected(signer, old).reason
    future = signer.notification({"a": 1}, timestamp=datetime.now(UTC) + timedelta(hours=1))
    assert "future" in rejected(signer, future).reason


def test_unsupported_signature_version_fails(signer):
    message = signer.notification({"a": 1})
    message["SignatureVersion"] = "3"
    assert rejected(signer, message).status == 403


def test_certificate_fetch_failure_is_a_retryable_error(signer):
    def broken(url):
        raise OSError("connection refused")

    check = SnsVerifier(CertificateCache(broken), max_age_seconds=3600)
    with pytest.raises(SnsRejected) as info:
        check.verify(roundtrip(signer.notification({})))
    assert info.value.status == 502


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not json", 400),
        (b"[]", 400),
        (b'{"Type": "Other"}', 400),
        (b'{"Type": "Notification", "MessageId": "m"}', 400),
    ],
)
def test_malformed_bodies_are_400(body, status):
    with pytest.raises(SnsRejected) as info:
        parse_message(body)
    assert info.value.status == status


def test_unsigned_messages_are_403(signer):
    message = signer.notification({"a": 1})
    for key in ("Signature", "SigningCertURL", "SignatureVersion"):
        unsigned = dict(message)
        del unsigned[key]
        with pytest.raises(SnsRejected) as info:
            parse_message(json.dumps(unsigned).encode())
        assert info.value.status == 403


def test_garbage_signature_is_403(signer):
    message = signer.notification({"a": 1})
    message["Signature"] = "!!!not base64!!!"
    assert rejected(signer, message).status == 403
