"""Credentials: keypair generation, secret-key encryption at rest, argon2id password hashing."""

from __future__ import annotations

import base64
import hmac
import os
import secrets
import stat
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters


class CryptKeyError(RuntimeError):
    """The encryption key for secret keys is missing, malformed, or cannot decrypt stored data."""


def generate_keypair() -> tuple[str, str]:
    """Backend.AI's format: access key ``AKIA`` + 16 base32 characters, a 40-character secret."""
    access_key = "AKIA" + base64.b32encode(secrets.token_bytes(10)).decode("ascii")
    secret_key = secrets.token_urlsafe(30)
    return access_key, secret_key


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant-time check; a missing or corrupt hash never matches."""
    if not password_hash:
        # spend comparable time so a missing hash is not distinguishable by timing
        hmac.compare_digest(b"x" * 32, secrets.token_bytes(32))
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def password_needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


def generate_password(length: int = 20) -> str:
    return secrets.token_urlsafe(length)[:length]


class SecretBox:
    """Encrypts keypair secrets with Fernet; several keys (newest first) allow rotation."""

    def __init__(self, keys: list[bytes]):
        if not keys:
            raise CryptKeyError("no encryption key configured for keypair secrets")
        self._keys = [bytes(k) for k in keys]
        try:
            self._fernet = MultiFernet([Fernet(k) for k in keys])
        except (ValueError, TypeError) as e:
            raise CryptKeyError(f"invalid encryption key: {e}") from None

    def encrypt(self, secret: str) -> bytes:
        return self._fernet.encrypt(secret.encode("utf-8"))

    def decrypt(self, token: bytes) -> str:
        try:
            return self._fernet.decrypt(bytes(token)).decode("utf-8")
        except InvalidToken:
            raise CryptKeyError("stored secret key cannot be decrypted with the configured key "
                                "(was the key file replaced?)") from None

    def rotate(self, token: bytes) -> bytes:
        return self._fernet.rotate(bytes(token))

    def derive(self, label: str) -> bytes:
        """A key of its own for ``label`` (HMAC-SHA256 of the newest key): as lasting as the key file,
        and telling nothing about it."""
        return hmac.new(self._keys[0], b"backendai-hub derived key\0" + label.encode(), "sha256").digest()


def parse_keys(text: str) -> list[bytes]:
    """Keys separated by ``;``, ``,`` or newlines, newest first (like ``JUPYTERHUB_CRYPT_KEY``)."""
    parts = [p.strip() for chunk in text.splitlines() for p in chunk.replace(",", ";").split(";")]
    return [p.encode("ascii") for p in parts if p and not p.startswith("#")]


def load_or_create_key_file(path: str | os.PathLike) -> list[bytes]:
    """Read the key file, creating it (mode 0600) with a fresh key if it does not exist."""
    p = Path(path)
    if not p.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(Fernet.generate_key().decode("ascii") + "\n")
    mode = stat.S_IMODE(p.stat().st_mode)
    if mode & 0o077:
        raise CryptKeyError(f"{p} is readable by others (mode {mode:o}); chmod 600 it")
    return parse_keys(p.read_text())
