"""Loopback quotas through the REST service: the folder is its own filesystem from create to purge."""

import os
import subprocess

import pytest

from tests.integration.service_harness import service_fixtures
from tests.integration.vfolder_harness import Service

pytestmark = pytest.mark.docker  # real parts: root, loop devices, mkfs.ext4 (the docker machine has them)
MiB = 1 << 20
TUS = {"Tus-Resumable": "1.0.0"}


template, svc = service_fixtures(Service, quota_backend="loopback")  # root and mkfs.ext4, or it fails


async def test_quota_folder_lifecycle(svc):
    code, p = await svc.call("alice", "POST", "vfolders", {"name": "tiny", "quota": "1m"})
    assert code == 400 and p["field"] == "quota" and "at least 8 MiB" in p["message"]
    code, vf = await svc.call("alice", "POST", "vfolders", {"name": "q", "quota": "12m"})
    assert code == 201
    path = svc.storage.path("local", vf["id"])
    image = svc.storage.image("local", vf["id"])
    try:
        assert os.path.ismount(path) and os.path.exists(image)
        data = os.urandom(6 * MiB)
        resp = await svc.raw("alice", "POST", "vfolders/q/uploads?path=six.bin", b"",
                             headers={**TUS, "Upload-Length": str(len(data))})
        assert resp.code == 201
        resp = await svc.raw("alice", "PATCH", resp.headers["Location"], data,
                             content_type="application/offset+octet-stream", headers={**TUS, "Upload-Offset": "0"})
        assert resp.code == 204
        # the filesystem's own free space counts too: ext4 metadata takes part of the 12 MiB
        resp = await svc.raw("alice", "POST", "vfolders/q/uploads?path=more.bin", b"",
                             headers={**TUS, "Upload-Length": str(6 * MiB)})
        assert resp.code == 413 and b"does not fit" in resp.body
        code, info = await svc.call("alice", "GET", "vfolders/q")
        assert (info["size"], info["file_count"], info["quota"]) == (6 * MiB, 1, 12 * MiB)
        code, p = await svc.call("alice", "PATCH", "vfolders/q", {"quota": "20m"})
        assert code == 200 and p["quota"] == 20 * MiB
        resp = await svc.raw("alice", "POST", "vfolders/q/uploads?path=more.bin", b"",
                             headers={**TUS, "Upload-Length": str(6 * MiB)})
        assert resp.code == 201
        code, _ = await svc.call("alice", "DELETE", "vfolders/q?purge=true")
        assert code == 204
        assert not os.path.exists(path) and not os.path.exists(image)
    finally:
        if os.path.ismount(path):
            subprocess.run(["umount", path], check=False)
