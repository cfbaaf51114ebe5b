"""Code-log operations on SQLite and PostgreSQL: ingest stores each record once (the dialect's
INSERT ... ON CONFLICT DO NOTHING), gaps, prune."""

from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select

from backendai_hub import code_logs as CL
from backendai_hub.models import CodeLog, KernelSession, SessionStatus, User
from tests.conftest import database_with

db = database_with({
    "domains": [{"name": "acme", "code_log": True}],
    "groups": [{"name": "ml", "domain": "acme"}],
    "users": [{"username": "alice", "email": "alice@example.com", "domain": "acme", "groups": ["ml"]}],
    "keypairs": [{"user": "alice"}],
})


def _session(db) -> int:
    with db.session() as s:
        u = s.scalar(select(User).where(User.username == "alice"))
        row = KernelSession(user_id=u.id, server_name="", access_key=u.keypairs[0].access_key, group_id=u.groups[0].id,
                            domain_id=u.domain_id, image="img", status=SessionStatus.running,
                            started_at=datetime.now(timezone.utc))
        s.add(row)
        s.flush()
        return row.id


def test_ingest_is_idempotent_and_prune_cuts_by_age(db):
    sid = _session(db)
    batch = CL.parse_batch({"session": sid, "captured_by": "t", "records": [
        {"id": f"r{i}", "code": f"x = {i}", "status": "ok"} for i in range(5)]})
    old = datetime(2025, 1, 1, tzinfo=timezone.utc)
    with db.session() as s:
        assert CL.ingest(s, "alice", batch, source="test", now=old)["stored"] == 5
    with db.session() as s:
        out = CL.ingest(s, "alice", CL.parse_batch({"session": sid, "records": [
            {"id": "r4", "code": "changed"}, {"id": "r5", "code": "x = 5"}]}), source="test")
        assert out == {"received": 2, "stored": 1, "duplicates": 1}
    with db.session(readonly=True) as s:
        assert s.scalar(select(func.count()).select_from(CodeLog)) == 6
        items, total = CL.list_(s, CL.Reach(all=True), CL.parse_filters({"q": "x = 4"}), limit=10, offset=0)
        assert total == 1 and items[0]["code"] == "x = 4"  # the first delivery stays
    with db.session() as s:
        assert CL.record_gaps(s, silence=timedelta(minutes=1), now=datetime.now(timezone.utc) + timedelta(hours=1)) == [sid]
        assert CL.prune(s, datetime(2026, 1, 1, tzinfo=timezone.utc)) == 5
    with db.session(readonly=True) as s:
        kinds = sorted(k.value for k in s.scalars(select(CodeLog.kind)))
        assert kinds == ["cell", "gap"]
