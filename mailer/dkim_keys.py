"""DKIM: one signing key per sending domain, stored encrypted, and the signature itself.

A key is rsa-sha256 (RSA, 1024 bits at least) or ed25519-sha256 (RFC 8463), given as a
PEM file (``mailer dkim add``) or generated (``mailer dkim generate``). Its private half
is stored encrypted with the :class:`~mailer.credentials.CredentialBox`; its public half
makes the DNS TXT record ``<selector>._domainkey.<domain>``. :meth:`DkimKey.sign` puts a
``DKIM-Signature`` (dkimpy, relaxed/simple) on top of a rendered message, covering
:data:`SIGNED_HEADERS` where present.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailer.addresses import comparable_domain
from mailer.credentials import CredentialBox
from mailer.db import Database
from mailer.errors import MailerError

ALGORITHMS = ("rsa-sha256", "ed25519-sha256")
SIGNED_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-Id",
    "Feedback-ID",
    "Reply-To",
    "MIME-Version",
    "Content-Type",
)
MIN_RSA_BITS = 1024


class DkimKeyError(MailerError):
    """A key file that cannot be a DKIM key."""


@dataclass(frozen=True)
class DkimKey:
    """A domain's signing key (``private_pem`` is PKCS#8, unencrypted, in memory only)."""

    domain: str
    selector: str
    algorithm: str
    private_pem: str

    @classmethod
    def from_pem(cls, domain: str, selector: str, pem: str) -> DkimKey:
        """The key in ``pem`` (RSA or Ed25519, PKCS#1 or PKCS#8), or DkimKeyError."""
        private = _load(pem)
        algorithm = "ed25519-sha256" if isinstance(private, ed25519.Ed25519PrivateKey) else ""
        if isinstance(private, rsa.RSAPrivateKey):
            if private.key_size < MIN_RSA_BITS:
                raise DkimKeyError(f"an RSA DKIM key needs {MIN_RSA_BITS} bits at least")
            algorithm = "rsa-sha256"
        if not algorithm:
            raise DkimKeyError("a DKIM key must be RSA or Ed25519")
        pkcs8 = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return cls(domain.lower().rstrip("."), selector, algorithm, pkcs8)

    @classmethod
    def generate(cls, domain: str, selector: str, algorithm: str, bits: int = 2048) -> DkimKey:
        """A new key."""
        private: Any = (
            ed25519.Ed25519PrivateKey.generate()
            if algorithm == "ed25519-sha256"
            else rsa.generate_private_key(public_exponent=65537, key_size=bits)
        )
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return cls.from_pem(domain, selector, pem)

    @property
    def record_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"

    @property
    def public_key(self) -> str:
        """The ``p=`` value: base64 of the DER public key (RSA) or the raw 32 bytes."""
        public = _load(self.private_pem).public_key()
        if self.algorithm == "ed25519-sha256":
            raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        else:
            raw = public.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        return base64.b64encode(raw).decode()

    @property
    def txt_record(self) -> str:
        """The TXT record's text."""
        kind = "ed25519" if self.algorithm == "ed25519-sha256" else "rsa"
        return f"v=DKIM1; k={kind}; p={self.public_key}"

    def sign(self, data: bytes) -> bytes:
        """``data`` with a DKIM-Signature header on top (relaxed/simple)."""
        signature = dkim.sign(
            data,
            self.selector.encode(),
            self.domain.encode(),
            self._dkimpy_private_key(),
            canonicalize=(b"relaxed", b"simple"),
            signature_algorithm=self.algorithm.encode(),
            include_headers=[h.encode() for h in SIGNED_HEADERS],
        )
        return signature + data

    def _dkimpy_private_key(self) -> bytes:
        """What dkimpy takes: a PEM for RSA, the base64 raw seed for Ed25519."""
        private = _load(self.private_pem)
        if self.algorithm == "ed25519-sha256":
            raw = private.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
            return base64.b64encode(raw)
        return private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )


def _load(pem: str) -> Any:
    try:
        return serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise DkimKeyError(f"not an unencrypted PEM private key: {exc}") from None


class DkimKeyStore:
    """``dkim_keys``: one key per domain, its private half encrypted."""

    def __init__(self, db: Database, box: CredentialBox) -> None:
        self.db = db
        self.box = box

    async def save(self, key: DkimKey) -> None:
        """Store ``key``, replacing the domain's previous key."""
        await self.db.execute(
            "upsert_dkim_key",
            {
                "domain": key.domain,
                "selector": key.selector,
                "algorithm": key.algorithm,
                "private_key_encrypted": self.box.encrypt(key.private_pem),
                "public_key": key.public_key,
            },
        )

    async def for_domain(self, domain: str) -> DkimKey | None:
        """``domain``'s key: stored under its ASCII (punycode) name, as `mailer dkim` stores
        it, or as written (a key stored before names were made ASCII)."""
        for name in dict.fromkeys((comparable_domain(domain), domain.lower().rstrip("."))):
            row = await self.db.fetch_one("get_dkim_key", {"domain": name})
            if row is not None:
                break
        else:
            return None
        pem = self.box.decrypt(row["private_key_encrypted"])
        return DkimKey(row["domain"], row["selector"], row["algorithm"], pem)

    async def list(self) -> list[dict[str, Any]]:
        """Each domain's selector, algorithm and public key (never the private key)."""
        return await self.db.fetch_all("list_dkim_keys")
