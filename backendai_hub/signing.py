"""Backend.AI keypair request signatures (HMAC-SHA256), wire-compatible with backend.ai-client 23.9."""

# Wire format, as ai/backend/client/auth.py:generate_signature (client 23.9) produces it and
# ai/backend/manager/api/auth.py:sign_request checks it:
#
#   Authorization: BackendAI signMethod=HMAC-SHA256, credential=<access key>:<hex signature>
#   signing key  = HMAC(HMAC(secret, date.strftime("%Y%m%d")), host)
#   signed bytes = "\n".join([METHOD, raw path?query, raw Date header, "host:" + host,
#                             "content-type:" + media type, "x-backendai-version:" + version,
#                             sha256(b"").hexdigest()]).encode()
#
# Since API v4.20181215 the body is never hashed (the digest is always that of b""), so uploads
# can stream; the date string is the header exactly as sent; the date used for the key is the
# parsed date in its own timezone (the client sends UTC).

from __future__ import annotations

import hashlib
import heapq
import hmac
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

__all__ = [
    "API_VERSION",
    "ReplayCache",
    "SignatureError",
    "SignedRequest",
    "parse_authorization",
    "sign",
    "unknown_key",
    "verify",
]

API_VERSION = "v7.20230615"  # what backend.ai-client 23.9 sends (ai.backend.client.config.API_VERSION)
SIGN_METHOD = "HMAC-SHA256"
# the first revision that signs headers only (the manager hashes request bodies below it)
_MIN_VERSION = "v4.20181215"
_VERSION_RE = re.compile(r"^v(\d+)\.(\d{8})$")
_HEX64_RE = re.compile(r"^[0-9a-fA-F]{64}$")
_EMPTY_BODY_HASH = hashlib.sha256(b"").hexdigest()
# aiohttp's request.content_type (what the manager signs) when the header is absent
_DEFAULT_CONTENT_TYPE = "application/octet-stream"


class SignatureError(Exception):
    """A refused signature; ``reason`` is a short machine string, ``str()`` a message safe to show."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class SignedRequest:
    """What a verified request proves: who signed it, when, and for which API version."""

    access_key: str
    date: datetime
    version: str


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive lookup that works for plain dicts and tornado's HTTPHeaders alike."""
    value = headers.get(name)
    if value is None:
        lname = name.lower()
        for key, v in headers.items():
            if key.lower() == lname:
                value = v
                break
    return value.strip() if isinstance(value, str) else None


def _media_type(content_type: str | None) -> str:
    """The media type without parameters, lowercased, as aiohttp's ``request.content_type`` gives it."""
    if not content_type:
        return _DEFAULT_CONTENT_TYPE
    return content_type.split(";", 1)[0].strip().lower() or _DEFAULT_CONTENT_TYPE


def parse_authorization(header: str) -> tuple[str, str, str]:
    """Split ``BackendAI signMethod=..., credential=AK:SIG`` into (sign_method, access_key, signature)."""
    if not header or not header.strip():
        raise SignatureError("missing", "the Authorization header is missing")
    scheme, _, rest = header.strip().partition(" ")
    if scheme != "BackendAI":
        raise SignatureError("malformed", "the Authorization header must start with 'BackendAI '")
    params: dict[str, str] = {}
    for part in rest.split(","):
        key, eq, value = part.partition("=")
        key = key.strip()
        if not eq or not key:
            raise SignatureError("malformed", "the Authorization header must be 'BackendAI "
                                 "signMethod=HMAC-SHA256, credential=<access key>:<signature>'")
        if key in params:
            raise SignatureError("malformed", f"the Authorization header repeats {key!r}")
        params[key] = value.strip()
    if "signMethod" not in params or "credential" not in params:
        raise SignatureError("malformed", "the Authorization header needs both signMethod and credential")
    access_key, colon, signature = params["credential"].partition(":")
    if not colon or not access_key or not signature:
        raise SignatureError("malformed", "the credential must be '<access key>:<signature>'")
    return params["signMethod"], access_key, signature


