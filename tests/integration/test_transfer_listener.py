"""The public transfer listener: request-upload/-download hand out its URL, it serves the token routes
and nothing else, with the same checks (token, quota, permissions, audit) as through the hub's proxy,
CORS for exactly the configured origins, and TLS."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import ssl
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from backendai_hub.service.server import BackendAIService
from backendai_hub.service.storage_proxy import token_secret
from backendai_hub.service.transfer_listener import start_listener
from backendai_hub.vfolders import transfer_tokens
from tests.hubproc import free_port_block
from tests.integration.service_harness import service_fixtures
from tests.integration.test_transfer_faults import SmallHost
from tests.integration.test_vfolder_transfer import OCTETS, TUS
from tests.integration.vfolder_harness import PREFIX, Service

MiB = 1 << 20
HUB = "http://hub.example.test:8000"  # the origin of the hub's pages (only named in headers, never dialled)


class ListenerService(Service):
    """The service with its transfer listener on a port of its own, as ``main()`` starts it."""

    tls: tuple[str, str] | None = None

    def __init__(self, template, workdir, **kw):
        super().__init__(template, workdir, **kw)
        self.lport = free_port_block(1)
        scheme = "https" if self.tls else "http"
        traits = BackendAIService(transfer_bind_url=f"{scheme}://127.0.0.1:{self.lport}",
                                  transfer_allowed_origins=[HUB])
        if self.tls:
            traits.transfer_ssl_cert, traits.transfer_ssl_key = self.tls
        self.listener = start_listener(self.app, traits.transfer_listener_settings(),
                                       allowed_origins=traits.transfer_allowed_origins, **traits.http_server_options())
        self.lbase = f"{scheme}://127.0.0.1:{self.lport}"
        self.seen: list[str] = []  # what the listener served, beside its access log
        access_log = self.app.settings["log_function"]

        def log(handler):
            self.seen.append(f"{handler.request.method} {handler.request.path} {handler.get_status()}")
            access_log(handler)

        self.listener.request_callback.settings.maps[0]["log_function"] = log

    def stop(self):
        self.listener.stop()
        super().stop()


async def with_data_folder(svc):
    code, _ = await svc.call("alice", "POST", "vfolders", {"name": "data", "quota": "32m"})
    assert code == 201


template, svc = service_fixtures(ListenerService, setup=with_data_folder)


async def grant(svc, what, path, who="alice", folder="data", **body):
    code, got = await svc.call(who, "POST", f"{PREFIX}folders/{folder}/request-{what}", {"path": path, **body})
    assert code == 200, got
    return got["token"], got["url"]


async def send(url, method, body=None, headers=None, **kw):
    req = HTTPRequest(url, method=method, body=body, headers=headers or {}, allow_nonstandard_methods=True,
                      request_timeout=60, **kw)
    return await AsyncHTTPClient().fetch(req, raise_error=False)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_grants_point_at_the_listener_which_uploads_and_downloads_with_ranges(svc):
    blob = os.urandom(3 * MiB + 17)
    token, url = await grant(svc, "upload", "big.bin", size=len(blob))
    assert url == f"{svc.lbase}/folders/_/tus/upload"  # the public URL, not the hub's proxy
    resp = await send(f"{url}?token={token}", "HEAD", headers=TUS)
    assert resp.code == 200 and resp.headers["Upload-Offset"] == "0" and resp.headers["Upload-Length"] == str(len(blob))
    resp = await send(f"{url}?token={token}", "PATCH", blob[:MiB], {**TUS, "Content-Type": OCTETS, "Upload-Offset": "0"})
    assert resp.code == 204 and resp.headers["Upload-Offset"] == str(MiB)
    resp = await send(f"{url}?token={token}", "PATCH", blob[MiB:],
                      {**TUS, "Content-Type": OCTETS, "Upload-Offset": str(MiB)})
    assert resp.code == 204 and resp.headers["Upload-Offset"] == str(len(blob))
    code, listing = await svc.call("alice", "GET", "vfolders/data/files")
    assert [(f["name"], f["size"]) for f in listing["items"]] == [("big.bin", len(blob))]
    # the same audit row as an upload through the hub's proxy: one, when the last piece lands
    code, log = await svc.call("root", "GET", "audit-logs?entity_type=vfolder&operation=upload")
    assert code == 200 and [(r["actor"], r["status"], r["action"]) for r in log["items"]] == [
        ("alice", "success", "PATCH folders/_/tus/upload")], log

    token, url = await grant(svc, "download", "big.bin")
    assert url == f"{svc.lbase}/folders/_/tus/download"
    resp = await send(f"{url}?token={token}", "GET")
    assert resp.code == 200 and sha256(resp.body) == sha256(blob)
    resp = await send(f"{url}?token={token}", "GET", headers={"Range": "bytes=1000-2000047"})
    assert resp.code == 206 and resp.body == blob[1000:2000048]
    assert resp.headers["Content-Range"] == f"bytes 1000-2000047/{len(blob)}"
    resp = await send(f"{url}?token={token}", "GET", headers={"Range": "bytes=-5"})
    assert resp.code == 206 and resp.body == blob[-5:]
    resp = await send(f"{url}?token={token}", "GET", headers={"Range": f"bytes={len(blob)}-"})
    assert resp.code == 416 and resp.headers["Content-Range"] == f"bytes */{len(blob)}"
    assert sum(line.startswith(("PATCH", "GET", "HEAD")) for line in svc.seen) == 7, svc.seen


async def test_the_listener_takes_only_valid_tokens_of_the_right_kind(svc):
    token, url = await grant(svc, "upload", "a.bin", size=4)
    dtoken, durl = await grant(svc, "download", "")
    secret = token_secret(svc.app)
    claims = json.loads(transfer_tokens._unb64(token.split(".")[0]))
    expired = transfer_tokens.make_token(secret, {k: v for k, v in claims.items() if k != "exp"}, ttl=-1)
    forged = transfer_tokens.make_token(b"another-secret", {k: v for k, v in claims.items() if k != "exp"})
    body = {**TUS, "Content-Type": OCTETS, "Upload-Offset": "0"}
    for bad, words in [(None, b"missing"), ("garbage", b"malformed"), (forged, b"bad signature"),
                       (expired, b"expired"), (dtoken, b"not a upload token"), (token[:-2] + "xx", b"bad signature")]:
        target = url if bad is None else f"{url}?token={bad}"
        resp = await send(target, "PATCH", b"abcd", body)
        assert resp.code == 401 and words in resp.body, (bad, resp.code, resp.body)
        assert (await send(target, "HEAD", headers=TUS)).code == 401
    resp = await send(f"{durl}?token={token}", "GET")
    assert resp.code == 401 and b"not a download token" in resp.body
    # a token for an upload of someone else's: signed by us, but the upload is not its user's
    foreign = transfer_tokens.make_token(secret, {**{k: v for k, v in claims.items() if k != "exp"}, "user": "carol"})
    resp = await send(f"{url}?token={foreign}", "PATCH", b"abcd", body)
    assert resp.code in (403, 404), resp.body
    # the hub's sign-in cookie or a keypair signature is no credential here
    resp = await send(url, "HEAD", headers={**TUS, "Cookie": "jupyterhub-services=whatever",
                                            **svc.headers("alice", "HEAD", urlsplit(url).path)})
    assert resp.code == 401
    # nothing was written by any of these
    assert (await send(f"{url}?token={token}", "HEAD", headers=TUS)).headers["Upload-Offset"] == "0"
    assert (await send(f"{url}?token={token}", "PATCH", b"abcd", body)).code == 204


async def test_the_listener_serves_nothing_but_the_token_routes(svc):
    for path in [f"{PREFIX}api/v1/me", "/api/v1/me", f"{PREFIX}folders/_/tus/upload", "/folders/data/request-upload",
                 "/", f"{PREFIX}api/v1/openapi.json"]:
        resp = await send(svc.lbase + path, "GET", headers=svc.headers("alice", "GET", path))
        assert resp.code == 404 and b"transfer listener serves only" in resp.body, (path, resp.code, resp.body)
    # a deactivated user's token stops working at once
    token, url = await grant(svc, "upload", "a.bin", size=4)
    code, _ = await svc.call("root", "PATCH", "users/alice", {"status": "inactive"})
    assert code == 200
    resp = await send(f"{url}?token={token}", "HEAD", headers=TUS)
    assert resp.code in (401, 403), resp.code


async def test_tokens_never_reach_the_listeners_access_log(svc, caplog):
    import logging

    token, url = await grant(svc, "upload", "t.bin", size=3)
    with caplog.at_level(logging.INFO, logger="tornado.access"):
        resp = await send(f"{url}?token={token}", "PATCH", b"abc", {**TUS, "Content-Type": OCTETS, "Upload-Offset": "0"})
        assert resp.code == 204
        resp = await send(f"{url}?token={token}x", "HEAD", headers=TUS)
        assert resp.code == 401
    lines = [r.getMessage() for r in caplog.records if r.name == "tornado.access"]
    assert sum("tus/upload?token=%5Bredacted%5D" in line for line in lines) == 2, lines
    assert not any(token in line for line in lines)


async def test_quota_is_enforced_on_the_listener_as_through_the_proxy(svc):
    # the folder's 32 MiB quota: 20 MiB in, another 20 MiB is refused at request-upload
    big = os.urandom(20 * MiB)
    token, url = await grant(svc, "upload", "a.bin", size=len(big))
    assert (await send(f"{url}?token={token}", "PATCH", big, {**TUS, "Content-Type": OCTETS, "Upload-Offset": "0"})
            ).code == 204
    code, got = await svc.call("alice", "POST", f"{PREFIX}folders/data/request-upload", {"path": "b.bin",
                                                                                          "size": 20 * MiB})
    assert code == 413 and "does not fit" in json.dumps(got), got
    # the body may not run past what the upload declared: refused, and nothing past it is written
    token, url = await grant(svc, "upload", "c.bin", size=10)
    resp = await send(f"{url}?token={token}", "PATCH", b"x" * 11, {**TUS, "Content-Type": OCTETS, "Upload-Offset": "0"})
    assert resp.code == 400, resp.code
    resp = await send(f"{url}?token={token}", "HEAD", headers=TUS)
    assert int(resp.headers["Upload-Offset"]) == 0
    resp = await send(f"{url}?token={token}", "PATCH", b"x" * 4, {**TUS, "Content-Type": OCTETS, "Upload-Offset": "3"})
    assert resp.code == 409 and b"does not match" in resp.body


async def test_cors_answers_exactly_the_allowed_origins_and_never_credentials(svc):
    token, url = await grant(svc, "upload", "a.bin", size=4)
    target = f"{url}?token={token}"
    preflight = {"Origin": HUB, "Access-Control-Request-Method": "PATCH",
                 "Access-Control-Request-Headers": "tus-resumable, upload-offset, content-type"}
    resp = await send(target, "OPTIONS", headers=preflight)
    assert resp.code == 204
    assert resp.headers["Access-Control-Allow-Origin"] == HUB
    assert "PATCH" in resp.headers["Access-Control-Allow-Methods"]
    allowed = {h.strip().lower() for h in resp.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"tus-resumable", "upload-offset", "upload-length", "upload-metadata", "content-type"} <= allowed
    assert "Access-Control-Allow-Credentials" not in resp.headers and "Origin" in resp.headers["Vary"]
    # the answers of a listed origin are readable, tus headers included; errors too
    resp = await send(target, "HEAD", headers={**TUS, "Origin": HUB})
    assert resp.code == 200 and resp.headers["Access-Control-Allow-Origin"] == HUB
    exposed = {h.strip() for h in resp.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"Upload-Offset", "Upload-Length", "Location", "Tus-Resumable"} <= exposed
    assert "Access-Control-Allow-Credentials" not in resp.headers
    resp = await send(url, "HEAD", headers={**TUS, "Origin": HUB})
    assert resp.code == 401 and resp.headers["Access-Control-Allow-Origin"] == HUB
    # any other origin: no Access-Control-Allow-Origin, a preflight is refused naming the rule
    for origin in ("http://evil.example.test", "http://hub.example.test:8001", "null", HUB.upper()):
        resp = await send(target, "OPTIONS", headers={**preflight, "Origin": origin})
        assert resp.code == 403 and b"transfer_allowed_origins" in resp.body, origin
        assert "Access-Control-Allow-Origin" not in resp.headers
        resp = await send(target, "HEAD", headers={**TUS, "Origin": origin})
        assert resp.code == 200 and "Access-Control-Allow-Origin" not in resp.headers
    # downloads: a preflight for GET with Range, and the answer's headers readable
    code, _ = await svc.call("alice", "POST", "vfolders/data/mkdir", {"path": "d"})
    dtoken, durl = await grant(svc, "download", "d")
    resp = await send(f"{durl}?token={dtoken}", "OPTIONS",
                      headers={"Origin": HUB, "Access-Control-Request-Method": "GET",
                               "Access-Control-Request-Headers": "range"})
    assert resp.code == 204 and resp.headers["Access-Control-Allow-Methods"].startswith("GET")
    # a tus client's discovery (OPTIONS without an Origin) is answered as tus says
    resp = await send(target, "OPTIONS")
    assert resp.code == 204 and resp.headers["Tus-Version"] == "1.0.0" and "Access-Control-Allow-Origin" not in resp.headers


# -- TLS ---------------------------------------------------------------------------------------------------


def self_signed(directory: Path) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


@pytest.fixture
async def tls_svc(template, tmp_path):
    cls = type("TLSListenerService", (ListenerService,), {"tls": self_signed(tmp_path)})
    s = cls(template, tmp_path)
    await with_data_folder(s)
    yield s
    s.stop()


async def test_an_https_listener_moves_the_bytes_and_plain_http_gets_nowhere(tls_svc):
    svc = tls_svc
    blob = os.urandom(2 * MiB)
    token, url = await grant(svc, "upload", "s.bin", size=len(blob))
    assert url.startswith(f"https://127.0.0.1:{svc.lport}/")
    ca = ssl.create_default_context(cafile=svc.tls[0])
    resp = await send(f"{url}?token={token}", "PATCH", blob, {**TUS, "Content-Type": OCTETS, "Upload-Offset": "0"},
                      ssl_options=ca)
    assert resp.code == 204, resp.body
    token, url = await grant(svc, "download", "s.bin")
    resp = await send(f"{url}?token={token}", "GET", ssl_options=ca)
    assert resp.code == 200 and resp.body == blob
    with pytest.raises((OSError, ConnectionError)):  # plain HTTP to the TLS port is no request
        await send(f"http://127.0.0.1:{svc.lport}/folders/_/tus/download?token={token}", "GET")
    with pytest.raises(ssl.SSLError):  # nor is a certificate the client does not trust
        await send(f"{url}?token={token}", "GET")


# -- settings --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("traits, words", [
    ({"transfer_public_url": "https://files.example.test/"}, "without transfer_bind_url"),
    ({"transfer_bind_url": "https://127.0.0.1:9443"}, "needs transfer_ssl_cert"),
    ({"transfer_bind_url": "http://127.0.0.1:9443", "transfer_ssl_cert": "c", "transfer_ssl_key": "k"}, "takes neither"),
    ({"transfer_bind_url": "http://0.0.0.0:9443"}, "binds every address"),
    ({"transfer_bind_url": "https://127.0.0.1:9443", "transfer_ssl_cert": "/nonexistent/c",
      "transfer_ssl_key": "/nonexistent/k"}, "cannot load them"),
])
def test_contradictory_listener_settings_are_refused_at_start(traits, words):
    from traitlets import TraitError

    with pytest.raises(TraitError, match=words):
        BackendAIService(**traits).transfer_listener_settings()


@pytest.mark.parametrize("trait, value", [
    ("transfer_bind_url", "ftp://127.0.0.1:21"), ("transfer_bind_url", "http://127.0.0.1:9443/files/"),
    ("transfer_bind_url", "http://127.0.0.1:99999"), ("transfer_public_url", "files.example.test"),
    ("transfer_public_url", "https://files.example.test/?x=1"), ("transfer_allowed_origins", ["hub.example.test"]),
    ("transfer_allowed_origins", ["https://hub.example.test/hub/"]),
])
def test_bad_listener_settings_name_the_setting(trait, value):
    from traitlets import TraitError

    with pytest.raises(TraitError, match=f"BackendAIService.{trait}"):
        BackendAIService(**{trait: value})


def test_the_public_url_path_and_the_hub_origin():
    from traitlets.config import Config

    from backendai_hub.service.server import service_config

    s = BackendAIService(transfer_bind_url="http://0.0.0.0:9443", transfer_public_url="https://files.example.test/tx",
                         transfer_allowed_origins=["HTTPS://Hub.Example.test:443"])
    assert s.transfer_listener_settings()[:2] == ("http://0.0.0.0:9443", "https://files.example.test/tx/")
    assert s.transfer_allowed_origins == ["https://hub.example.test"]
    c = Config()
    c.JupyterHub.public_url = "https://hub.example.test/"
    c.JupyterHub.bind_url = "http://0.0.0.0:8000"
    c.BackendAIService.transfer_bind_url = "http://0.0.0.0:9443"
    assert service_config(c)["BackendAIService"]["transfer_allowed_origins"] == ["https://hub.example.test"]
    c.BackendAIService.transfer_allowed_origins = ["https://lab.example.test"]
    assert service_config(c)["BackendAIService"]["transfer_allowed_origins"] == ["https://lab.example.test"]
    del c.JupyterHub.public_url
    del c.BackendAIService.transfer_allowed_origins
    assert "transfer_allowed_origins" not in service_config(c)["BackendAIService"]  # 0.0.0.0 is no origin
    c.JupyterHub.bind_url = "http://127.0.0.1:8000"
    assert service_config(c)["BackendAIService"]["transfer_allowed_origins"] == ["http://127.0.0.1:8000"]


# -- the official client -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli(backend_ai_cli, tmp_path_factory):
    from tests.integration.test_vfolder_compat import ForkedCLI

    forked = ForkedCLI(backend_ai_cli, tmp_path_factory.mktemp("bai-home"))
    yield forked
    forked.close()


async def test_the_backend_ai_client_uploads_and_downloads_through_the_listener(cli, svc, tmp_path):
    from tests.integration.test_vfolder_compat import bai

    up, down = tmp_path / "up", tmp_path / "down"
    up.mkdir()
    down.mkdir()
    blob = os.urandom(5 * MiB + 321)
    (up / "data.bin").write_bytes(blob)
    code, out = await bai(cli, svc, up, "vfolder", "upload", "data", "data.bin")
    assert code == 0 and "Done." in out, out
    code, out = await bai(cli, svc, down, "vfolder", "download", "data", "data.bin")
    assert code == 0 and "Done." in out, out
    assert sha256((down / "data.bin").read_bytes()) == sha256(blob)
    # the bytes went to the listener: its access log has the PATCH and the GET
    assert any(line.startswith("PATCH /folders/_/tus/upload 204") for line in svc.seen), svc.seen
    assert any(line.startswith("GET /folders/_/tus/download 200") for line in svc.seen), svc.seen


# -- faults on the listener's path -----------------------------------------------------------------------


@pytest.fixture
async def proc_listener(tmp_path):
    """The service as the hub runs it (``python -m backendai_hub.service``), its listener configured."""
    from tests.integration.test_transfer_faults import ServiceProcess
    from tests.integration.vfolder_harness import make_template

    make_template(tmp_path)
    import shutil

    shutil.copy(tmp_path / "template.sqlite", tmp_path / "db.sqlite")
    (tmp_path / "key").chmod(0o600)
    service = ServiceProcess(tmp_path)
    service.lport = free_port_block(1)
    from backendai_hub.service.server import CONFIG_ENV

    config = json.loads(service.env[CONFIG_ENV])
    config["BackendAIService"] = {"transfer_bind_url": f"http://127.0.0.1:{service.lport}"}
    service.env[CONFIG_ENV] = json.dumps(config)
    await service.start()
    yield service
    service.stop()


async def test_an_upload_to_the_listener_cut_by_a_killed_service_resumes_after_its_restart(proc_listener):
    import asyncio

    svc = proc_listener
    code, vf = await svc.call("alice", "POST", "vfolders", {"name": "data", "quota": "64m"})
    assert code == 201, vf
    folder = svc.vfolders / vf["id"][:2] / vf["id"]
    blob = os.urandom(24 * MiB)
    token, url = await grant(svc, "upload", "big.bin", size=len(blob))
    assert url == f"http://127.0.0.1:{svc.lport}/folders/_/tus/upload"  # main() started the listener
    part = next((folder / ".upload").glob("*.part"))
    reader, writer = await asyncio.open_connection("127.0.0.1", svc.lport)
    writer.write(f"PATCH /folders/_/tus/upload?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{svc.lport}\r\n"
                 f"Tus-Resumable: 1.0.0\r\nContent-Type: {OCTETS}\r\nUpload-Offset: 0\r\n"
                 f"Content-Length: {len(blob)}\r\n\r\n".encode())
    for i in range(0, 16 * MiB, 256 * 1024):
        writer.write(blob[i:i + 256 * 1024])
        await writer.drain()
    for _ in range(600):  # until the service has put some of it on disk
        if part.stat().st_size >= 8 * MiB:
            break
        await asyncio.sleep(0.05)
    assert part.stat().st_size >= 8 * MiB
    svc.kill()
    writer.close()
    assert not (folder / "big.bin").exists()  # nothing half written at the file's path
    await svc.start()
    for _ in range(100):  # the listener is up again (it binds after the main port)
        try:
            resp = await send(f"{url}?token={token}", "HEAD", headers=TUS)
            break
        except OSError:
            await asyncio.sleep(0.1)
    assert resp.code == 200
    offset = int(resp.headers["Upload-Offset"])
    assert 8 * MiB <= offset <= 16 * MiB and offset == part.stat().st_size
    resp = await send(f"{url}?token={token}", "PATCH", blob[offset:],
                      {**TUS, "Content-Type": OCTETS, "Upload-Offset": str(offset)})
    assert resp.code == 204 and resp.headers["Upload-Offset"] == str(len(blob)), resp.body
    token, url = await grant(svc, "download", "big.bin")
    resp = await send(f"{url}?token={token}", "GET")
    assert resp.code == 200 and sha256(resp.body) == sha256(blob)
    assert not (folder / ".upload").exists()


class SmallHostListenerService(SmallHost, ListenerService):
    """The listener's service on a 24 MiB tmpfs storage host."""


