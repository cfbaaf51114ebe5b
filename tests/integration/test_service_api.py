"""The REST service's contract: JSON errors naming the field, pagination, authentication failures."""

from datetime import datetime, timedelta, timezone

import pytest

from tests.integration.service_harness import API, KEYS


@pytest.mark.parametrize("method, path, body, status, field, fragment", [
    ("POST", "domains", b"{not json", 400, "body", "not valid JSON"),
    ("POST", "domains", b"[1, 2]", 400, "body", "must be a JSON object"),
    ("POST", "domains", {"name": "x", "colour": "red"}, 400, "colour", "unknown field 'colour'"),
    ("POST", "domains", {"name": "Bad Name"}, 400, "name", "is not a valid name"),
    ("POST", "domains", {"name": "x", "total_resource_slots": {"mem": "12X"}}, 400, "total_resource_slots", "'12X'"),
    ("POST", "domains", {"name": "x", "total_resource_slots": {"cpu": -1}}, 400, "total_resource_slots", "negative"),
    ("POST", "domains", {"name": "x", "is_active": "yes"}, 400, "is_active", "true or false"),
    ("POST", "domains", {"name": "default"}, 409, "name", "already exists"),
    ("POST", "users", {"username": "z", "email": "nope"}, 400, "email", "not an email address"),
    ("POST", "users", {"username": "z", "email": "z@example.com", "role": "god"}, 400, "role", "not one of"),
    ("POST", "users", {"username": "z", "email": "z@example.com", "groups": "nope"}, 404, "groups", "unknown group"),
    ("POST", "resource-policies", {"kind": "gpu", "name": "p"}, 400, "kind", "not one of keypair, user, group"),
    ("POST", "resource-policies", {"name": "p", "max_concurrent_sessions": 1.5}, 400, "max_concurrent_sessions",
     "not an integer"),
    ("PATCH", "users/alice", {"password": "short"}, 400, "password", "8 to 1024"),
    ("GET", "keypairs/not-a-key", None, 400, "access_key", "is not an access key"),
    ("GET", "users?limit=abc", None, 400, "limit", "is not an integer"),
    ("GET", "users?limit=5000", None, 400, "limit", "between 0 and 1000"),
    ("GET", "users?offset=-1", None, 400, "offset", "between 0"),
    ("GET", "users?group=ml", None, 400, "group", "needs a domain"),
    ("GET", "groups/nodomain/x", None, 404, "domain", "unknown domain 'nodomain'"),
    ("GET", "resource-policies/gpu/x", None, 400, "kind", "not one of"),
])
async def test_bad_input_is_a_json_4xx_naming_the_field(svc, method, path, body, status, field, fragment):
    code, payload = await svc.call("root", method, path, body)
    assert code == status, payload
    assert payload.get("field") == field
    assert fragment in payload["message"]


async def test_unknown_routes_and_methods(svc):
    code, payload = await svc.call("root", "GET", "nothing-here")
    assert code == 404 and "no such route" in payload["message"]
    code, payload = await svc.call("root", "PUT", "domains/default", {})
    assert code == 405


async def test_pagination(svc):
    code, page = await svc.call("root", "GET", "users?limit=2&offset=1")
    assert code == 200
    assert (page["total"], page["limit"], page["offset"], len(page["items"])) == (6, 2, 1, 2)
    all_names = [u["username"] for u in (await svc.call("root", "GET", "users"))[1]["items"]]
    assert [u["username"] for u in page["items"]] == all_names[1:3]
    assert (await svc.call("root", "GET", "users?offset=10"))[1]["items"] == []


@pytest.mark.parametrize("case", ["none", "wrong-secret", "unknown-key", "skew", "garbage", "inactive-keypair",
                                  "inactive-user"])
async def test_authentication_failures_are_401(svc, case):
    if case == "none":
        code, payload = await svc.call(None, "GET", "me")
    elif case == "wrong-secret":
        code, payload = await svc.call("alice", "GET", "me", secret="y" * 40)
    elif case == "unknown-key":
        KEYS["ghost"] = ("AKIAGHOSTGHOSTGHOSTG", "g" * 40)
        try:
            code, payload = await svc.call("ghost", "GET", "me")
        finally:
            del KEYS["ghost"]
    elif case == "skew":
        code, payload = await svc.call("alice", "GET", "me", date=datetime.now(timezone.utc) + timedelta(minutes=20))
    elif case == "garbage":
        code, payload = await svc.call(None, "GET", "me", headers={"Authorization": "BackendAI nonsense"})
    elif case == "inactive-keypair":
        assert (await svc.call("root", "PATCH", f"keypairs/{KEYS['alice'][0]}", {"is_active": False}))[0] == 200
        code, payload = await svc.call("alice", "GET", "me")
    else:
        assert (await svc.call("root", "PATCH", "users/alice", {"status": "inactive"}))[0] == 200
        code, payload = await svc.call("alice", "GET", "me")
    assert code == 401, payload
    assert payload["error"] == "Unauthorized" and payload["message"]
    assert KEYS["alice"][1] not in payload["message"]


async def test_secret_key_is_returned_once(svc):
    code, kp = await svc.call("alice", "POST", "keypairs", {})
    assert code == 201 and len(kp["secret_key"]) == 40
    code, again = await svc.call("alice", "GET", f"keypairs/{kp['access_key']}")
    assert code == 200 and "secret_key" not in again


async def test_version_handshake_needs_no_credentials(svc):
    code, payload = await svc.call(None, "GET", "/services/backendai")
    assert code == 200 and payload["version"] == "v7.20230615"
    code, spec = await svc.call(None, "GET", f"{API}openapi.json")
    assert code == 200 and spec["openapi"].startswith("3.")
