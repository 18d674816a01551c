"""Sign SNS messages as AWS does, with a certificate and key made in the test.

``SnsSigner`` holds an RSA key and a self-signed certificate; ``fetcher`` stands in for
the HTTPS GET of ``SigningCertURL`` and records which URLs were fetched.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from tracking.sns import string_to_sign

TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-notifications"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-test.pem"


def make_certificate(key: rsa.RSAPrivateKey, *, not_before: datetime, not_after: datetime) -> bytes:
    """A self-signed PEM certificate for ``key`` (CN sns.amazonaws.com)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


class SnsSigner:
    """Signs messages; ``certificates`` maps certificate URLs to PEM bytes."""

    _key: rsa.RSAPrivateKey | None = None

    def __init__(self, *, expired: bool = False) -> None:
        if SnsSigner._key is None:
            SnsSigner._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.key = SnsSigner._key
        now = datetime.now(UTC)
        if expired:
            span = (now - timedelta(days=30), now - timedelta(days=1))
        else:
            span = (now - timedelta(days=1), now + timedelta(days=30))
        self.certificates = {
            CERT_URL: make_certificate(self.key, not_before=span[0], not_after=span[1])
        }
        self.fetched: list[str] = []

    def fetcher(self, url: str) -> bytes:
        self.fetched.append(url)
        return self.certificates[url]

    def sign(self, message: dict[str, Any], *, version: str = "1") -> dict[str, Any]:
        """``message`` with SignatureVersion, SigningCertURL (unless set) and Signature."""
        message = {"SignatureVersion": version, "SigningCertURL": CERT_URL} | message
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
        signature = self.key.sign(string_to_sign(message), padding.PKCS1v15(), algorithm)
        message["Signature"] = base64.b64encode(signature).decode()
        return message

    def notification(
        self,
        payload: dict[str, Any],
        *,
        topic: str = TOPIC,
        timestamp: datetime | None = None,
        version: str = "1",
        subject: str | None = None,
    ) -> dict[str, Any]:
        """A signed Notification carrying ``payload`` as its Message."""
        message = {
            "Type": "Notification",
            "MessageId": str(uuid.uuid4()),
            "TopicArn": topic,
            "Message": json.dumps(payload),
            "Timestamp": _iso(timestamp),
            "UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe",
        }
        if subject is not None:
            message["Subject"] = subject
        return self.sign(message, version=version)

    def subscription(
        self, *, topic: str = TOPIC, subscribe_url: str | None = None
    ) -> dict[str, Any]:
        """A signed SubscriptionConfirmation."""
        url = subscribe_url or (
            "https://sns.eu-west-1.amazonaws.com/?Action="
            "ConfirmSubscription&TopicArn=" + topic + "&Token=abc"
        )
        return self.sign(
            {
                "Type": "SubscriptionConfirmation",
                "MessageId": str(uuid.uuid4()),
                "Token": "abc",
                "TopicArn": topic,
                "Message": "You have chosen to subscribe to the topic.",
                "SubscribeURL": url,
                "Timestamp": _iso(None),
            }
        )


def _iso(moment: datetime | None) -> str:
    moment = moment or datetime.fromtimestamp(time.time(), UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def ses_bounce(
    message_id: str, recipient: str, *, bounce_type: str = "Permanent", sub_type: str = "General"
) -> dict[str, Any]:
    """An SES bounce notification for a message sent with ``message_id``."""
    return {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": bounce_type,
            "bounceSubType": sub_type,
            "bouncedRecipients": [
                {
                    "emailAddress": recipient,
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                }
            ],
            "timestamp": "2026-01-01T00:00:00.000Z",
            "feedbackId": "0100-feedback",
        },
        "mail": _mail(message_id, recipient),
    }


def ses_complaint(message_id: str, recipient: str) -> dict[str, Any]:
    return {
        "notificationType": "Complaint",
        "complaint": {
            "complainedRecipients": [{"emailAddress": recipient}],
            "complaintFeedbackType": "abuse",
            "feedbackId": "0100-complaint",
            "timestamp": "2026-01-01T00:00:00.000Z",
        },
        "mail": _mail(message_id, recipient),
    }


def ses_delivery(message_id: str, recipient: str) -> dict[str, Any]:
    return {
        "notificationType": "Delivery",
        "delivery": {
            "recipients": [recipient],
            "smtpResponse": "250 2.6.0 Message received",
            "processingTimeMillis": 512,
            "timestamp": "2026-01-01T00:00:00.000Z",
        },
        "mail": _mail(message_id, recipient),
    }


def _mail(message_id: str, recipient: str) -> dict[str, Any]:
    return {
        "messageId": "0100018c-ses-id",
        "destination": [recipient],
        "source": "sender@example.com",
        "headersTruncated": False,
        "headers": [{"name": "Message-ID", "value": message_id}],
        "commonHeaders": {"messageId": message_id, "to": [recipient]},
    }
