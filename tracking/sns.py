"""Amazon SNS message verification, exactly as AWS documents it.

A message is trusted only when:

* it is well-formed JSON of a known ``Type`` with every signed field a string;
* ``SigningCertURL`` is ``https://sns.<region>.amazonaws.com/...pem`` (China regions:
  ``.amazonaws.com.cn``); the certificate is fetched without following redirects and
  cached, and must be within its validity period;
* ``Signature`` (base64) verifies over the documented string to sign with the
  certificate's RSA key: ``SignatureVersion`` 1 is SHA1withRSA, 2 is SHA256withRSA. The
  string to sign is ``Key\\nValue\\n`` for, in this order, ``Message, MessageId,
  [Subject,] Timestamp, TopicArn, Type`` (Notification; Subject only when present) or
  ``Message, MessageId, SubscribeURL, Timestamp, Token, TopicArn, Type``
  (SubscriptionConfirmation, UnsubscribeConfirmation);
* its ``Timestamp`` is no older than the allowed age (nor in the future).

Every failure raises :class:`SnsRejected` with the HTTP status to answer.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import time
import urllib.request
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

SIGNED_FIELDS: dict[str, tuple[str, ...]] = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
    "UnsubscribeConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
_OPTIONAL = frozenset({"Subject"})
_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
_SNS_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?$")
#: A message from further in the future than this is rejected (clock skew allowance).
MAX_CLOCK_SKEW_SECONDS = 300.0
MAX_CERTIFICATE_BYTES = 64 * 1024

CertificateFetcher = Callable[[str], bytes]


class SnsRejected(Exception):
    """The message is not to be trusted or not understood; answer ``status``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def parse_message(body: bytes) -> dict[str, Any]:
    """The SNS message in ``body``; SnsRejected(400) if malformed, (403) if unsigned."""
    try:
        message = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise SnsRejected(400, "body is not JSON") from None
    if not isinstance(message, dict):
        raise SnsRejected(400, "body is not a JSON object")
    kind = message.get("Type")
    if kind not in SIGNED_FIELDS:
        raise SnsRejected(400, f"unknown SNS message type {kind!r}")
    for key in SIGNED_FIELDS[kind]:
        value = message.get(key)
        if value is None and key in _OPTIONAL:
            continue
        if not isinstance(value, str):
            raise SnsRejected(400, f"{key} is missing or not a string")
    for key in ("Signature", "SignatureVersion", "SigningCertURL"):
        if not isinstance(message.get(key), str) or not message[key]:
            raise SnsRejected(403, f"unsigned message: {key} is missing")
    return message


def string_to_sign(message: dict[str, Any]) -> bytes:
    """The bytes AWS signed for ``message`` (see the module docstring)."""
    lines = []
    for key in SIGNED_FIELDS[message["Type"]]:
        if key in _OPTIONAL and message.get(key) is None:
            continue
        lines.append(f"{key}\n{message[key]}\n")
    return "".join(lines).encode("utf-8")


def is_sns_url(url: str) -> bool:
    """True for ``https://sns.<region>.amazonaws.com/...`` (no userinfo, default port)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    return (
        parts.scheme == "https"
        and parts.username is None
        and port in (None, 443)
        and bool(_SNS_HOST.match(parts.hostname or ""))
    )


def check_certificate_url(url: str) -> None:
    """SnsRejected(403) unless ``url`` is an SNS signing certificate's URL."""
    if not is_sns_url(url) or not urlsplit(url).path.endswith(".pem"):
        raise SnsRejected(403, f"SigningCertURL {url!r} is not an SNS certificate URL")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def https_get(url: str, *, timeout: float = 10.0, limit: int = MAX_CERTIFICATE_BYTES) -> bytes:
    """GET ``url`` without following redirects; at most ``limit`` bytes."""
    opener = urllib.request.build_opener(_NoRedirects)
    with opener.open(url, timeout=timeout) as response:
        data = response.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{url} answered more than {limit} bytes")
    return data


class CertificateCache:
    """Signing certificates by URL, fetched once (``fetch``) and kept ``ttl`` seconds."""

    def __init__(
        self,
        fetch: CertificateFetcher = https_get,
        *,
        max_entries: int = 32,
        ttl: float = 24 * 3600.0,
    ) -> None:
        self.fetch = fetch
        self.max_entries = max_entries
        self.ttl = ttl
        self._entries: OrderedDict[str, tuple[float, x509.Certificate]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, url: str) -> x509.Certificate:
        """The certificate at ``url``; SnsRejected(502) if it cannot be fetched or read."""
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(url)
            if entry is not None and entry[0] > now:
                self._entries.move_to_end(url)
                return entry[1]
        try:
            certificate = x509.load_pem_x509_certificate(self.fetch(url))
        except Exception as exc:
            raise SnsRejected(502, f"cannot load the signing certificate: {exc}") from None
        with self._lock:
            self._entries[url] = (now + self.ttl, certificate)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return certificate


class SnsVerifier:
    """Verifies messages against certificates from ``certificates``."""

    def __init__(
        self,
        certificates: CertificateCache,
        *,
        max_age_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.certificates = certificates
        self.max_age_seconds = max_age_seconds
        self.clock = clock

    def verify(self, message: dict[str, Any]) -> None:
        """Return if ``message`` (from :func:`parse_message`) is authentic and fresh;
        raise SnsRejected otherwise."""
        algorithm = _HASHES.get(message["SignatureVersion"])
        if algorithm is None:
            raise SnsRejected(403, f"unsupported SignatureVersion {message['SignatureVersion']!r}")
        check_certificate_url(message["SigningCertURL"])
        self._check_fresh(message["Timestamp"])
        try:
            signature = base64.b64decode(message["Signature"], validate=True)
        except (binascii.Error, ValueError):
            raise SnsRejected(403, "Signature is not base64") from None
        certificate = self.certificates.get(message["SigningCertURL"])
        self._check_certificate(certificate)
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise SnsRejected(403, "signing certificate does not hold an RSA key")
        try:
            key.verify(signature, string_to_sign(message), padding.PKCS1v15(), algorithm())
        except InvalidSignature:
            raise SnsRejected(403, "signature does not verify") from None

    def _check_fresh(self, timestamp: str) -> None:
        try:
            moment = datetime.fromisoformat(timestamp)
        except ValueError:
            raise SnsRejected(400, f"bad Timestamp {timestamp!r}") from None
        sent = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
        age = self.clock() - sent
        if age > self.max_age_seconds:
            raise SnsRejected(403, f"stale message: sent {age:.0f} s ago")
        if age < -MAX_CLOCK_SKEW_SECONDS:
            raise SnsRejected(403, "message is dated in the future")

    def _check_certificate(self, certificate: x509.Certificate) -> None:
        now = self.clock()
        if not (
            certificate.not_valid_before_utc.timestamp()
            <= now
            <= certificate.not_valid_after_utc.timestamp()
        ):
            raise SnsRejected(403, "signing certificate is expired or not yet valid")
