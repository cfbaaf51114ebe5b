"""The real backend.ai CLI (backend.ai-client 23.9) manages vfolders through our compatible routes."""

import asyncio
import hashlib
import json
import os
import subprocess
import threading
from pathlib import Path

import pytest

from tests.integration.service_harness import service_fixtures
from tests.integration.vfolder_harness import KEYS, Service


class ForkedCLI:
    """The real CLI, its imports done once (bai_forkserver.py): each command still runs in its own process."""

    def __init__(self, exe: Path, home: Path):
        self.exe = exe
        self.proc = subprocess.Popen([str(exe.with_name("python")), str(Path(__file__).with_name("bai_forkserver.py"))],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env={"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"})
        self.lock = threading.Lock()

    def call(self, request: dict) -> dict:
        with self.lock:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the backend.ai fork server died (exit {self.proc.poll()})")
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def cli(backend_ai_cli, tmp_path_factory):
    forked = ForkedCLI(backend_ai_cli, tmp_path_factory.mktemp("bai-home"))
    yield forked
    forked.close()


template, svc = service_fixtures(Service)


async def bai(cli, svc, workdir, *args, who="alice", input=""):
    """Run a `backend.ai` command without blocking the loop that serves it; returns (exit code, output)."""
    ak, sk = KEYS[who]
    env = {"PATH": f"{cli.exe.parent}:/usr/bin:/bin", "HOME": str(workdir), "LANG": "C.UTF-8",
           "BACKEND_ENDPOINT": f"{svc.base}/services/backendai", "BACKEND_ENDPOINT_TYPE": "api",
           "BACKEND_ACCESS_KEY": ak, "BACKEND_SECRET_KEY": sk}
    got = await asyncio.to_thread(cli.call, {"args": list(args), "env": env, "cwd": str(workdir), "input": input})
    return got["code"], got["out"]


COMPAT = "/services/backendai/"


async def compat_call(svc, who, method, path, body=None):
    """A signed request to a compatible route (what the client would send), for what the CLI checks itself."""
    return await svc.call(who, method, COMPAT + path, body)


def failed(code, out, status, *words):
    """The CLI exited non-zero and printed the HTTP status and our reason (not a traceback)."""
    return code != 0 and f" {status} " in out and "Traceback" not in out and all(w in out for w in words)


async def listed(cli, svc, workdir, who="alice"):
    """`vfolder list` as JSON (its table fails with NoItems when empty and not on a terminal): name -> row."""
    code, out = await bai(cli, svc, workdir, "--output", "json", "vfolder", "list", who=who)
    assert code == 0, out
    return {item["name"]: item for item in json.loads(out)["items"]}


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
    assert failed(code, out, 404, "unknown vfolder 'mydata'"), out
    code, out = await bai(cli, svc, up, "vfolder", "create", "bad/name", "local")
    assert failed(code, out, 400, "not a valid vfolder name"), out


