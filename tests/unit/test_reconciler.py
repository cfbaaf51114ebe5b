"""The reconciler's decision over the three views: each case a line of the table."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from backendai_hub.service.reconciler import Container, HubServer, Row, hub_servers, plan

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
OLD, YOUNG = NOW - timedelta(hours=1), NOW - timedelta(seconds=30)
GRACE = timedelta(minutes=10)


def row(sid=1, user="ann", server="", container="c1", created=OLD, status="running"):
    return Row(sid, user, server, status, container, created)


def ctr(cid="c1", sid=1, user="ann", server="", running=True, created=OLD):
    return Container(cid, sid, user, server, running, created)


READY = HubServer(True, None, OLD)
PENDING = HubServer(False, "spawn", YOUNG)


@pytest.mark.parametrize("rows, containers, hub, expected", [
    # all three agree: nothing to do
    ([row()], [ctr()], {("ann", ""): READY}, []),
    # the hub died after admission, before the container: released
    ([row(container=None)], [], {}, [("release", 1, None)]),
    # the hub died after the container started, before it was ready: container removed, released
    ([row(container=None, status="starting")], [ctr()], {}, [("release", 1, "c1")]),
    # being born: young rows and pending servers are the spawner's
    ([row(container=None, created=YOUNG)], [], {}, []),
    ([row(container=None)], [ctr()], {("ann", ""): PENDING}, []),
    ([], [ctr(created=YOUNG)], {}, []),
    # the container died under a ready server: the hub is asked to stop it
    ([row()], [ctr(running=False)], {("ann", ""): READY}, [("stop-server", 1, "c1")]),
    ([row()], [], {("ann", ""): READY}, [("stop-server", 1, None)]),
    # a container nobody's session holds: removed
    ([], [ctr(sid=7)], {}, [("remove-container", 7, "c1")]),
    # a ready server with no live session behind it: stopped
    ([], [], {("ann", "x"): READY}, [("stop-server", None, None)]),
    # one container per session, matched by id when the row knows it, else by its session label
    ([row(sid=1, container="c1"), row(sid=2, server="b", container=None)],
     [ctr("c1", 1), ctr("c2", 2, server="b")], {("ann", ""): READY, ("ann", "b"): READY}, []),
])
def test_plan(rows, containers, hub, expected):
    got = plan(rows, containers, hub, now=NOW, grace=GRACE)
    assert [(a.kind, a.session_id, a.container_id) for a in got] == expected
    assert all(a.reason.startswith("reconciler: ") for a in got)


def test_hub_servers_from_the_users_list():
    users = [{"name": "ann", "servers": {"": {"ready": True, "pending": None, "started": "2026-12-01T11:00:00Z"},
                                          "b": {"ready": False, "pending": "spawn", "started": None}}},
             {"name": "ben", "servers": {}}]
    assert hub_servers(users) == {("ann", ""): HubServer(True, None, OLD), ("ann", "b"): HubServer(False, "spawn", None)}
