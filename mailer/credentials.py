"""Secrets at rest: credentials are encrypted with a key derived from MAILER_SECRET_KEY.

Without ``MAILER_SECRET_KEY`` a random key is generated once under ``MAILER_HOME``
(mode 0600), which suits one machine; production sets the variable on every host.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mailer.config import Settings
from mailer.errors import MailerError


class SecretKeyError(MailerError):
    """A stored credential cannot be decrypted with the configured key."""


def secret_key(settings: Settings) -> str:
    """The configured secret, or the one generated under ``settings.home``."""
    if settings.secret_key:
        return settings.secret_key
    path = Path(settings.home) / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def derive_key(secret: str, purpose: str) -> bytes:
    """A 32-byte key for ``purpose`` derived from ``secret`` with HKDF-SHA256."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode())
    return hkdf.derive(secret.encode())


class CredentialBox:
    """Encrypts and decrypts account credentials (Fernet: AES-128-CBC + HMAC-SHA256)."""

    def __init__(self, secret: str) -> None:
        key = base64.urlsafe_b64encode(derive_key(secret, "mailer credentials v1"))
        self._fernet = Fernet(key)

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise SecretKeyError(
                "stored credential does not decrypt: MAILER_SECRET_KEY differs from the "
                "key it was encrypted with"
            ) from None
