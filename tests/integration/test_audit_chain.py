"""The audit log's hash chain on real SQLite and PostgreSQL: append, verify, tampering, retention, concurrency."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

from sqlalchemy import select, text, update

from backendai_hub import audit
from backendai_hub.models import AuditLog, AuditStatus

ACTOR = audit.Actor(user="alice", source="rest", credential="token", domain="acme")


def _add(db, n: int, start: int = 0, now: datetime | None = None) -> None:
    for i in range(start, start + n):
        with db.session() as s:
            audit.append(s, ACTOR, audit.Event("user", "update", "PATCH api/v1/users/{username}",
                                               entity_id=f"u{i}"), now=now)


def test_a_fresh_chain_verifies_and_rows_link(database):
    _add(database, 5)
    with database.session(readonly=True) as s:
        rows = s.scalars(select(AuditLog).order_by(AuditLog.seq)).all()
        verdict = audit.verify(s)
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0].prev_hash == audit.GENESIS
    assert all(b.prev_hash == a.hash for a, b in zip(rows, rows[1:]))
    assert verdict.ok and verdict.checked == 5 and (verdict.first_seq, verdict.last_seq) == (1, 5)


def test_a_row_edited_by_hand_is_named(database):
    _add(database, 6)
    with database.session() as s:  # what someone with the database's password might do
        s.execute(update(AuditLog).where(AuditLog.seq == 4).values(description="nothing to see"))
    with database.session(readonly=True) as s:
        verdict = audit.verify(s)
        row4 = s.scalar(select(AuditLog).where(AuditLog.seq == 4))
    assert not verdict.ok
    assert verdict.broken_seq == 4 and verdict.broken_id == row4.id
    assert "edited" in verdict.reason


def test_a_row_deleted_by_hand_is_named(database):
    _add(database, 6)
    with database.session() as s:
        s.execute(text("DELETE FROM audit_logs WHERE seq = 3"))
    with database.session(readonly=True) as s:
        verdict = audit.verify(s)
    assert not verdict.ok and verdict.broken_seq == 4 and "seq 3 is missing" in verdict.reason


def test_a_rehashed_row_still_breaks_the_link_to_the_next(database):
    _add(database, 5)
    with database.session() as s:
        row = s.scalar(select(AuditLog).where(AuditLog.seq == 2))
        row.status = AuditStatus.rejected
        values = {k: getattr(row, k) for k in audit.HASHED}
        row.hash = audit.row_hash(values)  # the forger recomputes this row's hash, not the rest
    with database.session(readonly=True) as s:
        verdict = audit.verify(s)
    assert not verdict.ok and verdict.broken_seq == 3 and "prev_hash" in verdict.reason


def test_deleting_the_oldest_rows_without_a_cut_is_caught(database):
    _add(database, 5)
    with database.session() as s:
        s.execute(text("DELETE FROM audit_logs WHERE seq <= 2"))
    with database.session(readonly=True) as s:
        verdict = audit.verify(s)
    assert not verdict.ok and verdict.broken_seq == 3 and "no retention cut" in verdict.reason


def test_retention_cut_keeps_the_chain_verifiable(database):
    old = datetime.now(timezone.utc) - timedelta(days=100)
    _add(database, 4, now=old)
    _add(database, 3, start=4)
    exported: list[str] = []
    with database.session() as s:
        gone = audit.prune(s, audit.local_actor(), datetime.now(timezone.utc) - timedelta(days=30),
                           export=lambda rows: exported.extend(audit.export_lines(rows)))
    assert gone == 4 and len(exported) == 4 and '"entity_id": "u0"' in exported[0]
    with database.session(readonly=True) as s:
        seqs = s.scalars(select(AuditLog.seq).order_by(AuditLog.seq)).all()
        verdict = audit.verify(s)
        cut = s.scalar(select(AuditLog).where(AuditLog.operation == "prune"))
    assert seqs == [5, 6, 7, 8]
    assert verdict.ok, verdict
    assert cut.entity_id.startswith("before:5:") and cut.actor is None and cut.source == "cli"
    _add(database, 2, start=10)  # and it goes on
    with database.session() as s:
        # all but the newest row (10): 5..9, the first cut among them
        assert audit.prune(s, audit.local_actor(), datetime.now(timezone.utc) + timedelta(days=1)) == 5
    with database.session(readonly=True) as s:
        assert audit.verify(s).ok
        assert s.scalars(select(AuditLog.seq).order_by(AuditLog.seq)).all() == [10, 11]


def test_a_failed_change_leaves_an_error_row_and_no_success_row(database):
    class Boom(Exception):
        pass

    def work(s):
        s.execute(text("UPDATE domains SET description = 'x'"))
        raise Boom

    event = audit.Event("domain", "update", "domain update", entity_id="default")
    try:
        audit.audited(database, ACTOR, event, work)
    except Boom:
        pass
    with database.session(readonly=True) as s:
        rows = s.scalars(select(AuditLog)).all()
    assert [(r.status, r.description) for r in rows] == [(AuditStatus.error, "Boom")]


def test_twenty_concurrent_writers_keep_one_chain(database):
    errors: list[BaseException] = []
    barrier = threading.Barrier(20)

    def writer(i: int):
        try:
            barrier.wait()
            _add(database, 5, start=i * 100)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with database.session(readonly=True) as s:
        verdict = audit.verify(s)
        seqs = s.scalars(select(AuditLog.seq).order_by(AuditLog.seq)).all()
    assert seqs == list(range(1, 101))
    assert verdict.ok and verdict.checked == 100


def test_search_filters_and_scopes(database):
    _add(database, 3)
    other = audit.Actor(user="bob", source="cli", credential="local:root", domain="beta")
    with database.session() as s:
        audit.append(s, other, audit.Event("vfolder", "share", "POST api/v1/vfolders/{name}/share",
                                           entity_id="data", status=AuditStatus.rejected,
                                           description="permission denied: bob is not the owner"))
    with database.session(readonly=True) as s:
        assert audit.search(s, audit.Query(domains=frozenset({"beta"})), 10, 0)[1] == 1
        assert audit.search(s, audit.Query(actors=frozenset({"alice"})), 10, 0)[1] == 3
        rows, total = audit.search(s, audit.Query(text="NOT THE OWNER"), 10, 0)
        assert total == 1 and rows[0].entity_id == "data"
        assert audit.search(s, audit.Query(status=AuditStatus.rejected, operation="share"), 10, 0)[1] == 1
        assert audit.search(s, audit.Query(text="100%"), 10, 0)[1] == 0  # LIKE wildcards are literal
        rows, total = audit.search(s, audit.Query(), 2, 1)
        assert total == 4 and [r.seq for r in rows] == [3, 2]  # newest first


def test_a_cut_takes_only_the_oldest_prefix(database):
    """A row stamped older than one before it (another host's clock) does not pull newer rows into the cut."""
    now = datetime.now(timezone.utc)
    _add(database, 2, now=now - timedelta(days=90))
    _add(database, 1, start=2, now=now)  # recent
    _add(database, 2, start=3, now=now - timedelta(days=90))  # old stamps, after a recent row
    with database.session() as s:
        assert audit.prune(s, audit.local_actor(), now - timedelta(days=30)) == 2
    with database.session(readonly=True) as s:
        assert [r.entity_id for r in s.scalars(select(AuditLog).order_by(AuditLog.seq))][:3] == ["u2", "u3", "u4"]
        assert audit.verify(s).ok
