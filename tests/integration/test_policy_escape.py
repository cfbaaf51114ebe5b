"""Users cannot leave the policy an admin assigned, nor lift an admin's deactivation; domain admins
assign only the policies their domain allows (issue 11: holes 1, 2 and 6)."""

from __future__ import annotations

import pytest

from backendai_hub import admission as S
from backendai_hub.errors import Forbidden
from tests.integration.service_harness import KEYS

ALICE = KEYS["alice"][0]


async def _ok(svc, actor, method, path, body=None, status=200):
    code, payload = await svc.call(actor, method, path, body)
    assert code == status, (method, path, payload)
    return payload


async def _tighten_alice(svc) -> None:
    """An admin puts alice's keypair under a tight policy."""
    await _ok(svc, "root", "POST", "resource-policies", {"kind": "keypair", "name": "tight",
                                                          "max_concurrent_sessions": 1}, 201)
    await _ok(svc, "root", "PATCH", f"keypairs/{ALICE}", {"resource_policy": "tight"})


def _charge(svc, username="alice"):
    with svc.db.session() as s:
        return S.resolve(s, username)


async def test_a_users_own_new_keypair_keeps_the_policy_the_admin_assigned(svc):
    await _tighten_alice(svc)
    new = await _ok(svc, "alice", "POST", "keypairs", {}, 201)
    assert new["resource_policy"] == "tight"  # not the looser 'default'
    code, payload = await svc.call("alice", "POST", "keypairs", {"resource_policy": "default"})
    assert code == 403 and "only admins choose" in payload["message"]


async def test_deactivating_the_assigned_keypair_does_not_move_sessions_to_another(svc):
    await _tighten_alice(svc)
    new = await _ok(svc, "alice", "POST", "keypairs", {}, 201)
    assert _charge(svc).access_key == ALICE
    await _ok(svc, "alice", "PATCH", f"keypairs/{ALICE}", {"is_active": False})  # users may deactivate
    with pytest.raises(Forbidden, match="main keypair .* is inactive"):
        _charge(svc)  # refused, never charged to the fresh key
    svc.keys = {**svc.keys, "alice2": (new["access_key"], new["secret_key"])}  # she signs with the fresh key
    me = await _ok(svc, "alice2", "GET", "users/alice")
    assert me["main_access_key"] == ALICE
    code, payload = await svc.call("alice2", "PATCH", "users/alice", {"main_access_key": new["access_key"]})
    assert code == 403  # choosing the main keypair is an admin's decision
    # an admin may move alice to the new key: its policy is what the admin sees and chooses
    await _ok(svc, "root", "PATCH", "users/alice", {"main_access_key": new["access_key"]})
    assert _charge(svc).access_key == new["access_key"]


async def test_a_user_cannot_lift_an_admins_deactivation(svc):
    await _ok(svc, "root", "PATCH", f"keypairs/{ALICE}", {"is_active": False})
    code, payload = await svc.call("root", "GET", f"keypairs/{ALICE}")
    assert payload["is_active"] is False
    # alice signs with another keypair of hers (her first one is inactive)
    new = await _ok(svc, "root", "POST", "keypairs", {"user": "alice"}, 201)
    svc.keys = {**svc.keys, "alice2": (new["access_key"], new["secret_key"])}
    code, payload = await svc.call("alice2", "PATCH", f"keypairs/{ALICE}", {"is_active": True})
    assert code == 403 and "only admins re-activate" in payload["message"]
    assert (await _ok(svc, "root", "GET", f"keypairs/{ALICE}"))["is_active"] is False
    await _ok(svc, "root", "PATCH", f"keypairs/{ALICE}", {"is_active": True})  # an admin can
    assert (await _ok(svc, "root", "GET", f"keypairs/{ALICE}"))["is_active"] is True


@pytest.mark.parametrize("path, body", [
    (f"keypairs/{ALICE}", {"resource_policy": "gold"}),
    ("users/alice", {"resource_policy": "upol"}),
    ("groups/default/ml", {"resource_policy": "gpol"}),
])
async def test_a_domain_admin_assigns_only_the_policies_their_domain_allows(svc, path, body):
    code, payload = await svc.call("dadmin", "PATCH", path, body)
    assert code == 403 and "their domain allows (none)" in payload["message"], payload
    allowed = {"keypairs": "keypair:gold", "users": "user:upol", "groups": "group:gpol"}[path.split("/")[0]]
    await _ok(svc, "root", "PATCH", "domains/default", {"allowed_resource_policies": allowed})
    assert (await _ok(svc, "dadmin", "PATCH", path, body))["resource_policy"] == body["resource_policy"]
    # the superadmins' own policies stay out of reach, and so does lifting a policy altogether
    code, payload = await svc.call("dadmin", "PATCH", path, {"resource_policy": "unused"})
    assert code == 403, payload
    code, payload = await svc.call("dadmin", "PATCH", path, {"resource_policy": None})
    assert code == 403, payload


async def test_a_domain_admin_issuing_a_keypair_passes_on_the_users_policy(svc):
    await _tighten_alice(svc)
    new = await _ok(svc, "dadmin", "POST", "keypairs", {"user": "alice"}, 201)
    assert new["resource_policy"] == "tight"
    code, _ = await svc.call("dadmin", "POST", "keypairs", {"user": "alice", "resource_policy": "default"})
    assert code == 403


async def test_allowed_policies_must_exist_and_follow_renames(svc):
    code, payload = await svc.call("root", "PATCH", "domains/default", {"allowed_resource_policies": "keypair:nope"})
    assert code == 404 and payload["field"] == "allowed_resource_policies"
    code, payload = await svc.call("root", "PATCH", "domains/default", {"allowed_resource_policies": "robot:gold"})
    assert code == 400 and payload["field"] == "allowed_resource_policies"
    await _ok(svc, "root", "PATCH", "domains/default", {"allowed_resource_policies": {"keypair": ["gold"]}})
    await _ok(svc, "root", "PATCH", "resource-policies/keypair/gold", {"name": "platinum"})
    d = await _ok(svc, "root", "GET", "domains/default")
    assert d["allowed_resource_policies"] == {"keypair": ["platinum"]}
    code, payload = await svc.call("root", "DELETE", "resource-policies/keypair/platinum")
    assert code == 409 and "allowed for domain" in payload["message"]


def test_the_cli_sets_a_users_main_keypair_and_a_domains_policies(run_cli):
    assert run_cli("db", "upgrade").code == 0
    assert run_cli("domain", "create", "default").code == 0
    assert run_cli("user", "create", "carol", "--email", "carol@example.com", "--no-password").code == 0
    first = run_cli("-o", "json", "keypair", "issue", "carol").json()["access_key"]
    second = run_cli("-o", "json", "keypair", "issue", "carol").json()["access_key"]
    assert run_cli("-o", "json", "user", "show", "carol").json()["main_access_key"] == first
    assert run_cli("-o", "json", "user", "update", "carol", "--main-keypair", second).json()[
        "main_access_key"] == second
    bad = run_cli("user", "update", "carol", "--main-keypair", "AKIAAAAAAAAAAAAAAAAA")
    assert bad.code == 2 and "main_access_key" in bad.err
    assert run_cli("policy", "create", "gold").code == 0
    shown = run_cli("-o", "json", "domain", "update", "default", "--allowed-policies", "keypair:gold").json()
    assert shown["allowed_resource_policies"] == {"keypair": ["gold"]}
    assert run_cli("keypair", "delete", second).code == 0
    assert run_cli("-o", "json", "user", "show", "carol").json()["main_access_key"] == first
