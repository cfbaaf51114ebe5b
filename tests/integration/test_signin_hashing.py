"""A sign-in checks its password outside every transaction (real SQLite file): other writers commit while
it hashes, and a credential changed meanwhile does not sign anyone in."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from backendai_hub import fixtures as F
from backendai_hub.auth import BackendAIAuthenticator
from backendai_hub.db import Database
from backendai_hub.errors import ServiceUnavailable
from backendai_hub.keys import hash_password
from backendai_hub.models import AuditLog, User
from tests.integration.service_harness import TENANCY

PASSWORD = {"username": "alice", "password": "alice-password"}


@pytest.fixture
def url(tmp_path, monkeypatch):
    monkeypatch.delenv("BACKENDAI_HUB_CRYPT_KEY", raising=False)
    url = f"sqlite:///{tmp_path / 'backendai_hub.sqlite'}"
    db = Database(url=url, crypt_key_file=str(tmp_path / "key"))
    db.upgrade()
    with db.session() as s:
        F.populate(s, db.secrets, TENANCY)
    db.dispose()
    Database.clear_instance()
    yield url
    Database.clear_instance()


def other_writer(url: str, tmp_path) -> Database:
    """Another process's connection, as it were: its own engine, and it waits at most 0.2 s for the lock."""
    return Database(url=url, crypt_key_file=str(tmp_path / "key"), busy_timeout_ms=200)


class During(BackendAIAuthenticator):
    """Runs ``during()`` in another thread while the secret is being checked (a failure-mode subclass)."""

    during = None

    def _verify(self, *args):
        errors = []

        def run():
            try:
                self.during()
            except Exception as e:  # noqa: BLE001 - reported to the test
                errors.append(e)

        t = threading.Thread(target=run)
        t.start()
        t.join(30)
        self.errors = errors
        return super()._verify(*args)


def authenticator(url, tmp_path, during) -> During:
    Database.instance(url=url, crypt_key_file=str(tmp_path / "key"))
    auth = During()
    auth.during = during
    return auth


async def test_another_writer_commits_while_a_password_is_checked(url, tmp_path):
    other = other_writer(url, tmp_path)

    def write():  # a write that had to wait for a sign-in holding the write lock would get a 503
        with other.session() as s:
            s.scalar(select(User).where(User.username == "bob")).full_name = "Bob, written during a sign-in"

    auth = authenticator(url, tmp_path, write)
    try:
        assert (await auth.authenticate(None, PASSWORD))["name"] == "alice"
        assert auth.errors == []
        with other.session(readonly=True) as s:
            assert s.scalar(select(User.full_name).where(User.username == "bob")) == "Bob, written during a sign-in"
    finally:
        other.dispose()


async def test_a_password_changed_while_it_was_checked_does_not_sign_in(url, tmp_path):
    other = other_writer(url, tmp_path)

    def change():  # an admin sets a new password while the old one is being checked
        with other.session() as s:
            s.scalar(select(User).where(User.username == "alice")).password_hash = hash_password("new-password")

    auth = authenticator(url, tmp_path, change)
    try:
        assert await auth.authenticate(None, PASSWORD) is None  # the old password, checked, no longer counts
        assert auth.errors == []
        with other.session(readonly=True) as s:
            last = s.scalars(select(AuditLog).where(AuditLog.operation == "sign-in")
                             .order_by(AuditLog.id.desc())).first()
            assert (last.entity_id, last.status.value, last.description) == ("alice", "rejected", "wrong credentials")
        auth.during = lambda: None
        assert (await auth.authenticate(None, {"username": "alice", "password": "new-password"}))["name"] == "alice"
    finally:
        other.dispose()


