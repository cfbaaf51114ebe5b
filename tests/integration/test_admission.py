"""Atomic admission on real SQLite and PostgreSQL: policies per level, races, queue, release."""

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest

from backendai_hub import admission as S
from backendai_hub.errors import AdmissionDenied
from backendai_hub.errors import Forbidden
from backendai_hub.models import SessionStatus
from backendai_hub.policy import parse_slots
from tests.conftest import database_with

TENANCY = {
    "resource_policies": {"keypair": [{"name": "two", "total_resource_slots": {"cpu": 4, "mem": "8g"},
                                       "max_concurrent_sessions": 2},
                                      {"name": "many", "max_concurrent_sessions": 50}]},
    "domains": [{"name": "acme", "total_resource_slots": {"cuda.device": 3}}],
    "groups": [{"name": "ml", "domain": "acme", "total_resource_slots": {"cpu": 6}},
               {"name": "web", "domain": "acme"}],
    "users": [{"username": "ann", "email": "ann@example.com", "domain": "acme", "groups": ["ml", "web"]},
              {"username": "ben", "email": "ben@example.com", "domain": "acme", "groups": ["ml"]},
              {"username": "cat", "email": "cat@example.com", "domain": "acme", "groups": ["ml"]},
              {"username": "nokey", "email": "nokey@example.com", "domain": "acme", "groups": ["ml"]}],
    "keypairs": [{"user": "ann", "resource_policy": "two"}, {"user": "ben", "resource_policy": "many"},
                 {"user": "cat", "resource_policy": "many"}],
}


db = database_with(TENANCY)


def start(db, user, server="", group=None, slots="cpu=1", **kw):
    with db.session() as s:
        charge = S.resolve(s, user, group)
        return S.admit(s, charge, server_name=server, image="img", app="jupyterlab",
                       request=parse_slots(slots, allow_zero=False), **kw).id


def test_resolution_refusals(db):
    with db.session() as s:
        with pytest.raises(Forbidden, match="has no active keypair"):
            S.resolve(s, "nokey")
        with pytest.raises(Forbidden, match="not a member of group 'web' \\(member of: ml\\)"):
            S.resolve(s, "ben", "web")
        with pytest.raises(Forbidden, match="no backendai-hub account"):
            S.resolve(s, "ghost")
        assert S.resolve(s, "ann").group == "ml" and S.resolve(s, "ann", "web").group == "web"


def test_each_level_denies_with_its_reason(db):
    start(db, "ann", "a", slots="cpu=3")
    with pytest.raises(AdmissionDenied) as e:
        start(db, "ann", "b", slots="cpu=2")
    assert "keypair" in str(e.value) and "allows cpu=4, 3 in use, 2 requested" in str(e.value)
    start(db, "ben", "x", slots="cpu=2")
    with pytest.raises(AdmissionDenied, match="group 'ml' allows cpu=6, 5 in use, 2 requested"):
        start(db, "cat", "y", slots="cpu=2")
    start(db, "ben", "g1", slots="cuda.device=2")
    with pytest.raises(AdmissionDenied, match="domain 'acme' allows cuda.device=3, 2 in use, 2 requested"):
        start(db, "cat", "g2", slots="cuda.device=2")
    start(db, "ann", "b", slots="cpu=1")
    with pytest.raises(AdmissionDenied, match="allows 2 concurrent sessions, 2 running"):
        start(db, "ann", "c", slots="cpu=0.1")


def test_release_frees_and_restart_replaces_a_stale_session(db):
    sid = start(db, "ann", "a", slots="cpu=4")
    with db.session() as s:
        assert S.release(s, sid, "stopped") and not S.release(s, sid, "again")
    start(db, "ann", "a", slots="cpu=4")
    start(db, "ann", "a", slots="cpu=4")  # same server again: the previous row is replaced, not counted
    with db.session() as s:
        live = [r for r in S.live_sessions(s) if r.status != SessionStatus.terminated]
        assert len(live) == 1


def test_twenty_simultaneous_spawns_at_limit_minus_one_admit_exactly_one(db):
    start(db, "ann", "first", slots="cpu=1")  # limit 2 sessions, 1 in use

    def attempt(i):
        try:
            start(db, "ann", f"race{i}", slots="cpu=1")
            return "admitted"
        except AdmissionDenied as e:
            return str(e)

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(attempt, range(20)))
    assert results.count("admitted") == 1, results
    assert all("allows 2 concurrent sessions, 2 running" in r for r in results if r != "admitted")
    with db.session() as s:
        assert S.level_usage(s, S.resolve(s, "ann"))[0].sessions == 2


def test_queue_when_host_is_full_then_first_come_first_served(db):
    capacity = {"cpu": Decimal(2)}
    a = start(db, "ben", "a", slots="cpu=2", capacity=capacity)
    with pytest.raises(AdmissionDenied, match="the host has no free capacity"):
        start(db, "cat", "b", slots="cpu=1", capacity=capacity)
    q1 = start(db, "cat", "b", slots="cpu=1", capacity=capacity, queue=True)
    q2 = start(db, "ben", "c", slots="cpu=1", capacity=capacity, queue=True)
    with db.session() as s:
        assert (S.queue_position(s, q1), S.queue_position(s, q2)) == (1, 2)
        assert s.get(S.KernelSession, q1).status == SessionStatus.queued
        S.release(s, a, "stopped")
    # the second in line may not jump the first
    with db.session() as s:
        row = S.admit(s, S.resolve(s, "ben"), server_name="c", image="img", app="jupyterlab",
                      request=parse_slots("cpu=1"), capacity=capacity, queue=True, queued_id=q2)
        assert row.status == SessionStatus.queued
        row = S.admit(s, S.resolve(s, "cat"), server_name="b", image="img", app="jupyterlab",
                      request=parse_slots("cpu=1"), capacity=capacity, queue=True, queued_id=q1)
        assert row.status == SessionStatus.starting
    with db.session() as s:
        assert S.queue_position(s, q2) == 1
        S.release(s, q2, "cancelled")
        assert S.queue_position(s, q2) == 0
