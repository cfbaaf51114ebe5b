"""What the self-service page reads for each caller (service/page_data.py), on SQLite and PostgreSQL:
a user their own keys and sessions, a domain admin also their domain's sessions, a superadmin every
one; never a secret key."""

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from backendai_hub.models import KernelSession, SessionStatus, User
from backendai_hub.scopes import SCOPE_ADMIN, SCOPE_DOMAIN_ADMIN, SCOPE_SELF
from backendai_hub.service import page_data
from backendai_hub.service.principals import derive_token
from backendai_hub.vfolders.storage import StorageHosts
from tests.conftest import database_with
from tests.integration.service_harness import KEYS, TENANCY

db = database_with(TENANCY)
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
ALL_SCOPES = frozenset({SCOPE_SELF, SCOPE_ADMIN, SCOPE_DOMAIN_ADMIN})
# (owner, server name, status): alice and bob in domain default, olivia in other
SESSIONS = [("alice", "", "running"), ("alice", "old", "terminated"), ("bob", "train", "running"),
            ("olivia", "", "starting"), ("dadmin", "mine", "running")]


@pytest.fixture
def sessions(db):
    with db.session() as s:
        users = {u.username: u for u in s.scalars(select(User))}
        for owner, name, status in SESSIONS:
            u = users[owner]
            s.add(KernelSession(user_id=u.id, server_name=name, access_key=KEYS[owner][0],
                                group_id=u.groups[0].id if u.groups else _any_group(s, u).id,
                                domain_id=u.domain_id, image="python:3.11", app="jupyterlab",
                                slots={"cpu": "2", "mem": str(4 << 30), "cuda.device": "1"},
                                allocation={"devices": {"cuda.device": {"0": "1"}}}, status=SessionStatus(status),
                                created_at=NOW - timedelta(hours=3), started_at=NOW - timedelta(hours=2, minutes=5)))
    return db


def _any_group(s, user):
    from backendai_hub.models import Group

    return s.scalars(select(Group).where(Group.domain_id == user.domain_id)).first()


def read(db, who: str, tmp_path):
    storage = StorageHosts(hosts={"local": str(tmp_path / "vfolders")}, quota_backend="none")
    with db.session(readonly=True) as s:
        p = derive_token(s, who, ALL_SCOPES).principal
        return page_data.page(s, p, storage, NOW)


@pytest.mark.parametrize("who, own, others", [
    ("alice", ["default"], []),
    ("bob", ["train"], []),
    ("dadmin", ["mine"], [("bob", "train"), ("alice", "default")]),  # newest first
    ("odadmin", [], [("olivia", "default")]),
    ("root", [], [("dadmin", "mine"), ("olivia", "default"), ("bob", "train"), ("alice", "default")]),
])
def test_each_caller_sees_their_own_and_their_scope(sessions, tmp_path, who, own, others):
    data = read(sessions, who, tmp_path)
    assert [r["name"] for r in data["sessions"]] == own
    assert [(r["user"], r["name"]) for r in data["scope_sessions"]] == others
    assert (data["scope"] is None) == (not others and who in ("alice", "bob"))


def test_a_session_row_says_what_it_holds(sessions, tmp_path):
    [row] = read(sessions, "alice", tmp_path)["sessions"]
    assert row["resources"] == "cpu=2,cuda.device=1,mem=4g"
    assert row["uptime"] == "2 h 5 min" and row["accelerators"] and row["status"] == "running"


def test_keys_are_the_callers_own_and_no_secret_is_read(sessions, tmp_path):
    for who in KEYS:
        data = read(sessions, who, tmp_path)
        assert [k["access_key"] for k in data["keypairs"]] == [KEYS[who][0]]
        text = json.dumps(data, default=str)
        assert not any(secret in text for _, secret in KEYS.values())


@pytest.mark.parametrize("who, choices", [("alice", []), ("dadmin", []), ("root", ["default", "gold", "unused"])])
def test_policy_choices_follow_the_rules_for_issuing(db, tmp_path, who, choices):
    data = read(db, who, tmp_path)
    assert data["policy_choices"] == choices and data["default_policy"] == "default"


def test_a_domain_admin_chooses_among_the_policies_their_domain_allows(db, tmp_path):
    from backendai_hub import tenancy as T

    with db.session() as s:
        T.domains.update(s, "default", {"allowed_resource_policies": {"keypair": ["gold", "default"]}})
    assert read(db, "dadmin", tmp_path)["policy_choices"] == ["default", "gold"]
    assert read(db, "alice", tmp_path)["policy_choices"] == []


def test_a_keys_last_use_shows_once_recorded(db, tmp_path):
    from backendai_hub.service.key_use import KeyUse

    assert [k["last_used"] for k in read(db, "bob", tmp_path)["keypairs"]] == ["never"]
    uses = KeyUse()
    uses.seen(KEYS["bob"][0], NOW - timedelta(minutes=3))
    assert uses.flush(db) == 1
    assert [k["last_used"] for k in read(db, "bob", tmp_path)["keypairs"]] == ["2026-03-01 11:57"]
    assert [k["last_used"] for k in read(db, "alice", tmp_path)["keypairs"]] == ["never"]