async def test_cli_invite_invitations_accept_reject_leave(cli, svc, tmp_path):
    blob = os.urandom(50_000)
    (tmp_path / "f.bin").write_bytes(blob)
    (tmp_path / "g.txt").write_text("g")
    down = tmp_path / "down"
    down.mkdir()
    code, out = await bai(cli, svc, tmp_path, "vfolder", "create", "shared", "local")
    assert code == 0, out
    code, out = await bai(cli, svc, tmp_path, "vfolder", "upload", "shared", "f.bin")
    assert code == 0, out

    code, out = await bai(cli, svc, tmp_path, "vfolder", "invite", "shared", "bob@example.com", "-p", "ro")
    assert code == 0 and "Invitation sent to:" in out and "- bob@example.com" in out, out
    # refusals: unknown user, another domain's user (reads as unknown), a second invitation
    code, out = await bai(cli, svc, tmp_path, "vfolder", "invite", "shared", "nobody@example.com")
    assert failed(code, out, 404, "unknown user 'nobody@example.com'"), out
    code, out = await bai(cli, svc, tmp_path, "vfolder", "invite", "shared", "olivia@example.com")
    assert failed(code, out, 404, "unknown user 'olivia@example.com'"), out
    code, out = await bai(cli, svc, tmp_path, "vfolder", "invite", "shared", "bob@example.com")
    assert failed(code, out, 409, "already invited"), out

    # bob sees the invitation, accepts it, reads the folder, and may not write it (ro)
    code, out = await bai(cli, svc, tmp_path, "vfolder", "invitations", who="bob", input="1\na\n")
    vfid = (await svc.call("alice", "GET", "vfolders/shared"))[1]["id"]
    assert code == 0 and f"[1] alice@example.com, {vfid}, read-only" in out, out
    assert "You can now access vfolder shared" in out, out
    code, out = await bai(cli, svc, tmp_path, "vfolder", "invitations", who="bob")
    assert code == 0 and "No invitations." in out, out
    code, out = await bai(cli, svc, tmp_path, "vfolder", "ls", "shared", who="bob")
    assert code == 0 and "f.bin" in out and str(len(blob)) in out, out
    code, out = await bai(cli, svc, down, "vfolder", "download", "shared", "f.bin", who="bob")
    assert code == 0 and "Done." in out, out
    assert hashlib.sha256((down / "f.bin").read_bytes()).digest() == hashlib.sha256(blob).digest()
    code, out = await bai(cli, svc, tmp_path, "vfolder", "upload", "shared", "g.txt", who="bob")
    assert failed(code, out, 403, "vfolder 'shared' is ro for you", "write needs rw"), out
    code, out = await bai(cli, svc, tmp_path, "vfolder", "mkdir", "shared", "sub", who="bob")
    assert failed(code, out, 403, "is ro for you"), out
    code, out = await bai(cli, svc, tmp_path, "vfolder", "invite", "shared", "carol@example.com", who="bob")
    assert failed(code, out, 403, "only the owner of vfolder 'shared' may invite it"), out
    got = await listed(cli, svc, tmp_path, who="bob")
    assert list(got) == ["shared"] and got["shared"]["permission"] == "ro", got

    # carol rejects hers: nothing pending, and the folder stays invisible to her
    code, out = await bai(cli, svc, tmp_path, "vfolder", "invite", "shared", "carol@example.com", "-p", "rw")
    assert code == 0 and "- carol@example.com" in out, out
    code, out = await bai(cli, svc, tmp_path, "vfolder", "invitations", who="carol", input="1\nr\n")
    assert code == 0 and "vfolder invitation rejected: shared" in out, out
    code, out = await bai(cli, svc, tmp_path, "vfolder", "invitations", who="carol")
    assert code == 0 and "No invitations." in out, out
    code, out = await bai(cli, svc, tmp_path, "vfolder", "info", "shared", who="carol")
    assert failed(code, out, 404, "unknown vfolder 'shared'"), out

    # the inviter cancels one (the client's delete_invitation; the CLI only offers reject); a stranger cannot
    code, out = await bai(cli, svc, tmp_path, "vfolder", "invite", "shared", "mia@example.com")
    assert code == 0, out
    inv = (await svc.call("alice", "GET", "vfolder-invitations"))[1]["outgoing"][0]["id"]
    status, body = await compat_call(svc, "carol", "DELETE", "folders/invitations/delete", {"inv_id": inv})
    assert status == 404 and body["title"] and "unknown invitation" in body["msg"], body
    status, body = await compat_call(svc, "mia", "POST", "folders/invitations/delete", {"inv_id": inv})
    assert status == 405, body
    assert (await compat_call(svc, "alice", "DELETE", "folders/invitations/delete", {"inv_id": inv}))[0] == 200
    code, out = await bai(cli, svc, tmp_path, "vfolder", "invitations", who="mia")
    assert code == 0 and "No invitations." in out, out

    # leave: bob leaves and loses the folder; the owner cannot (the CLI says so, the server refuses)
    code, out = await bai(cli, svc, tmp_path, "vfolder", "leave", "shared", who="bob")
    assert code == 0 and 'Left the shared virtual folder "shared".' in out, out
    assert await listed(cli, svc, tmp_path, who="bob") == {}
    code, out = await bai(cli, svc, tmp_path, "vfolder", "ls", "shared", who="bob")
    assert "404" in out and "f.bin" not in out, out
    code, out = await bai(cli, svc, tmp_path, "vfolder", "leave", "shared")
    assert code == 0 and "You cannot leave a virtual folder you own." in out, out
    status, body = await compat_call(svc, "alice", "POST", "folders/shared/leave", {"shared_user_uuid": None})
    assert status == 403 and "you own it" in body["msg"], body
    status, body = await compat_call(svc, "carol", "POST", "folders/shared/leave",
                                     {"shared_user_uuid": "bob@example.com"})
    assert status == 403 and "only leave yourself" in body["msg"], body


