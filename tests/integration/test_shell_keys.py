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
