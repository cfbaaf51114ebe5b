"""Transfers through faults: the service killed (SIGKILL) in the middle of a tus upload, and the storage
host filling up during one. The upload resumes where the server says and ends with the right SHA-256;
no half-written file ever shows at its path; the folder stays usable."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tornado.httpclient import AsyncHTTPClient

from backendai_hub.service.server import CONFIG_ENV
from tests.conftest import unavailable
from tests.hubproc import free_port_block, stop_group
from tests.integration.service_harness import service_fixtures
from tests.integration.test_vfolder_transfer import OCTETS, TUS, create, cut_patch, head_offset, patch
from tests.integration.vfolder_harness import API, KEYS, PREFIX, Service, make_template

MiB = 1 << 20


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- the service killed mid-upload -----------------------------------------------------------------------


class ServiceProcess:
    """The REST service as the hub runs it (``python -m backendai_hub.service``, settings in its one
    environment variable), on a real port, over a SQLite database and a storage host of its own.
    It answers signed requests as the in-process harness does (``raw``, ``headers``)."""

    keys = KEYS

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = free_port_block(1)
        self.base = f"http://127.0.0.1:{self.port}"
        self.vfolders = workdir / "vf-local"
        config = {"Database": {"url": f"sqlite:///{workdir / 'db.sqlite'}", "crypt_key_file": str(workdir / "key")},
                  "StorageHosts": {"hosts": {"local": str(self.vfolders)}, "quota_backend": "none"}}
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "BACKENDAI_HUB_"))},
                    CONFIG_ENV: json.dumps(config), "JUPYTERHUB_SERVICE_URL": self.base,
                    "JUPYTERHUB_SERVICE_PREFIX": PREFIX,
                    # no hub: these requests are keypair-signed (without JUPYTERHUB_API_URL, no culler)
                    "JUPYTERHUB_API_TOKEN": "unused"}
        self.proc: subprocess.Popen | None = None
        self.log = workdir / "service.log"
        self.client = AsyncHTTPClient()

    async def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "backendai_hub.service"], env=self.env,
                                         cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        for _ in range(300):
            if self.proc.poll() is not None:
                raise AssertionError(f"the service exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                resp = await self.client.fetch(f"{self.base}{API}openapi.json", raise_error=False, request_timeout=2)
                if resp.code == 200:
                    return
            except OSError:
                pass
            await asyncio.sleep(0.1)
        raise AssertionError(f"the service did not come up:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no handler runs, no file is closed or renamed by the service."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        stop_group(self.proc, 20)

    headers = Service.headers
    raw = Service.raw
    call = Service.call


@pytest.fixture
async def proc_service(tmp_path):
    make_template(tmp_path)
    shutil.copy(tmp_path / "template.sqlite", tmp_path / "db.sqlite")
    (tmp_path / "key").chmod(0o600)
    service = ServiceProcess(tmp_path)
    await service.start()
    yield service
    service.stop()


async def test_an_upload_cut_by_a_killed_service_resumes_after_its_restart(proc_service):
    svc = proc_service
    code, vf = await svc.call("alice", "POST", "vfolders", {"name": "data", "quota": "64m"})
    assert code == 201, vf
    folder = svc.vfolders / vf["id"][:2] / vf["id"]
    blob = os.urandom(24 * MiB)
    resp = await create(svc, "big.bin", len(blob))
    assert resp.code == 201, resp.body
    location = resp.headers["Location"]
    part = folder / ".upload" / f"{location.rsplit('/', 1)[1]}.part"
    # one PATCH for the whole file; 16 MiB of it sent, then the service is killed while it writes
    reader, writer = await asyncio.open_connection("127.0.0.1", svc.port)
    hdrs = {**svc.headers("alice", "PATCH", location, OCTETS), **TUS, "Content-Type": OCTETS, "Upload-Offset": "0",
            "Content-Length": str(len(blob)), "Host": f"127.0.0.1:{svc.port}"}
    writer.write(f"PATCH {location} HTTP/1.1\r\n".encode()
                 + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()).encode() + b"\r\n")
    for i in range(0, 16 * MiB, 256 * 1024):
        writer.write(blob[i:i + 256 * 1024])
        await writer.drain()
    for _ in range(600):  # until the service has put some of it on disk
        if part.exists() and part.stat().st_size >= 8 * MiB:
            break
        await asyncio.sleep(0.05)
    assert part.stat().st_size >= 8 * MiB
    svc.kill()
    writer.close()
    # meanwhile nothing is at the file's path
    assert not (folder / "big.bin").exists()
    await svc.start()
    offset, length = await head_offset(svc, location)
    assert length == len(blob) and 8 * MiB <= offset <= 16 * MiB
    assert offset == part.stat().st_size  # the offset is what is on disk, every byte of it the client's
    code, listing = await svc.call("alice", "GET", "vfolders/data/files")
    assert code == 200 and [f["name"] for f in listing["items"]] == []
    assert (await svc.raw("alice", "GET", "vfolders/data/download?path=big.bin")).code == 404
    resp = await patch(svc, location, offset, blob[offset:])
    assert resp.code == 204 and resp.headers["Upload-Offset"] == str(len(blob)), resp.body
    resp = await svc.raw("alice", "GET", "vfolders/data/download?path=big.bin")
    assert resp.code == 200 and sha256(resp.body) == sha256(blob)
    assert not (folder / ".upload").exists()  # nothing pending is left behind


# -- the storage host full -------------------------------------------------------------------------------


def mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        unavailable("a small filesystem of the test's own (tmpfs)", f"mount needs root: {done.stderr.strip()}")


class SmallHost:
    """Mixed into a service harness: its storage host 'local' is a 24 MiB tmpfs (quotas are the API's only)."""

    def __init__(self, template, workdir, **kw):
        self.host_root = workdir / "vf-local"
        mount_tmpfs(self.host_root, "24m")
        super().__init__(template, workdir, **kw)

    def stop(self):
        super().stop()
        # lazily: a descriptor a cut request's writer still holds must not leave the mount behind
        subprocess.run(["umount", "-l", str(self.host_root)], check=False, capture_output=True)


class SmallHostService(SmallHost, Service):
    """The service whose storage host 'local' is a 24 MiB tmpfs."""


template, svc = service_fixtures(SmallHostService)


def free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill(path: Path, leave: int) -> None:
    """Another tenant's writes: take the filesystem's space but ``leave`` bytes."""
    with open(path / "filler", "wb") as f:
        f.write(b"\0" * max(0, free(path) - leave))


async def test_a_full_storage_host_is_a_clear_507_and_the_upload_resumes_once_there_is_room(svc):
    code, vf = await svc.call("alice", "POST", "vfolders", {"name": "data", "quota": "64m"})
    assert code == 201, vf
    old = os.urandom(MiB)  # the file's current version, which the upload replaces
    resp = await create(svc, "big.bin", len(old))
    assert (await patch(svc, resp.headers["Location"], 0, old)).code == 204
    blob = os.urandom(12 * MiB)
    resp = await svc.raw("alice", "POST", "vfolders/data/uploads?path=big.bin&overwrite=true", b"",
                         headers={**TUS, "Upload-Length": str(len(blob))})
    assert resp.code == 201, resp.body
    location = resp.headers["Location"]
    fill(svc.host_root, leave=5 * MiB)
    resp = await patch(svc, location, 0, blob)
    assert resp.code == 507, (resp.code, resp.body)
    body = json.loads(resp.body)
    assert body["error"] == "InsufficientStorage"
    assert body["message"].startswith("the storage host 'local' is full (no space left on device)"), body
    # the file's path still holds the old version, whole; what fit of the new one is kept for the resume
    code, listing = await svc.call("alice", "GET", "vfolders/data/files")
    assert code == 200 and [(f["name"], f["size"]) for f in listing["items"]] == [("big.bin", len(old))]
    resp = await svc.raw("alice", "GET", "vfolders/data/download?path=big.bin")
    assert resp.code == 200 and sha256(resp.body) == sha256(old)
    offset, _ = await head_offset(svc, location)
    assert 0 < offset < len(blob)
    # room again (the other tenant cleaned up): the upload goes on from where the server says
    os.unlink(svc.host_root / "filler")
    resp = await patch(svc, location, offset, blob[offset:])
    assert resp.code == 204, resp.body
    resp = await svc.raw("alice", "GET", "vfolders/data/download?path=big.bin")
    assert resp.code == 200 and sha256(resp.body) == sha256(blob)


async def test_an_upload_aborted_on_a_full_host_gives_its_space_back_and_the_folder_works(svc):
    code, vf = await svc.call("alice", "POST", "vfolders", {"name": "data", "quota": "64m"})
    assert code == 201, vf
    folder = svc.host_root / vf["id"][:2] / vf["id"]
    fill(svc.host_root, leave=4 * MiB)
    blob = os.urandom(10 * MiB)
    resp = await create(svc, "big.bin", len(blob))
    location = resp.headers["Location"]
    resp = await patch(svc, location, 0, blob)
    assert resp.code == 507 and b"is full" in resp.body
    # while it is full, a new upload is refused as clearly, and leaves no record behind
    resp = await create(svc, "other.bin", MiB)
    assert resp.code == 507 and json.loads(resp.body)["error"] == "InsufficientStorage"
    assert sorted(os.listdir(folder / ".upload")) == sorted(f"{location.rsplit('/', 1)[1]}{x}" for x in (".json", ".part"))
    assert (await svc.raw("alice", "DELETE", location, None, headers=TUS)).code == 204  # abort: the space is back
    # a connection that drops mid-body on a filling host keeps what fit, and is aborted as well
    resp = await create(svc, "cut.bin", len(blob))
    assert resp.code == 201, resp.body
    await cut_patch(svc, resp.headers["Location"], 0, blob, send=6 * MiB)
    offset, _ = await head_offset(svc, resp.headers["Location"])
    assert offset < 6 * MiB
    assert (await svc.raw("alice", "DELETE", resp.headers["Location"], None, headers=TUS)).code == 204
    assert not (folder / ".upload").exists()
    for _ in range(200):  # the cut request's writer lets go of the removed part file
        if free(svc.host_root) >= 3 * MiB:
            break
        await asyncio.sleep(0.05)
    # the folder works: a small file uploads whole, folders are made, the listing is truthful
    small = os.urandom(MiB)
    resp = await create(svc, "small.bin", len(small))
    assert resp.code == 201, resp.body
    resp = await patch(svc, resp.headers["Location"], 0, small)
    assert resp.code == 204, resp.body
    code, _ = await svc.call("alice", "POST", "vfolders/data/mkdir", {"path": "results"})
    assert code in (200, 201)
    code, listing = await svc.call("alice", "GET", "vfolders/data/files")
    assert sorted(f["name"] for f in listing["items"]) == ["results", "small.bin"]
    assert sorted(os.listdir(folder)) == ["results", "small.bin"]
    resp = await svc.raw("alice", "GET", "vfolders/data/download?path=small.bin")
    assert sha256(resp.body) == sha256(small)


async def test_a_join_that_finds_the_host_full_keeps_its_parts_and_joins_once_there_is_room(svc):
    """tus concatenation copies the parts into one file: on a host without room for the copy the last
    part's end is a clear 507, nothing shows at the path, the parts stay whole; with room again an
    empty PATCH (or a sidebar re-grant) joins them."""
    from tests.integration.test_tus_concatenation import final

    code, vf = await svc.call("alice", "POST", "vfolders", {"name": "data", "quota": "64m"})
    assert code == 201, vf
    blob = os.urandom(14 * MiB)
    parts = []
    for piece in (blob[:7 * MiB], blob[7 * MiB:]):
        resp = await svc.raw("alice", "POST", "vfolders/data/uploads", b"",
                             headers={**TUS, "Upload-Length": str(len(piece)), "Upload-Concat": "partial"})
        assert resp.code == 201, resp.body
        parts.append(resp.headers["Location"])
    assert (await patch(svc, parts[0], 0, blob[:7 * MiB])).code == 204
    resp = await final(svc, "joined.bin", parts)
    assert resp.code == 201
    final_id = resp.headers["Location"].rsplit("/", 1)[1]
    fill(svc.host_root, leave=8 * MiB)  # room for the last part, not for the copy besides it
    resp = await patch(svc, parts[1], 0, blob[7 * MiB:])
    assert resp.code == 507, (resp.code, resp.body)
    assert json.loads(resp.body)["error"] == "InsufficientStorage"
    code, listing = await svc.call("alice", "GET", "vfolders/data/files")
    assert code == 200 and listing["items"] == []
    for location in parts:  # each part as it was: whole, ready to be joined again
        assert await head_offset(svc, location) == (7 * MiB, 7 * MiB)
    os.unlink(svc.host_root / "filler")
    code, grant = await svc.call("alice", "POST", f"vfolders/{vf['id']}/upload-grants",
                                 {"upload_id": final_id})
    assert code == 200 and grant["complete"] and "parts" not in grant, grant
    resp = await svc.raw("alice", "GET", "vfolders/data/download?path=joined.bin")
    assert resp.code == 200 and sha256(resp.body) == sha256(blob)

