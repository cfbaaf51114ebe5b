"""Keypair request signatures: round trip, the real backend.ai-client's wire format, every refusal."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import pytest
from tornado.httputil import HTTPHeaders

from backendai_hub import signing
from backendai_hub.signing import ReplayCache, SignatureError, parse_authorization, sign, verify
from tests.conftest import unavailable

REPO = Path(__file__).resolve().parents[2]
# Backend.AI's documented example keypair
AK = "AKIAIOSFODNN7EXAMPLE"
SK = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
ENDPOINT = "http://127.0.0.1:8000/services/backendai"
HOST = "127.0.0.1:8000"
PATH = "/services/backendai/folders?x=1"
NOW = datetime(2023, 9, 1, 12, 0, 0, tzinfo=timezone.utc)
HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def lookup(access_key: str) -> str | None:
    return SK if access_key == AK else None


def signed_headers(method="GET", path=PATH, *, date=NOW, secret=SK, **kw) -> dict[str, str]:
    headers = sign(method, path, host=HOST, date=date, access_key=AK, secret_key=secret, **kw)
    return {**headers, "Host": HOST}


def check(method="GET", path=PATH, headers=None, **kw):
    kw.setdefault("lookup_secret", lookup)
    kw.setdefault("now", NOW)
    return verify(method, path, signed_headers() if headers is None else headers, **kw)


# -- round trip ------------------------------------------------------------------------------------

@pytest.mark.parametrize("method, path, date, content_type", [
    ("GET", PATH, NOW, "application/json"),
    ("POST", "/services/backendai/folders", NOW - timedelta(minutes=14), "application/json"),
    ("DELETE", "/services/backendai/folders/a%20b?force=true&x=%C3%A9", NOW + timedelta(minutes=14), "text/plain"),
    ("PUT", PATH, NOW.replace(tzinfo=None), "application/json; charset=utf-8"),  # naive = UTC
])
def test_round_trip(method, path, date, content_type):
    headers = signed_headers(method, path, date=date, content_type=content_type)
    assert headers["Date"] == headers["X-BackendAI-Date"]
    assert headers["X-BackendAI-Version"] == signing.API_VERSION == "v7.20230615"
    assert headers["Content-Type"] == content_type
    got = verify(method, path, headers, lookup_secret=lookup, now=NOW, replay_cache=ReplayCache())
    assert got.access_key == AK and got.version == "v7.20230615"
    assert got.date == (date if date.tzinfo else date.replace(tzinfo=timezone.utc))


def test_the_key_uses_the_calendar_date_as_sent():
    # 08:55 on Sep 1 at +09:00 is Aug 31 in UTC; like the manager, the key takes the date as
    # sent ("20230901"), so a client in any timezone verifies
    date = datetime(2023, 9, 1, 8, 55, tzinfo=timezone(timedelta(hours=9)))
    now = datetime(2023, 9, 1, 0, 0, tzinfo=timezone.utc)
    assert check(headers=signed_headers(date=date), now=now).date == date
    utc_key = signing._signature(SK, method="GET", path_with_query=PATH, raw_date=date.isoformat(),
                                 date=date.astimezone(timezone.utc), host=HOST,
                                 content_type="application/json", version="v7.20230615")
    assert utc_key not in signed_headers(date=date)["Authorization"]


def test_headers_are_looked_up_case_insensitively():
    headers = signed_headers()
    assert check(headers={k.lower(): v for k, v in headers.items()}).access_key == AK
    assert check(headers=HTTPHeaders(headers)).access_key == AK  # what the tornado service passes


def test_the_signed_content_type_is_the_media_type_only():
    # the manager signs aiohttp's request.content_type (no parameters); the client's multipart
    # uploads are signed as "multipart/form-data" and sent with "; boundary=..."
    headers = signed_headers(content_type="multipart/form-data")
    headers["Content-Type"] = "multipart/form-data; boundary=abc123"
    assert check(headers=headers).access_key == AK


def test_x_backendai_date_stands_in_for_date():
    headers = signed_headers()
    del headers["Date"]
    assert check(headers=headers).date == NOW


@pytest.mark.parametrize("raw_date", [
    format_datetime(NOW, usegmt=True),            # RFC 1123: Fri, 01 Sep 2023 12:00:00 GMT
    "2023-09-01T12:00:00Z",
    "2023-09-01T12:00:00",                        # no zone: UTC, as the manager assumes
    "20230901T120000Z",
])
def test_other_date_formats(raw_date):
    # the signature covers the Date header exactly as sent
    sig = signing._signature(SK, method="GET", path_with_query=PATH, raw_date=raw_date, date=NOW,
                             host=HOST, content_type="application/json", version="v7.20230615")
    headers = {"Authorization": f"BackendAI signMethod=HMAC-SHA256, credential={AK}:{sig}",
               "Date": raw_date, "Host": HOST, "Content-Type": "application/json",
               "X-BackendAI-Version": "v7.20230615"}
    assert check(headers=headers).date == NOW


def test_parse_authorization():
    sig = "ab" * 32
    assert parse_authorization(f"BackendAI signMethod=HMAC-SHA256, credential={AK}:{sig}") == (
        "HMAC-SHA256", AK, sig)
    assert parse_authorization(f"BackendAI credential={AK}:{sig},signMethod=HMAC-SHA256 ") == (
        "HMAC-SHA256", AK, sig)


# -- the real client -------------------------------------------------------------------------------

def test_golden_vector_from_the_real_client():
    """Computed once with ai.backend.client.auth.generate_signature (backend.ai-client 23.9.10)."""
    headers = signed_headers(content_type="application/json")
    assert headers["Authorization"] == (
        f"BackendAI signMethod=HMAC-SHA256, credential={AK}:"
        "30cd53df02b07075d759ee849b36611ca6fef39a5f3b5afe0be50b81588f0f9c")


@pytest.fixture(scope="module")
def real_client():
    """What backend.ai-client 23.9 would send, captured by tests/bai_sign.py in its own venv."""
    python = os.environ.get("BACKENDAI_CLIENT_PYTHON") or str(REPO / ".venv-bai" / "bin" / "python")
    if not Path(python).exists():
        unavailable("backend.ai-client", f"{python} is missing; run scripts/ensure-bai-client.sh "
                    "or set BACKENDAI_CLIENT_PYTHON")
    spec = {"endpoint": ENDPOINT, "access_key": AK, "secret_key": SK, "requests": [
        {"method": "GET", "path": "/"},
        {"method": "GET", "path": "/folders", "params": {"q": "a b/é&x", "n": 1}},
        {"method": "POST", "path": "folders", "json": {"name": "données"}},
        {"method": "DELETE", "path": "/folders/my folder", "text": "x"},
        {"method": "POST", "path": "/folders/x/upload", "files": [["a.txt", "hi", "text/plain"]]},
    ]}
    proc = subprocess.run([python, str(REPO / "tests" / "bai_sign.py")], input=json.dumps(spec),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_real_client_requests_verify(real_client):
    assert real_client["client_version"].startswith("23.09.")
    sent = real_client["requests"]
    assert [(r["method"], r["path"]) for r in sent] == [
        ("GET", "/services/backendai/"),
        ("GET", "/services/backendai/folders?q=a+b/%C3%A9%26x&n=1"),
        ("POST", "/services/backendai/folders"),
        ("DELETE", "/services/backendai/folders/my%20folder"),
        ("POST", "/services/backendai/folders/x/upload"),
    ]
    cache = ReplayCache()
    for r in sent:
        h = r["headers"]
        # it signs the request-line path, endpoint prefix and query included, and the endpoint's
        # netloc (port included) which aiohttp also sends as Host
        assert r["signed_rel_url"] == r["path"]
        assert h["Host"] == HOST
        assert h["X-BackendAI-Version"] == "v7.20230615"
        assert "X-BackendAI-Date" not in h and datetime.fromisoformat(h["Date"]).utcoffset() == timedelta(0)
        got = verify(r["method"], r["path"], HTTPHeaders(h), lookup_secret=lookup, replay_cache=cache)
        assert got.access_key == AK and got.version == "v7.20230615"
        # and our signer, given the same inputs, writes the same Authorization header
        ours = sign(r["method"], r["path"], host=HOST, date=datetime.fromisoformat(h["Date"]),
                    content_type=h["Content-Type"], access_key=AK, secret_key=SK)
        assert ours["Authorization"] == h["Authorization"] and ours["Date"] == h["Date"]
    assert sent[-1]["headers"]["Content-Type"].startswith("multipart/form-data; boundary=")


def test_real_client_requests_refused_when_tampered(real_client):
    r = real_client["requests"][1]
    with pytest.raises(SignatureError) as e:
        verify(r["method"], r["path"].replace("n=1", "n=2"), r["headers"], lookup_secret=lookup)
    assert e.value.reason == "mismatch"
    with pytest.raises(SignatureError) as e:
        verify(r["method"], r["path"], r["headers"], lookup_secret=lambda ak: SK + "x")
    assert e.value.reason == "mismatch" and SK not in str(e.value)


def test_real_client_version_probe(real_client):
    # the handshake: an unsigned GET of the endpoint itself, no trailing slash; the reply must be
    # JSON with "version": "vN.YYYYMMDD"
    (probe,) = real_client["version_probe"]
    assert probe["url"] == ENDPOINT and "Authorization" not in probe["headers"]
    assert real_client["api_version"] == "v7.20230615"


# -- refusals --------------------------------------------------------------------------------------

def _without(name):
    def edit(h):
        del h[name]
    return edit


def _set(name, value):
    def edit(h):
        h[name] = value
    return edit


def _auth(fmt):
    def edit(h):
        sig = h["Authorization"].rsplit(":", 1)[1]
        h["Authorization"] = fmt.format(ak=AK, sig=sig)
    return edit


# (id, expected reason, header edit, verify kwargs)
REFUSALS = [
    ("wrong secret", "mismatch", None, {"lookup_secret": lambda ak: "not-" + SK}),
    ("16 min ahead", "skew", None, {"now": NOW - timedelta(minutes=16)}),
    ("16 min behind", "skew", None, {"now": NOW + timedelta(minutes=16)}),
    ("tampered path", "mismatch", None, {"path": "/services/backendai/folderz?x=1"}),
    ("tampered query", "mismatch", None, {"path": "/services/backendai/folders?x=2"}),
    ("path without prefix", "mismatch", None, {"path": "/folders?x=1"}),
    ("tampered method", "mismatch", None, {"method": "DELETE"}),
    ("tampered version", "mismatch", _set("X-BackendAI-Version", "v6.20230315"), {}),
    ("tampered host", "mismatch", _set("Host", "127.0.0.1:8001"), {}),
    ("tampered content type", "mismatch", _set("Content-Type", "text/plain"), {}),
    ("tampered date", "mismatch", _set("Date", (NOW + timedelta(seconds=1)).isoformat()), {}),
    ("unknown key", "unknown-key", None, {"lookup_secret": lambda ak: None}),
    ("no authorization", "missing", _without("Authorization"), {}),
    ("empty authorization", "missing", _set("Authorization", "  "), {}),
    ("other scheme", "malformed", _auth("Bearer {sig}"), {}),
    ("legacy Sorna scheme", "malformed", _auth("Sorna signMethod=HMAC-SHA256, credential={ak}:{sig}"), {}),
    ("scheme only", "malformed", _auth("BackendAI"), {}),
    ("no credential", "malformed", _auth("BackendAI signMethod=HMAC-SHA256"), {}),
    ("no signMethod", "malformed", _auth("BackendAI credential={ak}:{sig}"), {}),
    ("credential without colon", "malformed", _auth("BackendAI signMethod=HMAC-SHA256, credential={ak}{sig}"), {}),
    ("empty access key", "malformed", _auth("BackendAI signMethod=HMAC-SHA256, credential=:{sig}"), {}),
    ("parameter without =", "malformed", _auth("BackendAI signMethod=HMAC-SHA256, credential={ak}:{sig}, x"), {}),
    ("repeated parameter", "malformed",
     _auth("BackendAI signMethod=HMAC-SHA256, credential={ak}:{sig}, credential={ak}:{sig}"), {}),
    ("short signature", "malformed", _auth("BackendAI signMethod=HMAC-SHA256, credential={ak}:abcd"), {}),
    ("non-hex signature", "malformed", _auth("BackendAI signMethod=HMAC-SHA256, credential={ak}:" + "é" * 64), {}),
    ("HMAC-SHA1", "unsupported-method", _auth("BackendAI signMethod=HMAC-SHA1, credential={ak}:" + "a" * 40), {}),
    ("plain SHA256", "unsupported-method", _auth("BackendAI signMethod=SHA256, credential={ak}:{sig}"), {}),
    ("no date", "missing-date", lambda h: (h.pop("Date"), h.pop("X-BackendAI-Date")), {}),
    ("bad date", "bad-date", _set("Date", "yesterday at noon"), {}),
    ("no version", "bad-version", _without("X-BackendAI-Version"), {}),
    ("bad version", "bad-version", _set("X-BackendAI-Version", "7.20230615"), {}),
    ("body-signing version", "bad-version", _set("X-BackendAI-Version", "v3.20170615"), {}),
    ("no host", "malformed", _without("Host"), {}),
]


@pytest.mark.parametrize("reason, edit, kwargs", [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_refusals(reason, edit, kwargs):
    headers = signed_headers()
    if edit:
        edit(headers)
    kwargs = dict(kwargs)
    method, path = kwargs.pop("method", "GET"), kwargs.pop("path", PATH)
    with pytest.raises(SignatureError) as e:
        check(method, path, headers, **kwargs)
    assert e.value.reason == reason
    message = str(e.value)
    assert message and SK not in message
    assert not HEX64.search(message), "neither the expected nor the given signature may be echoed"


def test_replayed_signature_is_refused():
    cache = ReplayCache()
    headers = signed_headers()
    check(headers=headers, replay_cache=cache)
    with pytest.raises(SignatureError) as e:
        check(headers=headers, replay_cache=cache, now=NOW + timedelta(minutes=5))
    assert e.value.reason == "replay" and SK not in str(e.value)
    # an upper-case spelling of the same signature is the same signature
    upper = dict(headers, Authorization=headers["Authorization"].rsplit(":", 1)[0] + ":"
                 + headers["Authorization"].rsplit(":", 1)[1].upper())
    with pytest.raises(SignatureError) as e:
        check(headers=upper, replay_cache=cache)
    assert e.value.reason == "replay"
    # a fresh signature (another date) is fine
    check(headers=signed_headers(date=NOW + timedelta(microseconds=1)), replay_cache=cache)


def test_failed_signatures_are_not_remembered():
    cache = ReplayCache()
    headers = signed_headers()
    with pytest.raises(SignatureError):
        check(headers=headers, replay_cache=cache, lookup_secret=lambda ak: "wrong")
    assert len(cache) == 0
    check(headers=headers, replay_cache=cache)


def test_lookup_may_refuse_an_inactive_key():
    def inactive(ak):
        raise SignatureError("inactive", f"keypair {ak!r} is inactive")

    with pytest.raises(SignatureError) as e:
        check(lookup_secret=inactive)
    assert e.value.reason == "inactive"


def test_replay_window_shorter_than_skew_is_a_programming_error():
    with pytest.raises(ValueError):
        check(replay_cache=ReplayCache(window=timedelta(minutes=5)))


def test_skew_is_configurable():
    late = dict(now=NOW + timedelta(minutes=2))
    with pytest.raises(SignatureError) as e:
        check(max_skew=timedelta(minutes=1), **late)
    assert e.value.reason == "skew" and "120 s behind" in str(e.value)
    assert check(max_skew=timedelta(minutes=3), **late).access_key == AK


# -- the replay cache ------------------------------------------------------------------------------

def test_replay_cache_forgets_after_the_window():
    cache = ReplayCache(window=timedelta(minutes=15))
    assert cache.seen("s1", NOW, now=NOW) is False
    assert cache.seen("s1", NOW, now=NOW + timedelta(minutes=14)) is True
    assert cache.seen("s1", NOW, now=NOW + timedelta(minutes=15)) is False  # window closed: evicted
    cache.seen("s2", NOW + timedelta(minutes=20), now=NOW + timedelta(minutes=20))
    assert cache.seen("s3", NOW, now=NOW + timedelta(minutes=40)) is False
    assert len(cache) == 1  # s1, s2 gone; s3 recorded


def test_replay_cache_is_bounded():
    cache = ReplayCache(max_entries=3)
    for i in range(10):
        assert cache.seen(f"s{i}", NOW + timedelta(seconds=i), now=NOW) is False
    assert len(cache) == 3
    assert cache.seen("s9", NOW, now=NOW) is True  # the newest are kept
    assert cache.seen("s0", NOW, now=NOW) is False


def test_replay_cache_is_thread_safe():
    cache = ReplayCache()
    fresh = []

    def worker():
        fresh.extend(s for s in range(2000) if not cache.seen(str(s), NOW, now=NOW))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(fresh) == list(range(2000))  # each signature accepted exactly once
