"""The web shell's keypair (issued per session under the main keypair's policy, refused once revoked) and
its restart/reset routes, on the in-process service with a real SQLite database."""

from __future__ import annotations

import pytest

from decimal import Decimal

from backendai_hub import admission as S
from backendai_hub.errors import Forbidden
from backendai_hub.models import KeyPair
from backendai_hub.tenancy import policies
from backendai_hub.spawner.shell import issue_session_keypair, revoke_session_keypair


async def test_a_session_keypair_acts_as_its_user_until_it_is_revoked(svc):
    with svc.db.session() as s:  # her main keypair's policy is what the session's gets
        s.get(KeyPair, svc.keys["alice"][0]).resource_policy = policies.get(s, "keypair", "gold")
    with svc.db.session() as s:
        ak, sk = issue_session_keypair(s, svc.db.secrets, "alice", None)
    assert ak != svc.keys["alice"][0]
    svc.keys = {**svc.keys, "shell": (ak, sk)}
    code, me = await svc.call("shell", "GET", "me")
    assert code == 200, me
    assert (me["username"], me["access_key"], me["keypair_policy"]["name"]) == ("alice", ak, "gold")
    code, folders = await svc.call("shell", "GET", "vfolders")
    assert code == 200
    with svc.db.session() as s:
        assert revoke_session_keypair(s, ak) is True
        assert s.get(KeyPair, ak) is None
        # her main keypair stays hers, and main
        assert s.get(KeyPair, svc.keys["alice"][0]).user.main_access_key == svc.keys["alice"][0]
    code, body = await svc.call("shell", "GET", "me")
    assert code == 401, body
    assert (await svc.call("alice", "GET", "me"))[0] == 200
    with svc.db.session() as s:
        assert revoke_session_keypair(s, ak) is False  # idempotent: a second stop changes nothing


def _shell_session(svc) -> tuple[int, str, str]:
    """alice's shell admitted, and its own keypair issued to it: (session id, access key, secret)."""
    with svc.db.session() as s:
        row = S.admit(s, S.resolve(s, "alice"), server_name="shell", image="backendai-hub/shell:latest",
                      app="shell", request={"cpu": Decimal(1)})
        sid = row.id
        ak, sk = issue_session_keypair(s, svc.db.secrets, "alice", sid)
    return sid, ak, sk


@pytest.mark.parametrize("end", ["released", "replaced by a new start"])
async def test_a_session_keypair_ends_with_its_session_whoever_ends_it(svc, end):
    """The reconciler releasing a shell whose container went (the spawner's stop never ran), or a start
    of the same server replacing a session a crash left live: the key goes with the session."""
    sid, ak, sk = _shell_session(svc)
    svc.keys = {**svc.keys, "shell": (ak, sk)}
    assert (await svc.call("shell", "GET", "me"))[0] == 200
    code, keys = await svc.call("alice", "GET", "keypairs")
    assert code == 200, keys
    assert {k["access_key"]: k["session_id"] for k in keys["items"]}[ak] == sid
    with svc.db.session() as s:
        if end == "released":  # as the reconciler's release does
            assert S.release(s, sid, "reconciler: the container is gone") is True
        else:
            S.admit(s, S.resolve(s, "alice"), server_name="shell", image="backendai-hub/shell:latest", app="shell",
                    request={"cpu": Decimal(1)})
    with svc.db.session(readonly=True) as s:
        assert s.get(KeyPair, ak) is None
        assert s.get(KeyPair, svc.keys["alice"][0]) is not None  # her own keys stay
    code, body = await svc.call("shell", "GET", "me")
    assert code == 401, body


async def test_no_session_keys_under_an_inactive_main_keypair(svc):
    with svc.db.session() as s:
        s.get(KeyPair, svc.keys["bob"][0]).is_active = False
    with svc.db.session() as s, pytest.raises(Forbidden) as e:
        issue_session_keypair(s, svc.db.secrets, "bob", None)
    assert "inactive" in e.value.message


@pytest.mark.parametrize("action", ["restart", "reset"])
async def test_restart_and_reset_need_a_running_shell_and_a_caller(svc, action):
    code, body = await svc.call("alice", "POST", f"shell/{action}", {})
    assert code == 409 and body["field"] == "shell", body
    assert "no running shell session" in body["message"]
    code, body = await svc.call(None, "POST", f"shell/{action}", {})
    assert code == 401, body


async def test_a_session_keypair_never_becomes_its_users_main_key(svc):
    sid, ak, _ = _shell_session(svc)
    code, body = await svc.call("root", "PATCH", "users/alice", {"main_access_key": ak})
    assert code == 400 and body["field"] == "main_access_key", body
    assert f"web shell session {sid}" in body["message"]
    # her main keypair deleted: the next main is another of her own keys or none, never the session's
    code, _ = await svc.call("root", "DELETE", f"keypairs/{svc.keys['alice'][0]}")
    assert code in (200, 204)
    with svc.db.session(readonly=True) as s:
        from backendai_hub.models import User
        from sqlalchemy import select

        assert s.scalar(select(User.main_access_key).where(User.username == "alice")) != ak


async def test_a_session_keypair_something_hangs_on_is_deactivated_not_deleted(svc):
    """Data from before keys were bound (a session key made main by hand, a session charged to it):
    ending the shell must not delete the other session's row with the key (it would leave the levels'
    usage counting a session that no longer exists)."""
    from backendai_hub.models import KernelSession, User
    from sqlalchemy import select

    sid, ak, sk = _shell_session(svc)
    with svc.db.session() as s:
        s.scalar(select(User).where(User.username == "alice")).main_access_key = ak
    with svc.db.session() as s:
        other = S.admit(s, S.resolve(s, "alice"), server_name="lab", image="img", app="jupyterlab",
                        request={"cpu": Decimal(1)}).id
    with svc.db.session() as s:
        assert S.release(s, sid, "stopped") is True
    with svc.db.session() as s:
        row = s.get(KernelSession, other)
        assert row is not None and row.status == S.SessionStatus.starting and row.access_key == ak
        kp = s.get(KeyPair, ak)
        assert kp is not None and not kp.is_active and kp.session_id is None
        assert S.repair_usage(s) == []  # what the levels count is what the sessions hold
    svc.keys = {**svc.keys, "shell": (ak, sk)}
    assert (await svc.call("shell", "GET", "me"))[0] == 401


async def test_a_session_keypair_whose_session_went_without_ending_it_is_retired_by_the_periodic_pass(svc):
    """A session row can go without being ended (with the keypair or group it was charged to); the
    service's periodic pass retires keys whose session is gone or ended."""
    from backendai_hub.models import KernelSession

    sid, ak, sk = _shell_session(svc)
    with svc.db.session() as s:
        assert S.retire_orphan_session_keys(s) == []  # its session is live: kept
        s.delete(s.get(KernelSession, sid))  # gone behind admission's back
    from backendai_hub.service.culler import Culler
    from tests.integration.test_vfolder_revocation import FakeHubAPI

    hub = FakeHubAPI()
    try:
        await Culler(svc.db, hub.url, "t").run_once()
    finally:
        hub.server.stop()
    svc.keys = {**svc.keys, "shell": (ak, sk)}
    assert (await svc.call("shell", "GET", "me"))[0] == 401
    with svc.db.session() as s:
        assert s.get(KeyPair, ak) is None