async def test_cli_share_unshare_group_folder(cli, svc, tmp_path):
    (tmp_path / "a.txt").write_text("a")
    code, out = await bai(cli, svc, tmp_path, "vfolder", "create", "gdata", "local", "-g", "ml", "-p", "ro",
                          who="dadmin")
    assert code == 0, out
    code, out = await bai(cli, svc, tmp_path, "vfolder", "share", "gdata", "alice@example.com", "-p", "rw",
                          who="dadmin")
    assert code == 0 and "Shared with rw permission to:" in out and "- alice@example.com" in out, out
    code, out = await bai(cli, svc, tmp_path, "vfolder", "info", "gdata")
    assert code == 0 and "- Permission: rw" in out and "- Ownership Type: group" in out, out
    code, out = await bai(cli, svc, tmp_path, "vfolder", "upload", "gdata", "a.txt")
    assert code == 0 and "Done." in out, out
    code, out = await bai(cli, svc, tmp_path, "vfolder", "upload", "gdata", "a.txt", who="carol")
    assert failed(code, out, 403, "is ro for you (group 'ml' members get ro)"), out

    code, out = await bai(cli, svc, tmp_path, "vfolder", "unshare", "gdata", "alice@example.com", who="dadmin")
    assert code == 0 and "Unshared from:" in out and "- alice@example.com" in out, out
    code, out = await bai(cli, svc, tmp_path, "vfolder", "info", "gdata")
    assert code == 0 and "- Permission: ro" in out, out
    code, out = await bai(cli, svc, tmp_path, "vfolder", "upload", "gdata", "a.txt")
    assert failed(code, out, 403, "is ro for you"), out

    # refusals: a member is no admin, a non-member, another domain, a user folder
    code, out = await bai(cli, svc, tmp_path, "vfolder", "share", "gdata", "carol@example.com")
    assert failed(code, out, 403, "only superadmins and admins of domain 'default' may share"), out
    code, out = await bai(cli, svc, tmp_path, "vfolder", "share", "gdata", "bob@example.com", who="dadmin")
    assert failed(code, out, 400, "'bob' is not a member of group 'ml'"), out
    code, out = await bai(cli, svc, tmp_path, "vfolder", "share", "gdata", "olivia@example.com", who="dadmin")
    assert failed(code, out, 404, "unknown user 'olivia@example.com'"), out
    code, out = await bai(cli, svc, tmp_path, "vfolder", "unshare", "gdata", "alice@example.com", who="odadmin")
    assert failed(code, out, 404, "unknown vfolder 'gdata'"), out
    code, out = await bai(cli, svc, tmp_path, "vfolder", "create", "mine", "local")
    assert code == 0, out
    code, out = await bai(cli, svc, tmp_path, "vfolder", "share", "mine", "carol@example.com")
    assert failed(code, out, 400, "is a user vfolder: invite users to it"), out
    # a group folder is not left (the CLI says so; the server refuses too)
    code, out = await bai(cli, svc, tmp_path, "vfolder", "leave", "gdata")
    assert code == 0 and "You cannot leave a group virtual folder." in out, out
    status, body = await compat_call(svc, "alice", "POST", "folders/gdata/leave", {})
    assert status == 403 and "through a group" in body["msg"], body


