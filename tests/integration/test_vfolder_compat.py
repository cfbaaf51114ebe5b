"""The real backend.ai CLI (backend.ai-client 23.9) manages vfolders through our compatible routes."""

import asyncio
import hashlib
import os

import pytest

from tests.integration.vfolder_harness import KEYS, Service, make_template


@pytest.fixture(scope="module")
def cli(backend_ai_cli):
    return backend_ai_cli


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return make_template(tmp_path_factory.mktemp("vfcompat"))


@pytest.fixture
async def svc(template, tmp_path):
    s = Service(template, tmp_path)
    yield s
    s.stop()


async def bai(cli, svc, workdir, *args, who="alice"):
    """Run the CLI without blocking the loop that serves it; returns (exit code, stdout + stderr)."""
    ak, sk = KEYS[who]
    env = {"PATH": f"{cli.parent}:/usr/bin:/bin", "HOME": str(workdir), "LANG": "C.UTF-8",
           "BACKEND_ENDPOINT": f"{svc.base}/services/backendai", "BACKEND_ENDPOINT_TYPE": "api",
           "BACKEND_ACCESS_KEY": ak, "BACKEND_SECRET_KEY": sk}
    proc = await asyncio.create_subprocess_exec(str(cli), *args, env=env, cwd=str(workdir),
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(errors="replace")


async def test_cli_create_info_mkdir_ls_upload_download(cli, svc, tmp_path):
    up, down = tmp_path / "up", tmp_path / "down"
    up.mkdir()
    down.mkdir()
    blob = os.urandom(3 * (1 << 20) + 12345)
    (up / "data.bin").write_bytes(blob)

    code, out = await bai(cli, svc, up, "vfolder", "create", "mydata", "local")
    assert code == 0 and 'Virtual folder "mydata" is created.' in out, out
    code, out = await bai(cli, svc, up, "vfolder", "info", "mydata")
    assert code == 0 and "- Owner: True" in out and "- Number of files: 0" in out, out
    code, out = await bai(cli, svc, up, "vfolder", "mkdir", "mydata", "sub")
    assert code == 0 and "Done." in out, out
    code, out = await bai(cli, svc, up, "vfolder", "upload", "mydata", "data.bin")
    assert code == 0 and "Done." in out, out
    code, out = await bai(cli, svc, up, "vfolder", "ls", "mydata")
    assert code == 0 and "data.bin" in out and str(len(blob)) in out and "sub" in out, out
    code, out = await bai(cli, svc, down, "vfolder", "download", "mydata", "data.bin")
    assert code == 0 and "Done." in out, out
    assert hashlib.sha256((down / "data.bin").read_bytes()).hexdigest() == hashlib.sha256(blob).hexdigest()
    code, out = await bai(cli, svc, up, "vfolder", "info", "mydata")
    assert "- Number of files: 1" in out, out
    # what the rules refuse reaches the user as an error, not a crash
    code, out = await bai(cli, svc, up, "vfolder", "info", "mydata", who="bob")
    assert code != 0 and "404" in out, out
    code, out = await bai(cli, svc, up, "vfolder", "create", "bad/name", "local")
    assert code != 0 and "400" in out, out
