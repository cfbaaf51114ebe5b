"""The REST service with the vfolder routes, in process, on a real port, called with signed requests.

Builds the app with ``make_app`` exactly like ``service_harness`` and adds ``service.vfolders``
routes in front of the API's catch-all 404 (what app.py does once they are wired in there).
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

from jupyterhub.services.auth import HubOAuth
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from backendai_hub import fixtures as F
from backendai_hub import signing
from backendai_hub.db import Database
from backendai_hub.service import vfolders as V
from backendai_hub.service.app import make_app
from backendai_hub.vfolders.storage import StorageHosts

PREFIX = "/services/backendai/"
API = f"{PREFIX}api/v1/"

KEYS = {
    "root": ("AKIAROOTROOTROOTROOT", "root-secret-root-secret-root-secret-0001"),
    "dadmin": ("AKIADADMINDADMINDADM", "dadmin-secret-dadmin-secret-dadmin-0002"),
    "alice": ("AKIAALICEALICEALICEA", "alice-secret-alice-secret-alice-sec-0003"),
    "bob": ("AKIABOBBOBBOBBOBBOBB", "bob-secret-bob-secret-bob-secret-bo-0004"),
    "carol": ("AKIACAROLCAROLCAROLC", "carol-secret-carol-secret-carol-sec-0007"),
    "mia": ("AKIAMIAMIAMIAMIAMIAM", "mia-secret-mia-secret-mia-secret-mi-0008"),
    "odadmin": ("AKIAODADMINODADMINOD", "odadmin-secret-odadmin-secret-odad-0005"),
    "olivia": ("AKIAOLIVIAOLIVIAOLIV", "olivia-secret-olivia-secret-olivia-0006"),
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
    db = Database(url=f"sqlite:///{path / 'template.sqlite'}", crypt_key_file=str(path / "key"))
    db.upgrade()
    with db.session() as s:
        F.populate(s, db.secrets, TENANCY)
    db.dispose()
    return path


def add_vfolder_routes(app, prefix: str = PREFIX) -> None:
    """Put the vfolder routes in front of the API's catch-all, as app.py will."""
    router = app.wildcard_router
    n = len(router.rules)
    api = f"{prefix}api/v1/"
    router.add_rules([(f"{api}{route}/?", handler) for route, handler in V.ROUTES]
                     + [(f"{prefix}{route}", handler) for route, handler in V.COMPAT_ROUTES])
    new = router.rules[n:]
    del router.rules[n:]
    router.rules[0:0] = new


class Service:
    def __init__(self, template: Path, workdir: Path, *, quota_backend: str = "none"):
        shutil.copy(template / "template.sqlite", workdir / "db.sqlite")
        shutil.copy(template / "key", workdir / "key")
        (workdir / "key").chmod(0o600)
        self.db = Database(url=f"sqlite:///{workdir / 'db.sqlite'}", crypt_key_file=str(workdir / "key"))
        self.storage = StorageHosts(hosts={"local": str(workdir / "vf-local"), "nfs": str(workdir / "vf-nfs")},
                                    quota_backend=quota_backend)
        hub_auth = HubOAuth(api_token="unused", api_url="http://127.0.0.1:9/hub/api", cache_max_age=0)
        self.app = make_app(self.db, prefix=PREFIX, hub_auth=hub_auth)
        self.app.settings["vfolder_storage"] = self.storage
        add_vfolder_routes(self.app)
        sockets = bind_sockets(0, "127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        self.server = HTTPServer(self.app, max_buffer_size=64 << 20)
        self.server.add_sockets(sockets)
        self.base = f"http://127.0.0.1:{self.port}"
        self.client = AsyncHTTPClient()

    def headers(self, actor: str, method: str, url_path: str, content_type: str = "application/json") -> dict:
        ak, sk = KEYS[actor]
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

    def stop(self):
        self.server.stop()
        self.db.dispose()
