"""Short-lived signed tokens of Backend.AI's transfer URLs: HMAC-SHA256 signed JSON with an expiry."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

from ..errors import BadToken

# backend.ai-client 23.9 asks the manager for an upload or download (request-upload /
# request-download), then talks to the "storage proxy" URL it gets back with only a ?token= and no
# keypair signature: the token names the user, the folder and the transfer.
TOKEN_TTL = 3600.0


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_token(secret: bytes, claims: dict, ttl: float = TOKEN_TTL, now: float | None = None) -> str:
    body = _b64(json.dumps({**claims, "exp": (now or time.time()) + ttl}, separators=(",", ":")).encode())
    sig = _b64(hmac.new(secret, body.encode(), hashlib.sha256).digest())
    return f"{body}.{sig}"


def read_token(secret: bytes, token: Any, kind: str, now: float | None = None) -> dict:
    if not isinstance(token, str) or not token.isascii() or token.count(".") != 1 or len(token) > 4096:
        raise BadToken("token: missing or malformed", field="token")
    body, sig = token.split(".")
    good = _b64(hmac.new(secret, body.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(good, sig):
        raise BadToken("token: bad signature", field="token")
    try:
        claims = json.loads(_unb64(body))
    except ValueError:
        raise BadToken("token: malformed", field="token") from None
    if not isinstance(claims, dict) or claims.get("kind") != kind:
        raise BadToken(f"token: not a {kind} token", field="token")
    if float(claims.get("exp", 0)) < (now or time.time()):
        raise BadToken("token: expired; request a new one", field="token")
    return claims