def test_the_other_writer_here_does_fail_when_the_lock_is_held(url, tmp_path):
    # what the first test relies on: this writer gets a 503 (not a wait) when a write transaction is open
    holder, other = other_writer(url, tmp_path), other_writer(url, tmp_path)
    try:
        with holder.session() as s:
            s.scalar(select(User).where(User.username == "bob")).full_name = "held"
            s.flush()
            outcome = []

            def write():
                try:
                    with other.session() as s2:
                        s2.scalar(select(User).where(User.username == "bob")).full_name = "x"
                    outcome.append("committed")
                except ServiceUnavailable:
                    outcome.append("503")

            t = threading.Thread(target=write)
            t.start()
            t.join(30)
            assert outcome == ["503"]
    finally:
        holder.dispose()
        other.dispose()


class Watched(BackendAIAuthenticator):
    """Notes each password check's thread priority and how many run at once; ``gate`` holds them."""

    gate: threading.Event | None = None

    def _verify(self, *args):
        import os

        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.nice.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        try:
            if self.gate is not None:
                assert self.gate.wait(30)
            return super()._verify(*args)
        finally:
            with self.lock:
                self.running -= 1


def watched(url, tmp_path, **config) -> Watched:
    Database.instance(url=url, crypt_key_file=str(tmp_path / "key"))
    auth = Watched(**config)
    auth.lock, auth.running, auth.most, auth.nice = threading.Lock(), 0, 0, []
    return auth


async def test_passwords_are_hashed_at_a_lower_priority_a_bounded_number_at_once(url, tmp_path):
    import asyncio

    auth = watched(url, tmp_path, password_checks=2)
    answers = await asyncio.gather(*(auth.authenticate(None, PASSWORD) for _ in range(6)))
    assert [a["name"] for a in answers] == ["alice"] * 6
    assert auth.most == 2 and auth.nice == [10] * 6
    plain = watched(url, tmp_path, password_checks=1, password_check_nice=0)
    assert (await plain.authenticate(None, PASSWORD))["name"] == "alice" and plain.nice == [0]


async def test_sign_ins_waiting_for_a_password_check_leave_the_hubs_executor_free(url, tmp_path):
    """The hub's default executor runs its database work and the spawners' calls: a crowd of sign-ins
    queued for the password threads must not hold its threads (more of them than it has)."""
    import asyncio

    auth = watched(url, tmp_path, password_checks=1)
    auth.gate = threading.Event()
    crowd = [asyncio.ensure_future(auth.authenticate(None, PASSWORD)) for _ in range(40)]
    try:
        while auth.running == 0:  # the first one is being checked, the others wait for the thread
            await asyncio.sleep(0.01)
        assert await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(None, lambda: "free"), 5) == "free"
    finally:
        auth.gate.set()
    assert [a["name"] for a in await asyncio.gather(*crowd)] == ["alice"] * 40


async def test_a_sign_in_rehashes_a_password_stored_at_another_cost(url, tmp_path):
    """An operator lowers (or raises) ``Database.password_*``: each password stored before is hashed anew,
    at the new cost, when its owner next signs in with it; a wrong password changes nothing."""
    from backendai_hub import keys

    def stored() -> str:
        with other.session(readonly=True) as s:
            return s.scalar(select(User.password_hash).where(User.username == "alice"))

    other = other_writer(url, tmp_path)
    try:
        before = stored()
        assert before.startswith("$argon2id$v=19$m=65536,t=3,p=4$")  # the default when it was set
        Database.instance(url=url, crypt_key_file=str(tmp_path / "key"), password_time_cost=2,
                          password_memory_kib=19456, password_parallelism=1)
        auth = BackendAIAuthenticator()
        assert await auth.authenticate(None, {"username": "alice", "password": "not-hers"}) is None
        assert stored() == before
        assert (await auth.authenticate(None, PASSWORD))["name"] == "alice"
        after = stored()
        assert after.startswith("$argon2id$v=19$m=19456,t=2,p=1$") and keys.verify_password(after, "alice-password")
        assert (await auth.authenticate(None, PASSWORD))["name"] == "alice"
        assert stored() == after  # at the configured cost now: not hashed again
    finally:
        other.dispose()
        keys.set_password_cost(keys.PasswordCost())
