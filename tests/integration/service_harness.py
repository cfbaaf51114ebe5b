"""The REST service in process on a real port and a real SQLite database, called with signed requests;
the ``template`` and ``svc`` fixtures every module of service tests uses (see ``service_fixtures``)."""

from __future__ import annotations

import inspect
import json
import shutil
from collections import namedtuple
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from jupyterhub.services.auth import HubOAuth
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from backendai_hub import fixtures as F
from backendai_hub import signing
from backendai_hub.db import Database
from backendai_hub.service.app import make_app

PREFIX = "/services/backendai/"
API = f"{PREFIX}api/v1/"

# who is who in the tenancy the service tests run against; keys are fixed so tables can name them
KEYS = {
    "root": ("AKIAROOTROOTROOTROOT", "root-secret-root-secret-root-secret-0001"),
    "dadmin": ("AKIADADMINDADMINDADM", "dadmin-secret-dadmin-secret-dadmin-0002"),
    "alice": ("AKIAALICEALICEALICEA", "alice-secret-alice-secret-alice-sec-0003"),
    "bob": ("AKIABOBBOBBOBBOBBOBB", "bob-secret-bob-secret-bob-secret-bo-0004"),
    "odadmin": ("AKIAODADMINODADMINOD", "odadmin-secret-odadmin-secret-odad-0005"),
    "olivia": ("AKIAOLIVIAOLIVIAOLIV", "olivia-secret-olivia-secret-olivia-0006"),
}

TENANCY = {
    "resource_policies": {
        "keypair": [{"name": "default"}, {"name": "gold", "total_resource_slots": {"cpu": 8}},
                    {"name": "unused"}],
        "user": [{"name": "upol", "max_vfolder_count": 3}],
        "group": [{"name": "gpol", "max_vfolder_count": 5}],
    },
    "domains": [{"name": "default"}, {"name": "other"}, {"name": "empty"}],
    "groups": [{"name": "ml", "domain": "default"}, {"name": "cv", "domain": "default"},
               {"name": "ml", "domain": "other"}],
    "users": [
        {"username": "root", "email": "root@example.com", "role": "superadmin", "domain": "default"},
        {"username": "dadmin", "email": "dadmin@example.com", "role": "domain-admin", "domain": "default",
         "groups": ["ml"]},
        {"username": "alice", "email": "alice@example.com", "domain": "default", "groups": ["ml"],
         "password": "alice-password"},
        {"username": "bob", "email": "bob@example.com", "domain": "default", "groups": ["cv"]},
        {"username": "odadmin", "email": "odadmin@example.com", "role": "domain-admin", "domain": "other"},
        {"username": "olivia", "email": "olivia@example.com", "domain": "other", "groups": ["ml"]},
    ],
    "keypairs": [{"user": u, "access_key": ak, "secret_key": sk} for u, (ak, sk) in KEYS.items()],
}


def make_template(path: Path, tenancy: dict | None = None) -> Path:
    """A SQLite database holding ``tenancy`` (default TENANCY), made once and copied for each test."""
    db = Database(url=f"sqlite:///{path / 'template.sqlite'}", crypt_key_file=str(path / "key"))
    db.upgrade()
    with db.session() as s:
        F.populate(s, db.secrets, tenancy or TENANCY)
    db.dispose()
    return path


class Service:
    """A running service on 127.0.0.1 with its own copy of the template database."""

    keys = KEYS
    tenancy = TENANCY

    def __init__(self, template: Path | None, workdir: Path, *, settings: dict | None = None,
                 server_options: dict | None = None, db: Database | None = None):
        """On a copy of ``template``'s SQLite database, or on ``db`` (populated by the caller)."""
        if db is None:
            shutil.copy(template / "template.sqlite", workdir / "db.sqlite")
            shutil.copy(template / "key", workdir / "key")
            (workdir / "key").chmod(0o600)
            db = Database(url=f"sqlite:///{workdir / 'db.sqlite'}", crypt_key_file=str(workdir / "key"))
        self.db = db
        # a HubOAuth that would only be asked about hub tokens; these tests sign with keypairs
        hub_auth = HubOAuth(api_token="unused", api_url="http://127.0.0.1:9/hub/api", cache_max_age=0)
        self.app = make_app(self.db, prefix=PREFIX, hub_auth=hub_auth)
        self.app.settings.update(settings or {})
        sockets = bind_sockets(0, "127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        self.server = HTTPServer(self.app, **(server_options or {}))
        self.server.add_sockets(sockets)
        self.base = f"http://127.0.0.1:{self.port}"
        self.client = AsyncHTTPClient()

    async def call(self, actor: str | None, method: str, path: str, body=None, *, headers=None,
                   secret: str | None = None, date: datetime | None = None):
        """``path`` is relative to the API root unless it starts with '/'; (status, JSON payload)."""
        resp = await self.fetch(actor, method, path, body, headers=headers, secret=secret, date=date)
        text = resp.body.decode() if resp.body else ""
        try:
            payload = json.loads(text) if text else None
        except ValueError:
            payload = text
        return resp.code, payload

    async def fetch(self, actor: str | None, method: str, path: str, body=None, *, headers=None,
                    secret: str | None = None, date: datetime | None = None):
        """As :meth:`call`, the whole response (status, headers, body)."""
        url_path = path if path.startswith("/") else API + path
        data = None if body is None else (body if isinstance(body, (bytes, str)) else json.dumps(body))
        hdrs = {"Content-Type": "application/json"}
        if actor is not None:
            ak, sk = self.keys[actor]
            hdrs.update(signing.sign(method, url_path, host=f"127.0.0.1:{self.port}",
                                     date=date or datetime.now(timezone.utc),
                                     content_type="application/json", version=signing.API_VERSION,
                                     access_key=ak, secret_key=secret or sk))
        hdrs.update(headers or {})
        req = HTTPRequest(self.base + url_path, method=method, headers=hdrs, body=data,
                          allow_nonstandard_methods=True)
        return await self.client.fetch(req, raise_error=False)

    def stop(self):
        self.server.stop()
        self.db.dispose()


ServiceFixtures = namedtuple("ServiceFixtures", "template svc")


def service_fixtures(service: type[Service] = Service, *, setup=None, **options):
    """The fixtures ``template`` (module: ``service.tenancy`` in a database, made once) and ``svc`` (each
    test: ``service(template, tmp_path, **options)`` on a real port, then ``setup(svc)``, awaited if async).
    A module binds what it needs: ``template, svc = service_fixtures(...)``; tests/integration/conftest.py
    binds the plain ones."""

    def template(tmp_path_factory):
        """The test tenancy, built once per module and copied for each test."""
        return make_template(tmp_path_factory.mktemp("tenancy"), service.tenancy)

    async def svc(template, tmp_path):
        """The service on a real port with a fresh copy of the tenancy."""
        s = service(template, tmp_path, **options)
        try:
            if setup is not None and inspect.isawaitable(done := setup(s)):
                await done
            yield s
        finally:
            s.stop()

    return ServiceFixtures(pytest.fixture(scope="module")(template), pytest.fixture(svc))


def path_of(url: str) -> str:
    return urlsplit(url).path
