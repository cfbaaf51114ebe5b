"""The session side's buffer and shipper against the real service in process: records written while
the service is down, or whose answer was lost, all arrive, each exactly once."""

from __future__ import annotations

import asyncio
import json

from sqlalchemy import select
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from backendai_hub.models import CodeLog
from backendai_hub_session.buffer import Buffer, new_record_id
from backendai_hub_session.shipper import Shipper, tornado_post
from tests.integration.service_harness import API
from tests.integration.test_code_logs import CodeLogService, setup, sid
from tests.integration.service_harness import service_fixtures

template, svc = service_fixtures(CodeLogService, setup=setup)


def cell(i: int) -> dict:
    return {"id": new_record_id("cell"), "kind": "cell", "status": "ok", "msg_id": f"m{i}", "execution_count": i,
            "started_at": f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z", "code": f"x = {i}"}


def stored(svc) -> list[str]:
    with svc.db.session(readonly=True) as s:
        return list(s.scalars(select(CodeLog.code).order_by(CodeLog.started_at)))


def test_the_buffer_keeps_records_across_a_restart_and_bounds_its_size(tmp_path):
    b = Buffer(tmp_path / "buf", segment_records=3)
    for i in range(7):
        b.append(cell(i))
    assert b.pending() == 7 and len(b.sealed()) == 2
    again = Buffer(tmp_path / "buf", segment_records=3)  # the server restarted: nothing is lost
    assert again.pending() == 7
    seg, records = again.oldest()
    assert [r["msg_id"] for r in records] == ["m0", "m1", "m2"]
    again.done(seg)
    assert again.pending() == 4
    (tmp_path / "buf" / "current.jsonl").open("a").write('{"cut short')  # a crash mid-line
    small = Buffer(tmp_path / "small", max_bytes=2000, segment_records=5)
    for i in range(100):
        small.append(cell(i))
    assert small.size() <= 2000 and small.dropped > 0 and small.pending() + small.dropped == 100


async def test_records_shipped_while_the_service_is_down_arrive_exactly_once(svc, tmp_path):
    port = svc.port
    url = f"http://127.0.0.1:{port}{API}code-logs"
    svc.server.stop()  # the service is down
    await asyncio.sleep(0.05)
    lost = {"n": 0}

    async def post(u, token, body, timeout):
        status, answer = await tornado_post(u, token, body, timeout)
        if status == 200 and lost["n"] == 0 and json.loads(body)["records"]:
            lost["n"] += 1
            return 599, b""  # delivered, but the answer never came back: it will be sent again
        return status, answer

    buffer = Buffer(tmp_path / "buf", segment_records=4)
    shipper = Shipper(buffer, url, "session-alice", sid(svc, "alice"), "session-server test", interval=0.01,
                      backoff_max=0.2, timeout=2, post=post)
    task = asyncio.ensure_future(shipper.run())
    for i in range(10):
        buffer.append(cell(i))
        shipper.poke()
    await asyncio.sleep(0.5)
    assert stored(svc) == [] and buffer.pending() == 10 and shipper.failures >= 2
    sockets = bind_sockets(port, "127.0.0.1")  # the service is back on its address
    server = HTTPServer(svc.app)
    server.add_sockets(sockets)
    try:
        for i in range(10, 13):
            buffer.append(cell(i))
            shipper.poke()
        for _ in range(100):
            if buffer.pending() == 0:
                break
            await asyncio.sleep(0.05)
        assert buffer.pending() == 0
        assert lost["n"] == 1
        assert stored(svc) == [f"x = {i}" for i in range(13)]  # every record, once, in order
    finally:
        task.cancel()
        server.stop()


async def test_refused_batches_are_dropped_not_retried_forever(svc, tmp_path):
    buffer = Buffer(tmp_path / "buf")
    url = f"http://127.0.0.1:{svc.port}{API}code-logs"
    shipper = Shipper(buffer, url, "session-bob", sid(svc, "bob"), "t")  # bob's group does not log
    buffer.append(cell(1))
    assert await shipper.ship_once() is True
    assert buffer.pending() == 0 and shipper.refused == 1 and stored(svc) == []
