"""The service harness with storage hosts for vfolders and raw (byte) requests for transfers."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from tornado.httpclient import HTTPRequest

from backendai_hub import signing
from backendai_hub.vfolders.storage import StorageHosts
from tests.conftest import need_loopback_quotas
from tests.integration import service_harness as base

PREFIX, API = base.PREFIX, base.API

KEYS = {
    **base.KEYS,
    "carol": ("AKIACAROLCAROLCAROLC", "carol-secret-carol-secret-carol-sec-0007"),
    "mia": ("AKIAMIAMIAMIAMIAMIAM", "mia-secret-mia-secret-mia-secret-mi-0008"),
}

TENANCY = {
    "resource_policies": {
        "keypair": [{"name": "default"}, {"name": "nfs", "allowed_vfolder_hosts": ["nfs"]}],
        "user": [{"name": "upol", "max_vfolder_count": 3, "max_quota_size": "64m"}],
        "group": [{"name": "gpol", "max_vfolder_count": 2}],
    },
    "domains": [{"name": "default", "allowed_vfolder_hosts": ["local"]},
                {"name": "other", "allowed_vfolder_hosts": ["local"]}],
    "groups": [{"name": "ml", "domain": "default", "resource_policy": "gpol"}, {"name": "cv", "domain": "default"},
               {"name": "ml", "domain": "other"}],
    "users": [
        {"username": "root", "email": "root@example.com", "role": "superadmin", "domain": "default"},
        {"username": "dadmin", "email": "dadmin@example.com", "role": "domain-admin", "domain": "default"},
        {"username": "alice", "email": "alice@example.com", "domain": "default", "groups": ["ml"],
         "resource_policy": "upol"},
        {"username": "bob", "email": "bob@example.com", "domain": "default", "groups": ["cv"]},
        {"username": "carol", "email": "carol@example.com", "domain": "default", "groups": ["ml"]},
        {"username": "mia", "email": "mia@example.com", "domain": "default", "groups": ["ml"]},
        {"username": "odadmin", "email": "odadmin@example.com", "role": "domain-admin", "domain": "other"},
        {"username": "olivia", "email": "olivia@example.com", "domain": "other", "groups": ["ml"]},
    ],
    "keypairs": [{"user": u, "access_key": ak, "secret_key": sk} for u, (ak, sk) in KEYS.items()],
}


def make_template(path: Path) -> Path:
    return base.make_template(path, TENANCY)


class Service(base.Service):
    """The service with two storage hosts (and optionally loopback quotas) under ``workdir``."""

    keys = KEYS
    tenancy = TENANCY

    def __init__(self, template: Path, workdir: Path, *, quota_backend: str = "none",
                 server_options: dict | None = None):
        if quota_backend == "loopback":
            need_loopback_quotas()
        self.storage = StorageHosts(hosts={"local": str(workdir / "vf-local"), "nfs": str(workdir / "vf-nfs")},
                                    quota_backend=quota_backend)
        super().__init__(template, workdir, settings={"vfolder_storage": self.storage},
                         server_options=server_options or {"max_buffer_size": 64 << 20})

    def headers(self, actor: str, method: str, url_path: str, content_type: str = "application/json") -> dict:
        ak, sk = self.keys[actor]
        return signing.sign(method, url_path, host=f"127.0.0.1:{self.port}", date=datetime.now(timezone.utc),
                            content_type=content_type, version=signing.API_VERSION, access_key=ak, secret_key=sk)

    async def raw(self, actor: str | None, method: str, path: str, body: bytes | None = None, *,
                  content_type: str = "application/json", headers: dict | None = None, **kw):
        """The tornado response (status, headers, bytes) of a signed request."""
        url_path = path if path.startswith("/") else API + path
        hdrs = {"Content-Type": content_type}
        if actor is not None:
            hdrs.update(self.headers(actor, method, url_path, content_type))
        hdrs.update(headers or {})
        req = HTTPRequest(self.base + url_path, method=method, headers=hdrs, body=body,
                          allow_nonstandard_methods=True, request_timeout=60, **kw)
        return await self.client.fetch(req, raise_error=False)

    async def call(self, actor: str | None, method: str, path: str, body=None, **kw):
        data = None if body is None else json.dumps(body).encode()
        resp = await self.raw(actor, method, path, data, **kw)
        text = resp.body.decode(errors="replace") if resp.body else ""
        try:
            payload = json.loads(text) if text else None
        except ValueError:
            payload = text
        return resp.code, payload