def _parse_date(raw: str) -> datetime:
    """ISO 8601 (what the client sends), RFC 1123, or compact ISO; naive means UTC, like the manager."""
    date: datetime | None = None
    iso = raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw
    try:
        date = datetime.fromisoformat(iso)
    except ValueError:
        for fmt in ("%Y%m%dT%H%M%S%z", "%Y%m%dT%H:%M:%S%z"):
            try:
                date = datetime.strptime(iso, fmt)
                break
            except ValueError:
                continue
    if date is None:
        try:
            date = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            date = None
    if date is None:
        raise SignatureError("bad-date", "the Date header is neither ISO 8601 (e.g. "
                             "2023-09-01T12:00:00.000000+00:00) nor RFC 1123")
    return date if date.tzinfo is not None else date.replace(tzinfo=timezone.utc)


def _check_version(version: str | None) -> str:
    if not version:
        raise SignatureError("bad-version", "the X-BackendAI-Version header is missing")
    m = _VERSION_RE.match(version)
    if m is None:
        raise SignatureError("bad-version", f"X-BackendAI-Version {version[:40]!r} is not of the form "
                             "vN.YYYYMMDD")
    if (int(m.group(1)), m.group(2)) < (4, _MIN_VERSION[3:]):
        raise SignatureError("bad-version", f"API version {version} signs request bodies; "
                             f"{_MIN_VERSION} or later is required")
    return version


def _signature(secret_key: str, *, method: str, path_with_query: str, raw_date: str, date: datetime,
               host: str, content_type: str, version: str) -> str:
    """The hex HMAC-SHA256 signature, byte for byte as ai.backend.client.auth.generate_signature."""
    signed = "\n".join([
        method.upper(),
        path_with_query,
        raw_date,
        "host:" + host,
        "content-type:" + content_type,
        "x-backendai-version:" + version,
        _EMPTY_BODY_HASH,
    ]).encode()
    key = hmac.new(secret_key.encode(), date.strftime("%Y%m%d").encode(), hashlib.sha256).digest()
    key = hmac.new(key, host.encode(), hashlib.sha256).digest()
    return hmac.new(key, signed, hashlib.sha256).hexdigest()


def sign(method: str, path_with_query: str, *, host: str, access_key: str, secret_key: str,
         date: datetime | None = None, content_type: str = "application/json",
         version: str = API_VERSION) -> dict[str, str]:
    """Headers that sign a request; ``host`` must equal the Host header the HTTP client will send."""
    if date is None:
        date = datetime.now(timezone.utc)
    elif date.tzinfo is None:
        date = date.replace(tzinfo=timezone.utc)
    raw_date = date.isoformat()
    signature = _signature(secret_key, method=method, path_with_query=path_with_query,
                           raw_date=raw_date, date=date, host=host,
                           content_type=_media_type(content_type), version=version)
    return {
        "Authorization": f"BackendAI signMethod={SIGN_METHOD}, credential={access_key}:{signature}",
        "Date": raw_date,
        "X-BackendAI-Date": raw_date,
        "X-BackendAI-Version": version,
        "Content-Type": content_type,
    }


