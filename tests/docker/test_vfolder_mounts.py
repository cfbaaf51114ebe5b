"""Vfolders inside real jailed containers: ro refuses writes, rw accepts them as the session user,
and a loopback quota stops a process in the container with ENOSPC."""

import json
import os
import subprocess
import uuid

import pytest

from backendai_hub.spawner.jail import JailSettings, jail_create_kwargs, jail_host_config
from backendai_hub.vfolders import uploads as X
from backendai_hub.vfolders.mounts import Mountable, mounts_for
from backendai_hub.vfolders.storage import StorageHosts
from backendai_hub.errors import QuotaExceeded
from tests.conftest import need_loopback_quotas
from tests.docker.conftest import IMAGE

# every test here needs the engine: fail in CI, skip only on a developer's bare pytest
pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_available")]

MiB = 1 << 20
JAIL = JailSettings(tmp_size="16m", scratch_size="16m", pids_limit=64)

PROBE = r"""
import errno, json, os, sys
out = {}
for name in sys.argv[1:]:
    path = f"/home/work/{name}/written-by-session"
    try:
        with open(path, "wb") as f:
            f.write(b"hello")
        out[name] = "ok"
    except OSError as e:
        out[name] = errno.errorcode[e.errno]
out["listing"] = {n: sorted(os.listdir(f"/home/work/{n}")) for n in sys.argv[1:]}
out["uid"] = os.getuid()
print(json.dumps(out))
"""

FILL = r"""
import errno, json, os
written, err = 0, None
try:
    with open("/home/work/q/fill", "wb") as f:
        chunk = b"\0" * (1 << 20)
        for _ in range(64):
            f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
            written += len(chunk)
except OSError as e:
    err = errno.errorcode[e.errno]
print(json.dumps({"written": written, "error": err}))
"""


def run_jailed(client, command, mounts):
    kwargs = {**jail_create_kwargs(JAIL), **jail_host_config(JAIL)}
    container = client.containers.run(IMAGE, command, detach=True, network_mode="none",
                                      name=f"bah-vf-test-{uuid.uuid4().hex[:10]}",
                                      labels={"backendai-hub.test": "vfolders"},
                                      mounts=[m.docker() for m in mounts], **kwargs)
    try:
        code = container.wait(timeout=60)["StatusCode"]
        logs = container.logs().decode(errors="replace")
        assert code == 0, logs
        return json.loads(logs.strip().splitlines()[-1])
    finally:
        container.remove(force=True)


def test_ro_mount_refuses_writes_rw_accepts_them(client, tmp_path):
    storage = StorageHosts(hosts={"local": str(tmp_path / "vf")})
    ids = {"data": uuid.uuid4().hex, "shared": uuid.uuid4().hex}
    for vfid in ids.values():
        storage.create("local", vfid, None)
    with open(os.path.join(storage.path("local", ids["shared"]), "readme"), "w") as f:
        f.write("from the owner")
    folders = [Mountable(id=ids["data"], name="data", path=storage.path("local", ids["data"]), perm="rw", via="owner"),
               Mountable(id=ids["shared"], name="shared", path=storage.path("local", ids["shared"]), perm="ro",
                         via="invited")]
    mounts = mounts_for(["data", "shared"], folders)
    out = run_jailed(client, ["python3", "-c", PROBE, "data", "shared"], mounts)
    assert out["uid"] == 1000
    assert out["data"] == "ok"
    assert out["shared"] == "EROFS"  # Read-only file system
    assert out["listing"] == {"data": ["written-by-session"], "shared": ["readme"]}
    written = os.path.join(storage.path("local", ids["data"]), "written-by-session")
    assert open(written, "rb").read() == b"hello"
    assert os.stat(written).st_uid == 1000
    assert not os.path.exists(os.path.join(storage.path("local", ids["shared"]), "written-by-session"))


@pytest.fixture
def loopback_storage(tmp_path):
    need_loopback_quotas()
    storage = StorageHosts(hosts={"local": str(tmp_path / "vf")}, quota_backend="loopback")
    created = []
    yield storage, created
    for vfid in created:
        storage.destroy("local", vfid)


def test_writing_past_the_quota_in_a_container_fails_with_enospc(client, loopback_storage):
    storage, created = loopback_storage
    vfid = uuid.uuid4().hex
    storage.create("local", vfid, 16 * MiB)
    created.append(vfid)
    path = storage.path("local", vfid)
    assert os.path.ismount(path) and os.stat(path).st_uid == 1000 and os.listdir(path) == []
    mounts = mounts_for(["q"], [Mountable(id=vfid, name="q", path=path, perm="rw", via="owner")])
    out = run_jailed(client, ["python3", "-c", FILL], mounts)
    assert out["error"] == "ENOSPC", out
    assert 8 * MiB <= out["written"] < 16 * MiB
    assert os.path.getsize(os.path.join(path, "fill")) < 16 * MiB
    # the image took host space only for what was written (sparse), and never more than the quota
    assert os.stat(storage.image("local", vfid)).st_blocks * 512 <= 16 * MiB
    # the API side translates the same condition into a 413 with a clear message
    fd = os.open(os.path.join(path, "more"), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        with pytest.raises(QuotaExceeded, match="quota is reached"):
            X.write_all(fd, b"\0" * (4 * MiB))
    finally:
        os.close(fd)
    assert storage.free_bytes("local", vfid) < MiB


def test_loopback_folder_survives_unmount_and_grows(loopback_storage):
    storage, created = loopback_storage
    vfid = uuid.uuid4().hex
    storage.create("local", vfid, 8 * MiB)
    created.append(vfid)
    path = storage.path("local", vfid)
    with open(os.path.join(path, "keep"), "w") as f:
        f.write("kept")
    subprocess.run(["umount", path], check=True)  # what a host reboot does
    assert storage.ready_path("local", vfid) == path and os.path.ismount(path)
    assert open(os.path.join(path, "keep")).read() == "kept"
    before = storage.free_bytes("local", vfid)
    storage.resize("local", vfid, 24 * MiB)
    assert storage.free_bytes("local", vfid) > before + 12 * MiB
    assert open(os.path.join(path, "keep")).read() == "kept"
