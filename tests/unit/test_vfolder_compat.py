"""Pure parts of the Backend.AI-compatible answers: the GraphQL vfolder lists and the problem shape of errors."""

import pytest

from backendai_hub.errors import InvalidInput
from backendai_hub.vfolders import backendai_format as C

# what backend.ai-client 23.9 sends for `vfolder list -g ml` (ai.backend.client.pagination), verbatim
CLIENT_QUERY = """query($limit:Int!, $offset:Int!, $group_id: UUID, $filter: String, $order: String) {
  vfolder_list(
      limit:$limit, offset:$offset, group_id:$group_id, filter:$filter, order:$order) {
    items { host name created_at creator group permission ownership_type status }
    total_count
  }
}"""


def query(root="vfolder_list", fields="name", args="limit:$limit, offset:$offset"):
    return f"query($limit:Int!, $offset:Int!) {{ {root}({args}) {{ items {{ {fields} }} total_count }} }}"


def test_the_clients_query_parses():
    body = {"query": CLIENT_QUERY, "variables": {"limit": 20, "offset": 40, "group_id": "ml", "filter": None,
                                                 "order": None}}
    assert C.parse_list_query(body) == (
        "vfolder_list", ["host", "name", "created_at", "creator", "group", "permission", "ownership_type", "status"],
        {"group_id": "ml"}, 20, 40)


REFUSED = [
    ({"query": 5}, "query"),
    ({"query": "{ vfolder_list { items { name } } }"}, "query"),
    ({"query": "mutation { delete_vfolder(id: 1) { ok } }"}, "query"),
    ({"query": query(root="user_list", fields="email")}, "query"),
    ({"query": query(fields="name password")}, "query"),
    ({"query": query(fields="")}, "query"),
    ({"query": query(fields="name { x }")}, "query"),
    ({"query": query(args='limit:$limit, offset:$offset, name:"x"')}, "query"),
    ({"query": query(root="vfolder_own_list", args="limit:$limit, offset:$offset, group_id:$g"),
      "variables": {"limit": 1, "offset": 0, "g": "ml"}}, "query"),
    ({"query": query(), "variables": "x"}, "query"),
    ({"query": query(), "variables": {"offset": 0}}, "limit"),
    ({"query": query(), "variables": {"limit": 0, "offset": 0}}, "limit"),
    ({"query": query(), "variables": {"limit": 101, "offset": 0}}, "limit"),
    ({"query": query(), "variables": {"limit": True, "offset": 0}}, "limit"),
    ({"query": query(), "variables": {"limit": 10, "offset": -1}}, "offset"),
    ({"query": query(args="limit:$limit, offset:$offset, filter:$f"),
      "variables": {"limit": 10, "offset": 0, "f": 'name == "x"'}}, "filter"),
    ({"query": query(args="limit:$limit, offset:$offset, order:$o"),
      "variables": {"limit": 10, "offset": 0, "o": "-name"}}, "order"),
]


@pytest.mark.parametrize("body, field", REFUSED)
def test_anything_else_is_a_400_naming_the_field(body, field):
    with pytest.raises(InvalidInput) as e:
        C.parse_list_query(body)
    assert e.value.field == field and e.value.status == 400


def test_items_have_the_asked_fields_in_the_asked_order():
    d = C.folder_dict({"id": "f" * 32, "name": "data", "host": "local", "type": "group", "owner": "ml",
                       "permission": "ro", "cloneable": True, "status": "ready", "created_at": "t",
                       "size": 10, "file_count": 2, "quota": None})
    item = C.gql_item(d, ["status", "name", "group", "user", "num_files", "cur_size", "max_size", "unmanaged_path"])
    assert list(item.items()) == [("status", "ready"), ("name", "data"), ("group", "ml"), ("user", None),
                                  ("num_files", 2), ("cur_size", 10), ("max_size", 0), ("unmanaged_path", None)]


def test_errors_carry_the_problem_fields_the_client_prints():
    body = {"error": "Forbidden", "message": "only the owner may invite", "field": "vfolder"}
    got = C.problem(403, body)
    assert got["title"] == "Forbidden operation" and got["msg"] == body["message"]
    assert got["type"].startswith("https://api.backend.ai/probs/") and {**got, **body} == got
    assert C.problem(418, {"message": "x"})["title"] == "Error"
