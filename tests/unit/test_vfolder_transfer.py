"""Pure parts of transfers: HTTP ranges, tus metadata and lengths, compat tokens, folder names."""

import base64

import pytest

from backendai_hub.errors import InvalidInput
from backendai_hub.vfolders import transfer_tokens as C
from backendai_hub.vfolders.fields import check_name
from backendai_hub.errors import BadToken, RangeNotSatisfiable
from backendai_hub.vfolders.downloads import parse_range
from backendai_hub.vfolders.uploads import parse_length, parse_metadata

RANGES = [
    (None, 100, None), ("", 100, None), ("bytes=0-9", 100, (0, 9)), ("bytes=90-", 100, (90, 99)),
    ("bytes=-10", 100, (90, 99)), ("bytes=-1000", 100, (0, 99)), ("bytes=50-1000", 100, (50, 99)),
    ("bytes=0-0", 1, (0, 0)), ("bytes=5-2", 100, None), ("items=0-9", 100, None), ("bytes=0-9,20-29", 100, None),
    ("bytes=a-b", 100, None), ("bytes=100-", 100, 416), ("bytes=-0", 100, 416), ("bytes=0-", 0, 416),
]


@pytest.mark.parametrize("header, size, expected", RANGES)
def test_parse_range(header, size, expected):
    if expected == 416:
        with pytest.raises(RangeNotSatisfiable) as e:
            parse_range(header, size)
        assert e.value.size == size and e.value.status == 416
    else:
        assert parse_range(header, size) == expected


def test_tus_metadata_and_lengths():
    b64 = lambda s: base64.b64encode(s.encode()).decode()  # noqa: E731
    assert parse_metadata(f"path {b64('a/b.txt')},filename {b64('b.txt')},empty") == \
        {"path": "a/b.txt", "filename": "b.txt", "empty": ""}
    with pytest.raises(InvalidInput, match="Upload-Metadata"):
        parse_metadata("path !!!notbase64")
    assert parse_length("42", "Upload-Length") == 42
    for bad in (None, "", "-1", "1.5", "abc", str(1 << 50)):
        with pytest.raises(InvalidInput) as e:
            parse_length(bad, "Upload-Length")
        assert e.value.field == "Upload-Length"


def test_tokens_are_signed_typed_and_expire():
    secret = b"s" * 32
    token = C.make_token(secret, {"kind": "upload", "user": "alice"}, ttl=60, now=1000)
    assert C.read_token(secret, token, "upload", now=1010)["user"] == "alice"
    with pytest.raises(BadToken, match="expired"):
        C.read_token(secret, token, "upload", now=2000)
    with pytest.raises(BadToken, match="not a download token"):
        C.read_token(secret, token, "download", now=1010)
    with pytest.raises(BadToken, match="bad signature"):
        C.read_token(b"t" * 32, token, "upload", now=1010)
    body, sig = token.split(".")
    forged = base64.urlsafe_b64encode(b'{"kind":"upload","user":"root","exp":9e9}').decode().rstrip("=")
    with pytest.raises(BadToken, match="bad signature"):
        C.read_token(secret, f"{forged}.{sig}", "upload", now=1010)
    for junk in (None, "", "a.b.c", 5, "YQ.\u00e9", "\ud800.x"):
        with pytest.raises(BadToken):
            C.read_token(secret, junk, "upload")


@pytest.mark.parametrize("name, ok", [
    ("data", True), (".local", True), ("my-data_1.0", True), ("x" * 64, True), ("a/b", False), ("..", False),
    (".", False), ("..hidden", False), (".ssh", False), (".jupyter", False), ("", False), ("x" * 65, False),
    ("with space", False), ("tab\t", False), ("nul\x00", False), ("ünï", False), (None, False),
])
def test_folder_names(name, ok):
    if ok:
        assert check_name(name) == name
    else:
        with pytest.raises(InvalidInput) as e:
            check_name(name)
        assert e.value.field == "name"