async def test_cli_clone_and_update_options(cli, svc, tmp_path):
    blob = os.urandom(200_000)
    (tmp_path / "w.bin").write_bytes(blob)
    down = tmp_path / "down"
    down.mkdir()
    for args in (("models", "local", "-g", "ml", "--cloneable"), ("private", "local", "-g", "ml")):
        code, out = await bai(cli, svc, tmp_path, "vfolder", "create", *args, who="dadmin")
        assert code == 0, out
    code, out = await bai(cli, svc, tmp_path, "vfolder", "upload", "models", "w.bin", who="dadmin")
    assert code == 0, out

    code, out = await bai(cli, svc, tmp_path, "vfolder", "clone", "models", "mymodels", "local")
    assert code == 0 and "Cloning the vfolder is complete." in out, out
    code, out = await bai(cli, svc, tmp_path, "vfolder", "info", "mymodels")
    assert code == 0 and "- Owner: True" in out and "- Ownership Type: user" in out, out
    code, out = await bai(cli, svc, down, "vfolder", "download", "mymodels", "w.bin")
    assert code == 0, out
    assert hashlib.sha256((down / "w.bin").read_bytes()).digest() == hashlib.sha256(blob).digest()

    # not cloneable: the CLI stops before asking, and the server refuses anyway
    code, out = await bai(cli, svc, tmp_path, "vfolder", "clone", "private", "p2", "local")
    assert code == 0 and "Clone is not allowed for this virtual folder." in out, out
    status, body = await compat_call(svc, "alice", "POST", "folders/private/clone",
                                     {"target_name": "p2", "target_host": "local"})
    assert status == 403 and "vfolder 'private' is not cloneable" in body["msg"], body
    # only who manages the folder updates its options
    code, out = await bai(cli, svc, tmp_path, "vfolder", "update-options", "private", "--set-cloneable", "true")
    assert code == 0 and "You cannot update virtual folder that you do not own." in out, out
    status, body = await compat_call(svc, "alice", "POST", "folders/private/update-options", {"cloneable": True})
    assert status == 403 and "only superadmins and admins" in body["msg"], body
    code, out = await bai(cli, svc, tmp_path, "vfolder", "update-options", "private", "--set-cloneable", "true",
                          who="dadmin")
    assert code == 0 and "Updated." in out, out
    code, out = await bai(cli, svc, tmp_path, "vfolder", "info", "private")
    assert "- Clone Allowed: True" in out, out
    code, out = await bai(cli, svc, tmp_path, "vfolder", "clone", "private", "p2", "local")
    assert code == 0 and "Cloning the vfolder is complete." in out, out

    # refusals: a host the user may not use, a taken name, a folder one does not see, a bad name
    code, out = await bai(cli, svc, tmp_path, "vfolder", "clone", "models", "m3", "nfs")
    assert failed(code, out, 403, "storage host 'nfs' is not allowed"), out
    code, out = await bai(cli, svc, tmp_path, "vfolder", "clone", "models", "mymodels", "local")
    assert failed(code, out, 409, "vfolder 'mymodels' already exists"), out
    code, out = await bai(cli, svc, tmp_path, "vfolder", "clone", "models", "m4", "local", who="bob")
    assert failed(code, out, 404, "unknown vfolder 'models'"), out
    code, out = await bai(cli, svc, tmp_path, "vfolder", "clone", "models", "bad/name", "local")
    assert failed(code, out, 400, "target_name: 'bad/name' is not a valid vfolder name"), out
    got = await listed(cli, svc, tmp_path)
    assert set(got) == {"models", "private", "mymodels", "p2"}, got
    assert got["p2"]["ownership_type"] == "user" and got["private"]["ownership_type"] == "group", got
    code, out = await bai(cli, svc, tmp_path, "--output", "json", "vfolder", "list", "-g", "ml")
    assert code == 0 and [i["name"] for i in json.loads(out)["items"]] == ["models", "private"], out


async def test_cli_rename_mv_rm_delete_list(cli, svc, tmp_path):
    (tmp_path / "a.txt").write_text("a")
    code, out = await bai(cli, svc, tmp_path, "vfolder", "create", "work", "local")
    assert code == 0, out
    for args in (("mkdir", "work", "d"), ("upload", "work", "a.txt")):
        code, out = await bai(cli, svc, tmp_path, "vfolder", *args)
        assert code == 0, out

    code, out = await bai(cli, svc, tmp_path, "vfolder", "mv", "work", "a.txt", "d")
    assert code == 0 and "Moved." in out, out
    code, out = await bai(cli, svc, tmp_path, "vfolder", "ls", "work", "d")
    assert code == 0 and "a.txt" in out, out
    code, out = await bai(cli, svc, tmp_path, "vfolder", "rm", "work", "d/a.txt", input="y\n")
    assert code == 0 and "Done." in out, out
    code, out = await bai(cli, svc, tmp_path, "vfolder", "ls", "work", "d")
    assert code == 0 and "a.txt" not in out, out
    code, out = await bai(cli, svc, tmp_path, "vfolder", "rm", "work", "nothing.txt", input="y\n")
    assert failed(code, out, 404), out
    code, out = await bai(cli, svc, tmp_path, "vfolder", "mv", "work", "../x", "d")
    assert failed(code, out, 400), out
    code, out = await bai(cli, svc, tmp_path, "vfolder", "rm", "-r", "work", "d", input="y\n")
    assert code == 0 and "Done." in out, out

    code, out = await bai(cli, svc, tmp_path, "vfolder", "rename", "work", "work2")
    assert code == 0 and "Renamed." in out, out
    code, out = await bai(cli, svc, tmp_path, "vfolder", "rename", "work2", "x", who="bob")
    assert failed(code, out, 404, "unknown vfolder 'work2'"), out
    code, out = await bai(cli, svc, tmp_path, "vfolder", "rename", "work2", "bad/name")
    assert failed(code, out, 400, "new_name: 'bad/name' is not a valid vfolder name"), out
    code, out = await bai(cli, svc, tmp_path, "vfolder", "list")
    assert code == 0 and "work2" in out and "work " not in out and "ready" in out, out
    code, out = await bai(cli, svc, tmp_path, "vfolder", "list", "--filter", 'name == "work2"')
    assert failed(code, out, 400, "filter and order expressions are not supported"), out

    code, out = await bai(cli, svc, tmp_path, "vfolder", "delete", "work2", who="bob")
    assert failed(code, out, 404), out
    code, out = await bai(cli, svc, tmp_path, "vfolder", "delete", "work2")
    assert code == 0 and "Deleted." in out, out
    assert await listed(cli, svc, tmp_path) == {}
    # our delete moves the folder to the trash: our own API still restores it
    status, body = await svc.call("alice", "GET", "vfolders?trash=true")
    assert status == 200 and [f["name"] for f in body["items"]] == ["work2"], body


