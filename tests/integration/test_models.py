"""The tenancy model and its migrations on real SQLite and PostgreSQL."""

from decimal import Decimal

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text

from backendai_hub import tenancy as T
from backendai_hub.db import VERSION_TABLE, Database, current_revision, head_revision
from backendai_hub.errors import Conflict, InvalidInput, NotFound
from backendai_hub.models import Base, KeyPair, User
from backendai_hub.policy import Usage, admit, parse_slots
from backendai_hub.admission import levels_for
from backendai_hub.host_permissions import HOST_PERMISSIONS


def test_migrations_create_exactly_the_models(database):
    assert current_revision(database.engine) == head_revision()
    with database.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True, "version_table": VERSION_TABLE}), Base.metadata)
    assert diff == []
    tables = set(inspect(database.engine).get_table_names())
    assert VERSION_TABLE in tables
    assert "alembic_version" not in tables  # never collides with the hub's or anyone's history


def test_upgrade_is_idempotent(database):
    database.upgrade()
    database.upgrade()
    assert current_revision(database.engine) == head_revision()


def test_sqlite_runs_in_wal_mode_with_busy_timeout(tmp_path):
    database = Database(url=f"sqlite:///{tmp_path / 'db.sqlite'}", crypt_key_file=str(tmp_path / "key"))
    database.upgrade()
    with database.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def populate(s, box):
    T.domains.create(s, {"name": "acme", "total_resource_slots": "cpu=16,mem=64g"})
    T.domains.create(s, {"name": "other"})
    T.groups.create(s, {"name": "ml", "domain": "acme", "total_resource_slots": {"cuda.device": 2}})
    T.groups.create(s, {"name": "ml", "domain": "other"})  # same name, other domain: fine
    T.policies.create(s, "keypair", {"name": "small", "total_resource_slots": "cpu=2,mem=4g",
                                   "max_concurrent_sessions": 1})
    T.users.create(s, {"username": "alice", "email": "Alice@Example.com", "domain": "acme",
                      "password": "password-1", "groups": ["ml"]})
    return T.keypairs.issue(s, box, {"user": "alice", "resource_policy": "small"})


def test_full_tenancy_and_admission_levels(database):
    with database.session() as s:
        kp, secret = populate(s, database.secrets)
        ak = kp.access_key
    with database.session() as s:
        kp = T.keypairs.get(s, ak)
        assert kp.user.email == "alice@example.com"  # emails are case-insensitive
        assert [g.name for g in kp.user.groups] == ["ml"]
        assert database.secrets.decrypt(kp.secret_key_encrypted) == secret
        levels = levels_for(kp, T.groups.get(s, "acme", "ml"))
        assert [(lv.kind, lv.name) for lv in levels] == [("keypair", ak), ("group", "ml"), ("domain", "acme")]
        decision = admit(parse_slots("cpu=1,cuda.device=1"), [(lv, Usage()) for lv in levels])
        assert decision
        decision = admit(parse_slots("cpu=1"), [(levels[0], Usage(sessions=1))] +
                         [(lv, Usage()) for lv in levels[1:]])
        assert not decision and decision.reason == f"keypair '{ak}' allows 1 concurrent session, 1 running"
        with pytest.raises(InvalidInput, match="not in the user's domain"):
            levels_for(kp, T.groups.get(s, "other", "ml"))


def test_secret_key_is_never_stored_in_clear(database):
    with database.session() as s:
        kp, secret = populate(s, database.secrets)
    with database.engine.connect() as conn:
        raw = conn.execute(text("select secret_key_encrypted from keypairs")).scalar()
    assert secret.encode() not in bytes(raw)
    columns = {c["name"] for c in inspect(database.engine).get_columns("keypairs")}
    assert "secret_key" not in columns


def test_uniqueness_rules(database):
    with database.session() as s:
        populate(s, database.secrets)
    cases = [
        (lambda s: T.domains.create(s, {"name": "acme"}), Conflict, "domain 'acme' already exists"),
        (lambda s: T.groups.create(s, {"name": "ml", "domain": "acme"}), Conflict,
         "group 'ml' already exists in domain 'acme'"),
        (lambda s: T.users.create(s, {"username": "alice", "email": "b@example.com", "domain": "acme"}),
         Conflict, "user 'alice' already exists"),
        (lambda s: T.users.create(s, {"username": "bob", "email": "ALICE@example.com", "domain": "acme"}),
         Conflict, "email 'alice@example.com' is already used"),
        (lambda s: T.users.create(s, {"username": "bob", "email": "b@example.com", "domain": "nope"}),
         NotFound, "unknown domain 'nope'"),
        (lambda s: T.users.create(s, {"username": "bob", "email": "b@example.com", "domain": "other",
                                     "groups": ["nope"]}), NotFound, "unknown group 'nope' in domain 'other'"),
        (lambda s: T.users.create(s, {"username": "Bob", "email": "b@example.com"}), InvalidInput, "lowercase"),
        (lambda s: T.policies.create(s, "keypair", {"name": "small"}), Conflict, "already exists"),
        (lambda s: T.policies.create(s, "gpu", {"name": "x"}), InvalidInput, "not one of keypair, user, group"),
        (lambda s: T.domains.create(s, {"name": "x", "total_resource_slots": "mem=12X"}), InvalidInput,
         "'12X' is not an amount"),
        (lambda s: T.domains.create(s, {"name": "x", "colour": "red"}), InvalidInput, "unknown field 'colour'"),
        (lambda s: T.domains.delete(s, "acme"), Conflict, "still has 1 user(s) and 1 group(s)"),
        (lambda s: T.policies.delete(s, "keypair", "small"), Conflict, "is used by 1 keypair(s)"),
    ]
    for action, error, message in cases:
        with pytest.raises(error) as e:
            with database.session() as s:
                action(s)
        assert message in e.value.message, message