class ReplayCache:
    """Thread-safe memory of recently accepted signatures, bounded in time (window) and size."""

    def __init__(self, window: timedelta = timedelta(minutes=15), max_entries: int = 100_000):
        if window <= timedelta(0) or max_entries < 1:
            raise ValueError("window must be positive and max_entries at least 1")
        self.window = window
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: set[str] = set()
        self._heap: list[tuple[datetime, str]] = []  # (expiry, signature), soonest first

    def __len__(self) -> int:
        return len(self._entries)

    def seen(self, signature: str, date: datetime, *, now: datetime | None = None) -> bool:
        """True if ``signature`` was recorded and its window is still open; otherwise record it."""
        now = now or datetime.now(timezone.utc)
        if date.tzinfo is None:
            date = date.replace(tzinfo=timezone.utc)
        with self._lock:
            while self._heap and self._heap[0][0] <= now:
                self._entries.discard(heapq.heappop(self._heap)[1])
            if signature in self._entries:
                return True
            # verify() accepts a date only while it is within max_skew (<= window) of now, so a
            # signature needs remembering until date + window and no longer
            heapq.heappush(self._heap, (date + self.window, signature))
            self._entries.add(signature)
            while len(self._heap) > self.max_entries:
                # full: forget the entry whose replay window closes soonest
                self._entries.discard(heapq.heappop(self._heap)[1])
            return False


def unknown_key(access_key: str) -> SignatureError:
    """The refusal of an access key nobody holds (``verify`` raises it; so does a caller whose cached
    key has gone since)."""
    return SignatureError("unknown-key", f"access key {access_key[:64]!r} is unknown")


def verify(method: str, path_with_query: str, headers: Mapping[str, str], *,
           lookup_secret: Callable[[str], str | None], now: datetime | None = None,
           max_skew: timedelta = timedelta(minutes=15), replay_cache: ReplayCache | None = None,
           host: str | None = None) -> SignedRequest:
    """Check a signed request (raw path with query, as on the request line) or raise SignatureError.

    ``lookup_secret`` maps an access key to its secret key, or None when unknown; it may itself
    raise SignatureError (e.g. reason "inactive"). ``host`` overrides the Host header when a proxy
    rewrites it. ``replay_cache.window`` must be at least ``max_skew``.
    """
    sign_method, access_key, signature = parse_authorization(_header(headers, "Authorization") or "")
    if sign_method.upper() != SIGN_METHOD:
        raise SignatureError("unsupported-method", f"signMethod {sign_method[:40]!r} is not supported; "
                             f"use {SIGN_METHOD}")
    if not _HEX64_RE.match(signature):
        raise SignatureError("malformed", "the signature must be 64 hexadecimal digits (HMAC-SHA256)")
    signature = signature.lower()  # one spelling per signature, for the replay cache
    version = _check_version(_header(headers, "X-BackendAI-Version"))

    raw_date = _header(headers, "Date") or _header(headers, "X-BackendAI-Date")
    if not raw_date:
        raise SignatureError("missing-date", "the request has neither a Date nor an X-BackendAI-Date header")
    date = _parse_date(raw_date)
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    if not (now - max_skew < date < now + max_skew):
        off = (date - now).total_seconds()
        raise SignatureError("skew", f"the request date is {abs(off):.0f} s "
                             f"{'ahead of' if off > 0 else 'behind'} the server clock; at most "
                             f"{max_skew.total_seconds():.0f} s is allowed (check the client's clock)")

    if host is None:
        host = _header(headers, "Host")
    if not host:
        raise SignatureError("malformed", "the Host header is missing")
    content_type = _media_type(_header(headers, "Content-Type"))

    secret_key = lookup_secret(access_key)
    if secret_key is None:
        raise unknown_key(access_key)
    expected = _signature(secret_key, method=method, path_with_query=path_with_query,
                          raw_date=raw_date, date=date, host=host, content_type=content_type,
                          version=version)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise SignatureError("mismatch", f"the signature does not match for access key {access_key!r} "
                             f"(signed: {method.upper()} {path_with_query[:200]!r}, host {host!r}, "
                             f"content-type {content_type!r}, version {version}); check the secret "
                             "key and the endpoint URL")

    if replay_cache is not None:
        if replay_cache.window < max_skew:
            raise ValueError("replay_cache.window must be at least max_skew")
        if replay_cache.seen(f"{access_key}:{signature}", date, now=now):
            raise SignatureError("replay", "this signature was already used; sign every request anew")
    return SignedRequest(access_key=access_key, date=date, version=version)