small_svc = service_fixtures(SmallHostListenerService).svc


async def test_a_full_storage_host_is_a_clear_507_on_the_listener_and_the_upload_resumes(small_svc):
    from tests.integration.test_transfer_faults import fill

    svc = small_svc
    code, vf = await svc.call("alice", "POST", "vfolders", {"name": "data", "quota": "64m"})
    assert code == 201, vf
    blob = os.urandom(12 * MiB)
    token, url = await grant(svc, "upload", "big.bin", size=len(blob))
    fill(svc.host_root, leave=5 * MiB)
    resp = await send(f"{url}?token={token}", "PATCH", blob, {**TUS, "Content-Type": OCTETS, "Upload-Offset": "0",
                                                                "Origin": HUB})
    assert resp.code == 507 and json.loads(resp.body)["error"] == "InsufficientStorage", resp.body
    assert resp.headers["Access-Control-Allow-Origin"] == HUB  # a browser can read why
    code, listing = await svc.call("alice", "GET", "vfolders/data/files")
    assert code == 200 and listing["items"] == []  # no half-visible file
    offset = int((await send(f"{url}?token={token}", "HEAD", headers=TUS)).headers["Upload-Offset"])
    assert 0 < offset < len(blob)
    os.unlink(svc.host_root / "filler")
    resp = await send(f"{url}?token={token}", "PATCH", blob[offset:],
                      {**TUS, "Content-Type": OCTETS, "Upload-Offset": str(offset)})
    assert resp.code == 204, resp.body
    token, url = await grant(svc, "download", "big.bin")
    assert sha256((await send(f"{url}?token={token}", "GET")).body) == sha256(blob)
