"""Who may do what: every role x resource x verb through the REST service, cross-domain included.

Roles: root (superadmin), dadmin (domain admin of 'default'), alice (user in default/ml),
odadmin (domain admin of 'other'). Each row runs against a fresh copy of the same tenancy.
"""

import pytest

from tests.integration.service_harness import KEYS

AK = {u: ak for u, (ak, _) in KEYS.items()}


NEW_USER = {"username": "newbie", "email": "newbie@example.com", "domain": "default"}

# (actor, method, path, body, expected status, fragment of the error message or None)
MATRIX = [
    # -- domains --
    ("root", "GET", "domains/other", None, 200, None),
    ("dadmin", "GET", "domains/default", None, 200, None),
    ("dadmin", "GET", "domains/other", None, 404, "unknown domain 'other'"),
    ("alice", "GET", "domains/default", None, 200, None),
    ("alice", "GET", "domains/other", None, 404, "unknown domain 'other'"),
    ("root", "POST", "domains", {"name": "newdom"}, 201, None),
    ("dadmin", "POST", "domains", {"name": "newdom"}, 403, "only superadmins create, change or delete domains"),
    ("alice", "POST", "domains", {"name": "newdom"}, 403, "only superadmins"),
    ("root", "PATCH", "domains/default", {"description": "x"}, 200, None),
    ("dadmin", "PATCH", "domains/default", {"description": "x"}, 403, "only superadmins"),
    ("dadmin", "PATCH", "domains/other", {"description": "x"}, 404, "unknown domain"),
    ("alice", "PATCH", "domains/default", {"description": "x"}, 403, "only superadmins"),
    ("root", "DELETE", "domains/empty", None, 204, None),
    ("dadmin", "DELETE", "domains/empty", None, 404, "unknown domain"),
    ("dadmin", "DELETE", "domains/default", None, 403, "only superadmins"),
    ("alice", "DELETE", "domains/default", None, 403, "only superadmins"),
    # -- groups --
    ("root", "GET", "groups/other/ml", None, 200, None),
    ("dadmin", "GET", "groups/default/cv", None, 200, None),
    ("dadmin", "GET", "groups/other/ml", None, 404, "unknown group 'ml'"),
    ("alice", "GET", "groups/default/ml", None, 200, None),
    ("alice", "GET", "groups/default/cv", None, 404, "unknown group 'cv'"),
    ("odadmin", "GET", "groups/default/ml", None, 404, "unknown group"),
    ("root", "POST", "groups", {"name": "new", "domain": "other"}, 201, None),
    ("dadmin", "POST", "groups", {"name": "new", "domain": "default"}, 201, None),
    ("dadmin", "POST", "groups", {"name": "new"}, 201, None),  # defaults to the caller's domain
    ("dadmin", "POST", "groups", {"name": "new", "domain": "other"}, 403, "only their own domain 'default'"),
    ("alice", "POST", "groups", {"name": "new", "domain": "default"}, 403, "only superadmins and domain admins"),
    ("odadmin", "POST", "groups", {"name": "new", "domain": "default"}, 403, "only their own domain 'other'"),
    ("dadmin", "PATCH", "groups/default/ml", {"description": "d"}, 200, None),
    ("alice", "PATCH", "groups/default/ml", {"description": "d"}, 403, "only superadmins and domain admins"),
    ("odadmin", "PATCH", "groups/default/ml", {"description": "d"}, 404, "unknown group"),
    ("root", "DELETE", "groups/other/ml", None, 204, None),
    ("dadmin", "DELETE", "groups/default/cv", None, 204, None),
    ("dadmin", "DELETE", "groups/other/ml", None, 404, "unknown group"),
    ("alice", "DELETE", "groups/default/ml", None, 403, "only superadmins and domain admins"),
    # -- users --
    ("root", "GET", "users/olivia", None, 200, None),
    ("dadmin", "GET", "users/bob", None, 200, None),
    ("dadmin", "GET", "users/olivia", None, 404, "unknown user 'olivia'"),
    ("alice", "GET", "users/alice", None, 200, None),
    ("alice", "GET", "users/bob", None, 404, "unknown user 'bob'"),
    ("odadmin", "GET", "users/bob", None, 404, "unknown user"),
    ("root", "POST", "users", NEW_USER, 201, None),
    ("root", "POST", "users", {**NEW_USER, "role": "superadmin"}, 201, None),
    ("dadmin", "POST", "users", NEW_USER, 201, None),
    ("dadmin", "POST", "users", {**NEW_USER, "role": "domain-admin"}, 201, None),
    ("dadmin", "POST", "users", {**NEW_USER, "role": "superadmin"}, 403, "only superadmins can make someone superadmin"),
    ("dadmin", "POST", "users", {**NEW_USER, "domain": "other"}, 403, "only their own domain 'default'"),
    ("odadmin", "POST", "users", NEW_USER, 403, "only their own domain 'other'"),
    ("alice", "POST", "users", NEW_USER, 403, "only superadmins and domain admins manage users"),
    ("root", "PATCH", "users/olivia", {"role": "domain-admin"}, 200, None),
    ("dadmin", "PATCH", "users/alice", {"role": "domain-admin"}, 200, None),
    ("dadmin", "PATCH", "users/alice", {"role": "superadmin"}, 403, "only superadmins can make someone superadmin"),
    ("dadmin", "PATCH", "users/alice", {"domain": "other"}, 403, "only superadmins move users between domains"),
    ("dadmin", "PATCH", "users/root", {"full_name": "R"}, 403, "cannot change or delete a superadmin"),
    ("dadmin", "PATCH", "users/olivia", {"full_name": "O"}, 404, "unknown user"),
    ("alice", "PATCH", "users/alice", {"full_name": "Alice A."}, 200, None),
    ("alice", "PATCH", "users/alice", {"password": "a-new-password"}, 200, None),
    ("alice", "PATCH", "users/alice", {"role": "domain-admin"}, 403, "only their own full_name and password, not 'role'"),
    ("alice", "PATCH", "users/alice", {"groups": ["cv"]}, 403, "not 'groups'"),
    ("alice", "PATCH", "users/bob", {"full_name": "B"}, 404, "unknown user 'bob'"),
    ("root", "DELETE", "users/olivia", None, 204, None),
    ("dadmin", "DELETE", "users/bob", None, 204, None),
    ("dadmin", "DELETE", "users/root", None, 403, "cannot change or delete a superadmin"),
    ("dadmin", "DELETE", "users/olivia", None, 404, "unknown user"),
    ("alice", "DELETE", "users/alice", None, 403, "only superadmins and domain admins manage users"),
    ("alice", "DELETE", "users/bob", None, 404, "unknown user"),
    # -- keypairs --
    ("root", "GET", f"keypairs/{AK['olivia']}", None, 200, None),
    ("dadmin", "GET", f"keypairs/{AK['bob']}", None, 200, None),
    ("dadmin", "GET", f"keypairs/{AK['olivia']}", None, 404, "unknown keypair"),
    ("alice", "GET", f"keypairs/{AK['alice']}", None, 200, None),
    ("alice", "GET", f"keypairs/{AK['bob']}", None, 404, "unknown keypair"),
    ("alice", "POST", "keypairs", {}, 201, None),
    ("alice", "POST", "keypairs", {"resource_policy": "gold"}, 403, "only admins choose a keypair's resource policy"),
    ("alice", "POST", "keypairs", {"user": "bob"}, 404, "unknown user 'bob'"),
    # a domain admin assigns only the policies their domain allows (none here; see test_policy_escape.py)
    ("dadmin", "POST", "keypairs", {"user": "bob", "resource_policy": "gold"}, 403, "their domain allows"),
    ("dadmin", "POST", "keypairs", {"user": "bob"}, 201, None),
    ("dadmin", "POST", "keypairs", {"user": "root"}, 403, "cannot manage a superadmin's keypairs"),
    ("dadmin", "POST", "keypairs", {"user": "olivia"}, 404, "unknown user 'olivia'"),
    ("odadmin", "POST", "keypairs", {"user": "olivia"}, 201, None),
    ("root", "POST", "keypairs", {"user": "olivia", "resource_policy": "gold"}, 201, None),
    ("alice", "PATCH", f"keypairs/{AK['alice']}", {"is_active": False}, 200, None),
    ("alice", "PATCH", f"keypairs/{AK['alice']}", {"resource_policy": "gold"}, 403, "only admins choose"),
    ("dadmin", "PATCH", f"keypairs/{AK['alice']}", {"resource_policy": "gold"}, 403, "their domain allows"),
    ("dadmin", "PATCH", f"keypairs/{AK['alice']}", {"is_active": False}, 200, None),
    ("alice", "PATCH", f"keypairs/{AK['alice']}", {"is_active": True}, 403, "only admins re-activate"),
    ("dadmin", "PATCH", f"keypairs/{AK['olivia']}", {"is_active": False}, 404, "unknown keypair"),
    ("alice", "DELETE", f"keypairs/{AK['bob']}", None, 404, "unknown keypair"),
    ("dadmin", "DELETE", f"keypairs/{AK['bob']}", None, 204, None),
    ("dadmin", "DELETE", f"keypairs/{AK['root']}", None, 403, "cannot manage a superadmin's keypairs"),
    ("root", "DELETE", f"keypairs/{AK['olivia']}", None, 204, None),
    # -- resource policies --
    ("root", "GET", "resource-policies/keypair/gold", None, 200, None),
    ("dadmin", "GET", "resource-policies/keypair/gold", None, 200, None),
    ("alice", "GET", "resource-policies/keypair/gold", None, 403, "only superadmins and domain admins read"),
    ("root", "POST", "resource-policies", {"kind": "user", "name": "new", "max_vfolder_count": 2}, 201, None),
    ("dadmin", "POST", "resource-policies", {"name": "new"}, 403, "only superadmins create, change or delete resource policies"),
    ("alice", "POST", "resource-policies", {"name": "new"}, 403, "only superadmins"),
    ("root", "PATCH", "resource-policies/keypair/gold", {"max_concurrent_sessions": 3}, 200, None),
    ("dadmin", "PATCH", "resource-policies/keypair/gold", {"max_concurrent_sessions": 3}, 403, "only superadmins"),
    ("root", "DELETE", "resource-policies/keypair/unused", None, 204, None),
    ("root", "DELETE", "resource-policies/keypair/gold", None, 204, None),
    ("root", "DELETE", "resource-policies/keypair/default", None, 409, "is used by 6 keypair(s)"),
    ("dadmin", "DELETE", "resource-policies/keypair/unused", None, 403, "only superadmins"),
    ("alice", "DELETE", "resource-policies/keypair/unused", None, 403, "only superadmins"),
    # -- sign-in locks --
    ("root", "GET", "login-locks", None, 200, None),
    ("dadmin", "GET", "login-locks", None, 403, "only superadmins see and clear sign-in locks"),
    ("alice", "GET", "login-locks", None, 403, "only superadmins"),
    ("root", "DELETE", "login-locks/user:nobody", None, 404, "no sign-in lock"),
    ("alice", "DELETE", "login-locks/user:nobody", None, 403, "only superadmins"),
]