async def test_compat_bad_input_is_4xx_with_a_reason(svc):
    await svc.call("alice", "POST", "vfolders", {"name": "mine"})
    cases = [
        ("POST", "folders/mine/invite", {"perm": "rw", "user_ids": 5}),
        ("POST", "folders/mine/invite", {"perm": "xx", "user_ids": ["bob@example.com"]}),
        ("POST", "folders/invitations/accept", {"inv_id": None}),
        ("POST", "folders/invitations/accept", {"inv_id": "0" * 32}),
        ("DELETE", "folders/invitations/delete", {"inv_id": ["x"]}),
        ("POST", "folders/mine/share", {"emails": {"a": 1}}),
        ("DELETE", "folders/mine/unshare", {"emails": None}),
        ("POST", "folders/mine/leave", {"shared_user_uuid": 7}),
        ("POST", "folders/mine/clone", {"target_name": 5}),
        ("POST", "folders/mine/clone", {"target_host": "local"}),
        ("POST", "folders/mine/clone", {"target_name": "c", "permission": "all"}),
        ("POST", "folders/mine/clone", {"target_name": "c", "target_host": "nowhere"}),
        ("POST", "folders/mine/update-options", {"cloneable": "maybe"}),
        ("DELETE", "folders/mine/delete-files", {"files": ["x"], "recursive": "false"}),  # not a boolean
        ("POST", "folders/mine/mkdir", {"path": "d", "parents": "no"}),
        ("POST", "folders/mine/update-options", {"permission": "ro"}),
        ("POST", "admin/gql", {"query": "mutation { x }"}),
        ("POST", "admin/gql", {"query": "query($limit:Int!, $offset:Int!) { user_list(limit:$limit, "
                                        "offset:$offset) { items { email } total_count } }",
                               "variables": {"limit": 10, "offset": 0}}),
        ("POST", "admin/gql", {"query": "query($limit:Int!, $offset:Int!) { vfolder_list(limit:$limit, "
                                        "offset:$offset) { items { name password } total_count } }",
                               "variables": {"limit": 10, "offset": 0}}),
        ("POST", "admin/gql", {"query": "query($limit:Int!, $offset:Int!) { vfolder_list(limit:$limit, "
                                        "offset:$offset) { items { name } total_count } }",
                               "variables": {"limit": 1000, "offset": 0}}),
        ("POST", "admin/gql", {"query": 5}),
    ]
    for method, path, body in cases:
        status, got = await compat_call(svc, "alice", method, path, body)
        assert 400 <= status < 500 and got.get("msg") and got.get("title"), (method, path, body, status, got)
    # the lists answer only what the caller sees, nothing of another domain
    await svc.call("olivia", "POST", "vfolders", {"name": "theirs"})
    query = ("query($limit:Int!, $offset:Int!) { vfolder_list(limit:$limit, offset:$offset) "
             "{ items { name ownership_type num_files } total_count } }")
    status, got = await compat_call(svc, "alice", "POST", "admin/gql",
                                    {"query": query, "variables": {"limit": 10, "offset": 0}})
    assert status == 200 and got["data"]["vfolder_list"] == {
        "items": [{"name": "mine", "ownership_type": "user", "num_files": 0}], "total_count": 1}, got
