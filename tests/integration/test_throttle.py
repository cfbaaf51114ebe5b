"""Sign-in throttling rules on the real database: per user, per address, windows and lock expiry."""

from datetime import datetime, timedelta, timezone

from backendai_hub import throttle

RULES = throttle.ThrottleRules(max_failures=3, window=timedelta(seconds=60), lock=timedelta(seconds=300))
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_failures_lock_user_and_address_and_expire(database):
    keys = throttle.keys_for("Alice", "10.0.0.1")
    assert keys == ["user:alice", "addr:10.0.0.1"]
    with database.session() as s:
        for i in range(2):
            throttle.record_failure(s, keys, RULES, now=T0 + timedelta(seconds=i))
        assert throttle.locked(s, keys, now=T0 + timedelta(seconds=2)) is None
        throttle.record_failure(s, keys, RULES, now=T0 + timedelta(seconds=2))
        assert throttle.locked(s, keys, now=T0 + timedelta(seconds=3)) == ("user:alice", 299)
        # another user from the same address is locked too; the same user from elsewhere as well
        assert throttle.locked(s, throttle.keys_for("bob", "10.0.0.1"), now=T0 + timedelta(seconds=3))[0] == "addr:10.0.0.1"
        assert throttle.locked(s, throttle.keys_for("alice", "10.9.9.9"), now=T0 + timedelta(seconds=3))[0] == "user:alice"
        assert throttle.locked(s, keys, now=T0 + timedelta(seconds=303)) is None
        locks = throttle.active_locks(s, now=T0 + timedelta(seconds=3))
        assert [lock["key"] for lock in locks] == ["addr:10.0.0.1", "user:alice"]
        assert throttle.clear(s, "user:alice") and not throttle.clear(s, "user:alice")


def test_failures_outside_the_window_do_not_add_up(database):
    keys = throttle.keys_for("carol", None)
    with database.session() as s:
        for i in range(6):
            throttle.record_failure(s, keys, RULES, now=T0 + timedelta(seconds=61 * i))
        assert throttle.locked(s, keys, now=T0 + timedelta(seconds=400)) is None
