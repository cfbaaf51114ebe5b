"""Credentials: keypair format, secret encryption at rest, password hashing."""

import os
import re

import pytest
from cryptography.fernet import Fernet

from backendai_hub.keys import (
    CryptKeyError,
    SecretBox,
    generate_keypair,
    hash_password,
    load_or_create_key_file,
    parse_keys,
    verify_password,
)


def test_keypair_has_backend_ai_format_and_is_unique():
    pairs = {generate_keypair() for _ in range(200)}
    assert len(pairs) == 200
    for ak, sk in pairs:
        assert re.fullmatch(r"AKIA[A-Z2-7]{16}", ak)
        assert len(sk) == 40 and re.fullmatch(r"[A-Za-z0-9_-]{40}", sk)


def test_secret_box_round_trip_and_rotation():
    old, new = Fernet.generate_key(), Fernet.generate_key()
    token = SecretBox([old]).encrypt("s3cret")
    assert b"s3cret" not in token
    rotated = SecretBox([new, old])
    assert rotated.decrypt(token) == "s3cret"
    assert SecretBox([new]).decrypt(rotated.rotate(token)) == "s3cret"


def test_secret_box_with_wrong_key_says_so():
    token = SecretBox([Fernet.generate_key()]).encrypt("x")
    with pytest.raises(CryptKeyError, match="cannot be decrypted"):
        SecretBox([Fernet.generate_key()]).decrypt(token)


@pytest.mark.parametrize("keys", [[], [b"not-a-key"]])
def test_secret_box_refuses_missing_or_bad_keys(keys):
    with pytest.raises(CryptKeyError):
        SecretBox(keys)


def test_key_file_is_created_private_and_reused(tmp_path):
    path = tmp_path / "sub" / "key"
    first = load_or_create_key_file(path)
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert load_or_create_key_file(path) == first
    os.chmod(path, 0o644)
    with pytest.raises(CryptKeyError, match="readable by others"):
        load_or_create_key_file(path)


def test_parse_keys_accepts_separators_and_comments():
    assert parse_keys("a;b,c\n# comment\n\nd") == [b"a", b"b", b"c", b"d"]


def test_password_hash_is_argon2id_and_verifies():
    h = hash_password("correct horse")
    assert h.startswith("$argon2id$")
    assert verify_password(h, "correct horse")
    assert not verify_password(h, "wrong horse")
    assert not verify_password(None, "anything")
    assert not verify_password("garbage", "anything")


def test_derived_keys_last_with_the_key_and_are_separate_per_label():
    key, other = Fernet.generate_key(), Fernet.generate_key()
    a = SecretBox([key]).derive("transfer-tokens")
    assert a == SecretBox([key, other]).derive("transfer-tokens")  # a new process, the same key file
    assert len(a) == 32 and key not in a and a != SecretBox([key]).derive("something-else")
    assert a != SecretBox([other, key]).derive("transfer-tokens")  # the newest key signs