def test_failed_transaction_writes_nothing(database):
    with pytest.raises(NotFound):
        with database.session() as s:
            T.domains.create(s, {"name": "half"})
            T.groups.create(s, {"name": "g", "domain": "half"})
            T.users.create(s, {"username": "u", "email": "u@example.com", "domain": "missing"})
    with database.session() as s:
        assert T.domains.list_(s) == []
        assert T.groups.list_(s) == []


def test_deleting_a_user_removes_keypairs_and_memberships(database):
    with database.session() as s:
        kp, _ = populate(s, database.secrets)
    with database.session() as s:
        T.users.delete(s, "alice")
    with database.session() as s:
        assert s.scalars(select(KeyPair)).all() == []
        assert T.groups.get(s, "acme", "ml").members == []
        # now the domain can go once its group does
        T.groups.delete(s, "acme", "ml")
        T.domains.delete(s, "acme")
        assert [d.name for d in T.domains.list_(s)] == ["other"]


def test_moving_a_user_drops_groups_of_the_old_domain(database):
    with database.session() as s:
        populate(s, database.secrets)
    with database.session() as s:
        u = T.users.update(s, "alice", {"domain": "other"})
        assert u.groups == []
        u = T.users.update(s, "alice", {"add_groups": ["ml"]})
        assert [(g.domain.name, g.name) for g in u.groups] == [("other", "ml")]


def test_slots_are_stored_exactly(database):
    with database.session() as s:
        T.domains.create(s, {"name": "d", "total_resource_slots": {"cpu": "0.1", "mem": "1.5g"}})
    with database.session() as s:
        d = T.domains.get(s, "d")
        assert d.total_resource_slots == {"cpu": "0.1", "mem": str(int(1.5 * 1024 ** 3))}
        assert Decimal(d.total_resource_slots["cpu"]) == Decimal("0.1")


def test_timestamps_are_timezone_aware(database):
    with database.session() as s:
        T.domains.create(s, {"name": "d"})
    with database.session() as s:
        assert T.domains.get(s, "d").created_at.tzinfo is not None
        assert s.scalar(select(User).limit(1)) is None


def test_sqlite_readers_do_not_wait_for_a_writer(tmp_path):
    """Readers never wait; a second writer waits the busy timeout, then gets a 503 to retry (not a 500)."""
    from backendai_hub.errors import ServiceUnavailable

    database = Database(url=f"sqlite:///{tmp_path / 'db.sqlite'}", crypt_key_file=str(tmp_path / "key"),
                        busy_timeout_ms=200)
    database.upgrade()
    with database.session() as writer:
        T.domains.create(writer, {"name": "held"})
        writer.flush()  # the write lock is held until this block ends
        with database.session(readonly=True) as reader:
            assert T.domains.list_(reader) == []  # reads the last committed state
        with pytest.raises(ServiceUnavailable, match="busy with other writers") as refused:
            with database.session() as second_writer:
                T.domains.list_(second_writer)
        assert refused.value.status == 503 and refused.value.headers["Retry-After"]
    with database.session(readonly=True) as reader:
        assert [d.name for d in T.domains.list_(reader)] == ["held"]


def test_upgrade_keeps_existing_data(db_url, tmp_path):
    """A database in use at an older revision upgrades to head with its rows intact."""
    from backendai_hub import fixtures as F
    from backendai_hub.db import upgrade

    database = Database(url=db_url, crypt_key_file=str(tmp_path / "key"))
    upgrade(database.engine, "0003")
    with database.engine.begin() as conn:
        conn.execute(text("INSERT INTO domains (name, description, is_active, total_resource_slots, allowed_images, "
                          "allowed_vfolder_hosts, created_at) VALUES ('old', '', true, '{}', '[]', :hosts, "
                          "CURRENT_TIMESTAMP)"), {"hosts": '["local", "nfs"]'})
        conn.execute(text("INSERT INTO keypair_resource_policies (name, total_resource_slots, allowed_vfolder_hosts, "
                          "created_at) VALUES ('legacy', :slots, '[]', CURRENT_TIMESTAMP)"), {"slots": '{"cpu": "2"}'})
    database.upgrade()
    with database.session() as s:
        p = T.policies.get(s, "keypair", "legacy")
        assert (p.egress, p.egress_allowlist, p.total_resource_slots) == ("none", [], {"cpu": "2"})
        assert T.domains.get(s, "old").name == "old"
        # hosts listed before storage-host permissions existed keep every permission
        hosts = T.domains.to_dict(T.domains.get(s, "old"))["allowed_vfolder_hosts"]
        assert list(hosts) == ["local", "nfs"] and hosts["nfs"] == list(HOST_PERMISSIONS)
        assert T.policies.to_dict(p)["allowed_vfolder_hosts"] == {}
        F.populate(s, database.secrets, {"users": [{"username": "u", "email": "u@example.com", "domain": "old"}],
                                         "keypairs": [{"user": "u", "resource_policy": "legacy"}]})
    database.dispose()
