"""The cost of password hashes (argon2id), a per-deployment setting: OWASP's minimum is a floor, the
setting reaches new hashes, and hashes made at another cost still verify and ask to be made anew."""

import pytest

from backendai_hub import keys
from backendai_hub.db import Database
from backendai_hub.keys import ARGON2ID_FLOORS, PasswordCost, PasswordCostError


@pytest.fixture(autouse=True)
def default_cost():
    yield
    keys.set_password_cost(PasswordCost())  # the process's cost is global: leave the default behind


@pytest.mark.parametrize("memory, passes", ARGON2ID_FLOORS)
def test_each_of_owasps_minimums_is_accepted_and_one_kib_less_is_refused(memory, passes):
    assert PasswordCost(time_cost=passes, memory_kib=memory, parallelism=1).problem() is None
    problem = PasswordCost(time_cost=passes, memory_kib=memory - 1, parallelism=1).problem()
    assert problem is not None and "below OWASP's minimum" in problem and "password_memory_kib" in problem


def test_argon2s_own_limits_and_a_slip_of_units_are_refused_with_the_setting_named():
    assert "password_parallelism" in PasswordCost(parallelism=0).problem()
    assert "password_parallelism" in PasswordCost(parallelism=65).problem()
    assert "the setting is in KiB" in PasswordCost(memory_kib=64 * 1024 * 1024).problem()  # bytes, not KiB
    assert PasswordCost(memory_kib=4 << 20).problem() is None
    assert "password_time_cost" in PasswordCost(time_cost=65).problem()
    with pytest.raises(PasswordCostError, match="below OWASP's minimum"):
        keys.set_password_cost(PasswordCost(time_cost=1, memory_kib=19456))


def test_new_hashes_take_the_configured_cost_and_old_ones_still_verify():
    old = keys.hash_password("correct horse")
    assert old.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    keys.set_password_cost(PasswordCost(time_cost=2, memory_kib=19456, parallelism=1))
    new = keys.hash_password("correct horse")
    assert new.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert keys.verify_password(old, "correct horse") and keys.verify_password(new, "correct horse")
    assert not keys.verify_password(old, "wrong horse")
    assert keys.password_needs_rehash(old) and not keys.password_needs_rehash(new)


def test_the_database_settings_set_the_cost_and_refuse_a_weak_one():
    Database(url="sqlite://", password_time_cost=3, password_memory_kib=12288, password_parallelism=2)
    assert keys.hash_password("x").startswith("$argon2id$v=19$m=12288,t=3,p=2$")
    with pytest.raises(PasswordCostError, match="12287 with password_time_cost 3"):
        Database(url="sqlite://", password_time_cost=3, password_memory_kib=12287)


@pytest.mark.parametrize("text, cost", [
    ("", PasswordCost()),
    ("m=19456,t=2,p=1", PasswordCost(time_cost=2, memory_kib=19456, parallelism=1)),
    (" t=4 , m=9216 ", PasswordCost(time_cost=4, memory_kib=9216)),
])
def test_the_environment_variable_in_argon2s_notation(monkeypatch, text, cost):
    assert PasswordCost.parse(text) == cost
    monkeypatch.setenv("BACKENDAI_HUB_PASSWORD_COST", text)
    db = Database(url="sqlite://")
    assert (db.password_time_cost, db.password_memory_kib, db.password_parallelism) == (
        cost.time_cost, cost.memory_kib, cost.parallelism)


@pytest.mark.parametrize("text", ["m=19456;t=2", "x=1", "m=-5", "t=two", "m=", "m=99999999999", "m=\u00b2",
                                  "t=\u0663"])
def test_a_malformed_environment_variable_names_itself(monkeypatch, text):
    with pytest.raises(PasswordCostError, match="BACKENDAI_HUB_PASSWORD_COST: .* is not m=<KiB>"):
        PasswordCost.parse(text)
    monkeypatch.setenv("BACKENDAI_HUB_PASSWORD_COST", text)
    with pytest.raises(PasswordCostError, match="BACKENDAI_HUB_PASSWORD_COST"):
        Database(url="sqlite://")


def test_a_setting_given_twice_in_the_environment_variable_is_refused():
    with pytest.raises(PasswordCostError, match="BACKENDAI_HUB_PASSWORD_COST: t is given twice"):
        PasswordCost.parse("t=2,m=19456,t=1")


def test_the_hub_warns_when_its_settings_and_the_clis_variable_differ(monkeypatch, caplog):
    import logging

    monkeypatch.setenv("BACKENDAI_HUB_PASSWORD_COST", "m=19456,t=2,p=1")
    with caplog.at_level(logging.WARNING):
        Database(url="sqlite://")  # the variable is the default: they agree
        assert "differ from $BACKENDAI_HUB_PASSWORD_COST" not in caplog.text
        Database(url="sqlite://", password_memory_kib=65536, password_time_cost=3, password_parallelism=4)
    assert "differ from $BACKENDAI_HUB_PASSWORD_COST" in caplog.text
