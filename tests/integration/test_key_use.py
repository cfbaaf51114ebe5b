"""A keypair's last use: every signed request the service does not refuse as unauthenticated is noted,
and the batch written every few seconds shows in ``keypairs.last_used`` (REST and the database)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from backendai_hub.models import KeyPair
from tests.integration.service_harness import KEYS, service_fixtures

template, svc = service_fixtures()


def last_used(svc, who: str):
    with svc.db.session(readonly=True) as s:
        return s.scalar(select(KeyPair.last_used).where(KeyPair.access_key == KEYS[who][0]))


async def test_signed_requests_set_last_used_at_the_next_flush(svc):
    before = datetime.now(timezone.utc)
    assert last_used(svc, "bob") is None
    assert (await svc.call("bob", "GET", "me"))[0] == 200
    assert (await svc.call("bob", "GET", "keypairs"))[0] == 200
    key_use = svc.app.settings["key_use"]
    assert last_used(svc, "bob") is None and key_use.pending() == 1  # noted, not written per request
    assert key_use.flush(svc.db) == 1
    when = last_used(svc, "bob")
    assert before <= when <= datetime.now(timezone.utc)
    status, body = await svc.call("bob", "GET", "keypairs")
    assert status == 200
    assert {k["access_key"]: k["last_used"] for k in body["items"]}[KEYS["bob"][0]] == when.isoformat()


async def test_a_refused_signature_is_no_use_and_a_late_note_never_moves_it_back(svc):
    status, _ = await svc.call("alice", "GET", "me", secret="not-alices-secret-not-alices-secret-0000")
    assert status == 401
    assert svc.app.settings.get("key_use") is None or svc.app.settings["key_use"].pending() == 0
    assert (await svc.call("alice", "GET", "me"))[0] == 200
    key_use = svc.app.settings["key_use"]
    key_use.flush(svc.db)
    newest = last_used(svc, "alice")
    key_use.seen(KEYS["alice"][0], newest - timedelta(hours=1))  # a slow request finishing late
    key_use.flush(svc.db)
    assert last_used(svc, "alice") == newest
    assert last_used(svc, "bob") is None  # nobody else's key moved
