"""Pure parts of session operations: filters parsed once (400 naming the field), names and UUIDs, the
Backend.AI session list's status names and shapes."""

import json
from datetime import datetime, timedelta, timezone

import pytest

from backendai_hub import backendai_gql as G
from backendai_hub import session_query as Q
from backendai_hub.errors import InvalidInput
from backendai_hub.models import SessionStatus as St

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("raw, want", [
    ({}, Q.Filters()),
    ({"user": "alice", "domain": "", "group": None}, Q.Filters(user="alice")),
    ({"status": "running"}, Q.Filters(status=(St.running,))),
    ({"status": "Running, terminated"}, Q.Filters(status=(St.running, St.terminated))),
    ({"status": "live"}, Q.Filters(status=(St.queued, St.starting, St.running))),
    ({"status": "all"}, Q.Filters()),
    ({"accelerators": "true"}, Q.Filters(accelerators=True)),
    ({"accelerators": "no"}, Q.Filters(accelerators=False)),
    ({"accelerators": False}, Q.Filters(accelerators=False)),
    ({"older_than": "90s"}, Q.Filters(older_than=NOW - timedelta(seconds=90))),
    ({"older_than": "2h"}, Q.Filters(older_than=NOW - timedelta(hours=2))),
    ({"older_than": "7d"}, Q.Filters(older_than=NOW - timedelta(days=7))),
    ({"older_than": "1w"}, Q.Filters(older_than=NOW - timedelta(weeks=1))),
    ({"older_than": "2026-11-30"}, Q.Filters(older_than=datetime(2026, 11, 30, tzinfo=timezone.utc))),
    ({"older_than": "2026-11-30T09:00:00+09:00"}, Q.Filters(older_than=datetime(2026, 11, 30, tzinfo=timezone.utc))),
])
def test_filters_parse(raw, want):
    assert Q.parse_filters(raw, now=NOW) == want


@pytest.mark.parametrize("raw, field", [
    ({"status": "sleeping"}, "status"), ({"status": "running,nope"}, "status"), ({"accelerators": "maybe"}, "accelerators"),
    ({"accelerators": 3}, "accelerators"), ({"older_than": "yesterday"}, "older_than"),
    ({"older_than": "5 days"}, "older_than"), ({"older_than": "2026-13-01"}, "older_than"),
    ({"older_than": "9999999999d"}, "older_than"), ({"older_than": "999999999w"}, "older_than"), ({"user": "x" * 256}, "user"), ({"image": 5}, "image"),
])
def test_bad_filters_name_the_field(raw, field):
    with pytest.raises(InvalidInput) as e:
        Q.parse_filters(raw, now=NOW)
    assert e.value.field == field


def test_names_and_uuids():
    assert Q.session_name("") == "default" and Q.session_name("gpu") == "gpu"
    u = Q.session_uuid(1234)
    assert Q.id_from_ref(u) == 1234 and Q.id_from_ref("1234") == 1234 and Q.id_from_ref(u.upper()) == 1234
    assert Q.id_from_ref("gpu") is None  # a name
    assert Q.id_from_ref("12345678-1234-5678-1234-567812345678") == 0  # a UUID that is none of ours


SESSION = {"id": 7, "name": "default", "session_uuid": Q.session_uuid(7), "user": "alice", "server_name": "",
           "access_key": "AKIA", "group": "ml", "domain": "default", "image": "python:3.11", "app": "jupyterlab",
           "resources": {"cpu": "1", "mem": "1073741824"}, "accelerators": False, "status": "queued",
           "status_info": "", "container_id": None, "created_at": "2026-12-01T10:00:00+00:00", "started_at": None,
           "terminated_at": None}


def run_list(query, variables, rows):
    seen = []

    def sessions(filters, limit, offset):
        seen.append(filters)
        return [G.session_item(r, "a@x") for r in rows][offset:offset + limit], len(rows)

    return G.execute({"query": query, "variables": variables},
                     G.Source(vfolders=None, sessions=sessions, session=None, keypair=None)), seen


# what `backend.ai ps` sends (ai.backend.client.pagination), with the fields of its table
PS = """query($limit:Int!, $offset:Int!, $status: String, $access_key: String, $filter: String, $order: String) {
  compute_session_list(
      limit:$limit, offset:$offset, status:$status, access_key:$access_key, filter:$filter, order:$order) {
    items { name id group_name main_kernel_id image type status status_info status_changed result occupying_slots }
    total_count
  }
}"""


def test_the_clients_session_list():
    (status, got), seen = run_list(PS, {"limit": 20, "offset": 0, "status": "PENDING,RUNNING,ERROR"}, [SESSION])
    assert status == 200, got
    assert seen[0].status == (St.queued, St.running)  # ERROR: we have none such
    item = got["data"]["compute_session_list"]["items"][0]
    assert (item["name"], item["id"], item["status"], item["type"]) == ("default", SESSION["session_uuid"],
                                                                        "PENDING", "INTERACTIVE")
    assert json.loads(item["occupying_slots"]) == SESSION["resources"]
    (status, got), seen = run_list(PS, {"limit": 20, "offset": 0, "status": "CANCELLED"}, [SESSION])
    assert got["data"]["compute_session_list"] == {"items": [], "total_count": 0} and not seen
    (status, got), _ = run_list(PS, {"limit": 20, "offset": 0, "status": "ASLEEP"}, [SESSION])
    assert status == 400 and got["field"] == "status" and "ASLEEP" in got["errors"][0]["message"]
    (status, got), _ = run_list(PS.replace("result", "secret_key"), {"limit": 20, "offset": 0}, [SESSION])
    assert status == 400 and "secret_key" in got["errors"][0]["message"]
