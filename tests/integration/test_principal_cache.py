"""The principal cache: a cached credential costs one transaction per request, and whatever revokes or
changes it (through the API, or a direct write to the database as the local CLI makes) counts at once."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timezone

import pytest
from sqlalchemy import event, select

from backendai_hub import fixtures as F
from backendai_hub.models import Domain, Group, KeyPair, User, UserRole, UserStatus
from backendai_hub.service.base import APIHandler
from tests.integration.service_harness import KEYS, service_fixtures

ALICE_KEY = KEYS["alice"][0]


class NoTransaction(APIHandler):
    """Answers from the principal alone, with no transaction of its own (as tasks/<id> does)."""

    async def get(self):
        self.write_json({"username": self.principal.username, "role": self.principal.role})


class FlushesFirst(APIHandler):
    """Sends a first part before any transaction (as the compat API's progress stream does)."""

    async def get(self):
        self.write(f"{self.principal.username} {self.principal.role}\n")
        await self.flush()
        self.finish("done\n")


def _add_probes(svc):
    svc.app.add_handlers(r".*", [(r"/probe/no-transaction", NoTransaction), (r"/probe/flushes-first", FlushesFirst)])


template, svc = service_fixtures(setup=_add_probes)


@contextmanager
def transactions(svc):
    """Count the transactions the service begins inside the block."""
    begun = []

    def count(_conn):
        begun.append(1)

    event.listen(svc.db.engine, "begin", count)
    try:
        yield begun
    finally:
        event.remove(svc.db.engine, "begin", count)


async def warm(svc, actor: str = "alice", path: str = "me"):
    """A request that fills the cache, then one that must be served from it (a single transaction)."""
    code, payload = await svc.call(actor, "GET", path)
    assert code == 200, payload
    with transactions(svc) as begun:
        code, payload = await svc.call(actor, "GET", path)
    assert code == 200, payload
    assert len(begun) == 1, f"a cached credential should cost one transaction, took {len(begun)}"
    return payload


def in_db(svc, change):
    """What the local CLI does: write the database directly, without the service knowing."""
    with svc.db.session() as s:
        change(s)


def _user(s, name="alice") -> User:
    return s.scalar(select(User).where(User.username == name))


# how each revocation is made through the API (as root) and directly in the database, and the 401 after
REVOCATIONS = {
    "keypair deactivated": (
        ("PATCH", f"keypairs/{ALICE_KEY}", {"is_active": False}),
        lambda s: setattr(s.get(KeyPair, ALICE_KEY), "is_active", False),
        f"keypair {ALICE_KEY!r} is inactive"),
    "keypair deleted": (
        ("DELETE", f"keypairs/{ALICE_KEY}", None),
        lambda s: s.delete(s.get(KeyPair, ALICE_KEY)),
        f"access key {ALICE_KEY!r} is unknown"),
    "user deactivated": (
        ("PATCH", "users/alice", {"status": "inactive"}),
        lambda s: setattr(_user(s), "status", UserStatus.inactive),
        "user 'alice' is inactive"),
    "user deleted": (
        ("DELETE", "users/alice", None),
        lambda s: s.delete(_user(s)),
        f"access key {ALICE_KEY!r} is unknown"),
    "domain deactivated": (
        ("PATCH", "domains/default", {"is_active": False}),
        lambda s: setattr(s.scalar(select(Domain).where(Domain.name == "default")), "is_active", False),
        "domain 'default' is inactive"),
}


@pytest.mark.parametrize("how", ["api", "db"])
@pytest.mark.parametrize("what", list(REVOCATIONS))
async def test_revocation_is_immediate(svc, what, how):
    api_call, db_change, message = REVOCATIONS[what]
    await warm(svc)
    if how == "api":
        method, path, body = api_call
        code, payload = await svc.call("root", method, path, body)
        assert code in (200, 204), payload
    else:
        in_db(svc, db_change)
    code, payload = await svc.call("alice", "GET", "me")
    assert code == 401, payload
    assert payload == {"error": "Unauthorized", "message": message}
    again = await svc.call("alice", "GET", "me")  # and it stays refused (no longer cached)
    assert again == (code, payload)


@pytest.mark.parametrize("path, before", [
    ("/probe/no-transaction", 200),    # no transaction at all: confirmed in one of its own
    ("/probe/flushes-first", 200),     # sends before any transaction: confirmed before the first byte
    ("tasks/no-such-task", 404),       # a 404 decided before any transaction
    ("agents", 403),                   # a 403 decided from the principal before any transaction
])
async def test_revocation_reaches_handlers_that_act_before_a_transaction(svc, path, before):
    await warm(svc)
    assert (await svc.call("alice", "GET", path))[0] == before
    in_db(svc, lambda s: setattr(s.get(KeyPair, ALICE_KEY), "is_active", False))
    code, payload = await svc.call("alice", "GET", path)
    assert code == 401, payload
    assert payload == {"error": "Unauthorized", "message": f"keypair {ALICE_KEY!r} is inactive"}


async def test_a_changed_role_is_seen_at_once(svc):
    me = await warm(svc, "dadmin")
    assert me["role"] == "domain-admin" and me["administers"] == ["default"]
    in_db(svc, lambda s: setattr(_user(s, "dadmin"), "role", UserRole.user))
    code, me = await svc.call("dadmin", "GET", "me")  # me reports the principal's role, not the row's
    assert code == 200 and me["role"] == "user" and me["administers"] == [], me
    as_user = await svc.call("alice", "PATCH", "users/bob", {"full_name": "Bob"})
    assert as_user[0] in (403, 404)
    assert await svc.call("dadmin", "PATCH", "users/bob", {"full_name": "Bob"}) == as_user  # writes too


async def test_a_promotion_and_a_rename_are_seen_by_handlers_without_a_transaction(svc):
    await warm(svc)
    assert (await svc.call("alice", "GET", "/probe/no-transaction"))[1] == {"username": "alice", "role": "user"}
    in_db(svc, lambda s: setattr(_user(s), "role", UserRole.superadmin))
    assert (await svc.call("alice", "GET", "/probe/no-transaction"))[1] == {"username": "alice",
                                                                            "role": "superadmin"}
    in_db(svc, lambda s: setattr(_user(s), "username", "alicia"))
    assert (await svc.call("alice", "GET", "/probe/flushes-first"))[1] == "alicia superadmin\ndone\n"
    code, me = await svc.call("alice", "GET", "me")
    assert code == 200 and me["username"] == "alicia" and me["role"] == "superadmin"


async def test_a_changed_group_membership_is_seen_at_once(svc):
    await warm(svc)
    code, groups = await svc.call("alice", "GET", "groups")
    assert code == 200 and "cv" not in {g["name"] for g in groups["items"]}, groups

    def join_cv(s):
        alice = _user(s)
        alice.groups.append(s.scalar(select(Group).where(Group.name == "cv")))

    in_db(svc, join_cv)
    code, groups = await svc.call("alice", "GET", "groups")  # visibility follows the principal's groups
    assert code == 200 and {"cv", "ml"} <= {g["name"] for g in groups["items"]}, groups


async def test_a_reissued_secret_replaces_the_cached_one_at_once(svc):
    await warm(svc)
    new_secret = "alice-new-secret-alice-new-secret-alic-99"

    def reissue(s):  # what `backendai-hub fixture populate` does to an existing keypair
        F.populate(s, svc.db.secrets, {"keypairs": [{"user": "alice", "access_key": ALICE_KEY,
                                                      "secret_key": new_secret}]})

    in_db(svc, reissue)
    code, payload = await svc.call("alice", "GET", "me")  # the old secret, from the cache's point of view valid
    assert code == 401 and "does not match" in payload["message"], payload
    code, me = await svc.call("alice", "GET", "me", secret=new_secret)
    assert code == 200 and me["username"] == "alice", me


async def test_a_cache_hit_still_refuses_a_replayed_signature(svc):
    await warm(svc)
    date = datetime.now(timezone.utc)
    assert (await svc.call("alice", "GET", "me", date=date))[0] == 200
    code, payload = await svc.call("alice", "GET", "me", date=date)  # the same signature again
    assert code == 401 and "already used" in payload["message"], payload


async def test_a_cache_hit_refuses_a_wrong_secret_as_a_miss_does(svc):
    cold = await svc.call("bob", "GET", "me", secret="w" * 40)
    await warm(svc)
    hot = await svc.call("alice", "GET", "me", secret="w" * 40)
    assert cold[0] == hot[0] == 401
    assert hot[1]["message"] == cold[1]["message"].replace(KEYS["bob"][0], ALICE_KEY)
    assert (await svc.call("alice", "GET", "me"))[0] == 200  # the right secret still works


async def test_a_write_is_one_transaction_with_a_cached_credential(svc):
    await warm(svc, "root")
    with transactions(svc) as begun:
        code, payload = await svc.call("root", "PATCH", "users/bob", {"full_name": "Bob B."})
    assert code == 200 and payload["full_name"] == "Bob B."
    assert len(begun) == 1


async def test_a_hub_token_is_cached_and_revoked_at_once(svc, monkeypatch):
    hub_auth = svc.app.settings["hub_auth"]
    model = {"kind": "user", "name": "alice", "scopes": ["custom:backendai:self"]}

    async def user_for_token(token, **_kw):
        return model if token == "alice-token" else None

    monkeypatch.setattr(hub_auth, "user_for_token", user_for_token)
    token = {"Authorization": "token alice-token"}
    assert (await svc.call(None, "GET", "me", headers=token))[0] == 200
    with transactions(svc) as begun:
        code, me = await svc.call(None, "GET", "me", headers=token)
    assert code == 200 and me["authenticated_via"] == "token" and len(begun) == 1
    in_db(svc, lambda s: setattr(_user(s), "status", UserStatus.inactive))
    code, payload = await svc.call(None, "GET", "me", headers=token)
    assert code == 401 and payload["message"] == "user 'alice' is inactive", payload