@pytest.mark.parametrize("actor, method, path, body, status, fragment", MATRIX,
                         ids=[f"{a}-{m}-{p}" for a, m, p, *_ in MATRIX])
async def test_matrix(svc, actor, method, path, body, status, fragment):
    code, payload = await svc.call(actor, method, path, body)
    assert code == status, payload
    if fragment:
        assert fragment in payload["message"]
    if status == 201:
        assert isinstance(payload, dict) and payload
    if method == "DELETE" and status == 204:
        assert (await svc.call(actor, "GET", path))[0] in (403, 404)  # gone
    if method in ("POST", "PATCH", "DELETE") and status >= 400:
        # a refused write changed nothing: the target reads the same for the superadmin
        target = path if method != "POST" else None
        if target and actor != "root" and not target.startswith("login-locks"):
            assert (await svc.call("root", "GET", target))[0] == 200


LISTS = [
    ("root", "domains", ["default", "empty", "other"]),
    ("dadmin", "domains", ["default"]),
    ("alice", "domains", ["default"]),
    ("odadmin", "domains", ["other"]),
    ("root", "groups", ["default/cv", "default/ml", "other/ml"]),
    ("dadmin", "groups", ["default/cv", "default/ml"]),
    ("alice", "groups", ["default/ml"]),
    ("odadmin", "groups", ["other/ml"]),
    ("root", "users", ["alice", "bob", "dadmin", "odadmin", "olivia", "root"]),
    ("dadmin", "users", ["alice", "bob", "dadmin", "root"]),
    ("alice", "users", ["alice"]),
    ("odadmin", "users", ["odadmin", "olivia"]),
    ("root", "keypairs", sorted(AK.values())),
    ("dadmin", "keypairs", sorted(AK[u] for u in ("alice", "bob", "dadmin", "root"))),
    ("alice", "keypairs", [AK["alice"]]),
]


def _key(item):
    if "access_key" in item:
        return item["access_key"]
    if "username" in item:
        return item["username"]
    if "domain" in item and "members" in item:
        return f"{item['domain']}/{item['name']}"
    return item["name"]


@pytest.mark.parametrize("actor, resource, expected", LISTS, ids=[f"{a}-{r}" for a, r, _ in LISTS])
async def test_lists_show_exactly_what_a_role_reaches(svc, actor, resource, expected):
    code, payload = await svc.call(actor, "GET", resource)
    assert code == 200, payload
    assert sorted(_key(i) for i in payload["items"]) == expected
    assert payload["total"] == len(expected)


async def test_me_tells_each_role_its_reach(svc):
    expectations = {"root": ("superadmin", ["*"]), "dadmin": ("domain-admin", ["default"]),
                    "alice": ("user", []), "odadmin": ("domain-admin", ["other"])}
    for actor, (role, administers) in expectations.items():
        code, me = await svc.call(actor, "GET", "me")
        assert code == 200
        assert (me["username"], me["role"], me["administers"]) == (actor, role, administers)
        assert me["authenticated_via"] == "keypair" and me["access_key"] == AK[actor]
