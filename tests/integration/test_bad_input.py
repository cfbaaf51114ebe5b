"""Hostile input is a 400 naming the field, never a 5xx: nesting, huge numbers, infinities; and a
cookie alone never authenticates a write (the XSRF check stays on for cookie sign-in)."""

from __future__ import annotations

import pytest
from tornado.web import create_signed_value

from backendai_hub.images import Image
from backendai_hub.policy import parse_slots
from backendai_hub.spawner.options import parse_options

DEEP = ("[" * 100_000 + "]" * 100_000).encode()


@pytest.mark.parametrize("method, path", [("POST", "domains"), ("PATCH", "users/alice"),
                                          ("POST", "vfolders"), ("POST", "keypairs")])
async def test_deeply_nested_json_is_a_400(svc, method, path):
    code, payload = await svc.call("root", method, path, DEEP)
    assert code == 400, payload
    assert payload["field"] == "body" and "nested" in payload["message"]


@pytest.mark.parametrize("session_id", ["9" * 30, "9223372036854775808"])
async def test_a_huge_session_id_is_a_400_naming_it(svc, session_id):
    code, payload = await svc.call("root", "GET", f"sessions/{session_id}")
    assert code == 400, payload
    assert payload["field"] == "session_id"


@pytest.mark.parametrize("field", ["max_concurrent_sessions", "idle_timeout", "idle_timeout_accelerator",
                                   "max_session_lifetime"])
@pytest.mark.parametrize("number", ["1e309", "-1e309", "9" * 5000, "1e18"])
async def test_infinite_or_huge_integers_in_policy_fields_are_a_400(svc, field, number):
    code, payload = await svc.call("root", "PATCH", "resource-policies/keypair/gold", f'{{"{field}": {number}}}')
    assert code == 400, payload
    assert payload["field"] == field
    code, policy = await svc.call("root", "GET", "resource-policies/keypair/gold")
    assert code == 200 and policy[field] is None  # nothing was written


@pytest.mark.parametrize("number", ["1e309", "9" * 5000])
async def test_infinite_or_huge_sizes_in_storage_policies_are_a_400(svc, number):
    code, payload = await svc.call("root", "PATCH", "resource-policies/user/upol", f'{{"max_quota_size": {number}}}')
    assert code == 400, payload
    assert payload["field"] == "max_quota_size"


@pytest.mark.parametrize("amount", ["9" * 5000, "9" * 30 + "e", 10**40])
def test_a_huge_memory_amount_in_spawn_options_is_refused_naming_the_slot(amount):
    image = Image(ref="backendai-hub/notebook:latest", id="sha256:0", tags=("backendai-hub/notebook:latest",),
                  labels={})
    with pytest.raises(Exception) as err:
        parse_options({"resources": {"mem": amount}}, resolve_image=lambda _name: image,
                      default_image=image.ref, default_resources=parse_slots("cpu=1,mem=1g"))
    assert getattr(err.value, "status", None) == 400, err.value
    assert err.value.field == "resources" and "mem" in err.value.message


# -- cookies and XSRF ------------------------------------------------------------------------------

def _cookie_for(svc, monkeypatch, username: str) -> str:
    """A signed OAuth cookie the service's HubOAuth accepts as ``username`` (the hub is not asked)."""
    hub_auth = svc.app.settings["hub_auth"]
    model = {"kind": "user", "name": username, "scopes": ["custom:backendai:self"]}

    async def user_for_token(token, **_kw):
        return model if token == "cookie-token" else None

    monkeypatch.setattr(hub_auth, "user_for_token", user_for_token)
    hub_auth.oauth_client_id = "service-backendai"  # names the cookie, as under a hub (a fresh HubOAuth per test)
    value = create_signed_value(svc.app.settings["cookie_secret"], hub_auth.cookie_name, "cookie-token")
    return f"{hub_auth.cookie_name}={value.decode()}"


async def test_a_cookie_reads_but_never_writes_without_the_xsrf_token(svc, monkeypatch):
    cookie = {"Cookie": _cookie_for(svc, monkeypatch, "alice")}
    code, me = await svc.call(None, "GET", "me", headers=cookie)
    assert code == 200 and me["username"] == "alice"  # the cookie does authenticate reads
    code, payload = await svc.call(None, "POST", "keypairs", {}, headers=cookie)
    # a cross-site form cannot issue a keypair with the user's cookie: 403 naming the rule
    assert code == 403 and "XSRF token" in payload["message"], payload
    code, payload = await svc.call(None, "DELETE", "keypairs/AKIAALICEALICEALICEA", headers=cookie)
    assert code == 403 and "XSRF token" in payload["message"], payload
    code, kp = await svc.call("alice", "GET", "keypairs/AKIAALICEALICEALICEA")
    assert code == 200 and kp["is_active"]
