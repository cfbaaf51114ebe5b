"""Credentials: keypair generation, secret-key encryption at rest, argon2id password hashing."""

from __future__ import annotations

import base64
import hmac
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

# OWASP's minimum settings for argon2id (Password Storage Cheat Sheet): memory in KiB and passes, any
# row of which will do. A deployment may hash at more cost than these, never at less.
ARGON2ID_FLOORS = ((47104, 1), (19456, 2), (12288, 3), (9216, 4), (7168, 5))
# and at most this much (a slip of units, bytes for KiB, would make every sign-in ask for gigabytes)
MAX_MEMORY_KIB = 4 << 20  # 4 GiB
MAX_TIME_COST = 64


class PasswordCostError(ValueError):
    """A password hashing cost that argon2 or OWASP's minimum refuses, or one written wrongly."""


@dataclass(frozen=True)
class PasswordCost:
    """What one argon2id password hash costs: passes over its memory, memory (KiB), and threads. The
    defaults are argon2-cffi's (RFC 9106's second recommended set with 64 MiB)."""

    time_cost: int = 3
    memory_kib: int = 65536
    parallelism: int = 4

    def problem(self) -> str | None:
        """Why this cost is refused (None: it is not)."""
        if not 1 <= self.parallelism <= 64:
            return f"password_parallelism: {self.parallelism} threads; use 1 to 64"
        if self.time_cost < 1 or self.memory_kib < 8 * self.parallelism:
            return "password_time_cost and password_memory_kib: argon2 needs at least 1 pass and 8 KiB per thread"
        if self.memory_kib > MAX_MEMORY_KIB:
            return (f"password_memory_kib: {self.memory_kib} KiB is more than {MAX_MEMORY_KIB} (4 GiB) a hash; "
                    f"the setting is in KiB (64 MiB is 65536)")
        if self.time_cost > MAX_TIME_COST:
            return f"password_time_cost: {self.time_cost} passes; use at most {MAX_TIME_COST}"
        if not any(self.memory_kib >= m and self.time_cost >= t for m, t in ARGON2ID_FLOORS):
            floors = ", ".join(f"{m} KiB with {t} pass{'es' if t > 1 else ''}" for m, t in ARGON2ID_FLOORS)
            return (f"password_memory_kib {self.memory_kib} with password_time_cost {self.time_cost} is below "
                    f"OWASP's minimum for argon2id (at least one of: {floors})")
        return None

    @classmethod
    def parse(cls, text: str, field: str = "BACKENDAI_HUB_PASSWORD_COST") -> PasswordCost:
        """argon2's own notation, ``m=19456,t=2,p=1`` (memory KiB, passes, threads; any of them, the
        others left at their defaults)."""
        names = {"m": "memory_kib", "t": "time_cost", "p": "parallelism"}
        values: dict[str, int] = {}
        for item in filter(None, (i.strip() for i in text.split(","))):
            key, sep, value = (part.strip() for part in item.partition("="))
            if not sep or key not in names or not (value.isascii() and value.isdigit()) or len(value) > 9:
                raise PasswordCostError(f"{field}: {item!r} is not m=<KiB>, t=<passes> or p=<threads> "
                                        f"(e.g. m=19456,t=2,p=1)")
            if names[key] in values:
                raise PasswordCostError(f"{field}: {key} is given twice")
            values[names[key]] = int(value)
        return cls(**values)


_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters


def set_password_cost(cost: PasswordCost) -> None:
    """Hash new passwords (and rehash old ones at their next sign-in) at ``cost``, in this process.
    Hashes made at another cost still verify: each names its own parameters."""
    global _hasher
    problem = cost.problem()
    if problem:
        raise PasswordCostError(problem)
    _hasher = PasswordHasher(time_cost=cost.time_cost, memory_cost=cost.memory_kib, parallelism=cost.parallelism)


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
    """Whether a hash was made at another cost than this process's (or another algorithm): a sign-in
    that proved the password then stores it hashed anew."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


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
