"""Pure parts of the Backend.AI-compatible answers: the GraphQL vfolder lists (the schema, over plain lists)
and the problem shape of errors."""

import pytest

from backendai_hub.errors import InvalidInput
from backendai_hub import backendai_gql as G
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


FOLDERS = [C.gql_item(C.folder_dict({"id": f"{i:032x}", "name": f"f{i}", "host": "local", "type": "user",
                                     "owner": "alice", "permission": "rw", "status": "ready", "created_at": "t",
                                     "size": i, "file_count": i, "quota": None}), C.GQL_FIELDS) for i in range(7)]


def run(body, asked=None):
    """The schema's answer over seven folders; ``asked`` records what the resolver was asked for."""
    def vfolders(root, group, sizes):
        if asked is not None:
            asked.append((root, group, sizes))
        return FOLDERS

    return G.execute(body, G.Source(vfolders=vfolders, sessions=None, session=None, keypair=None))


def test_the_clients_query_is_answered_in_its_shape():
    asked = []
    body = {"query": CLIENT_QUERY, "variables": {"limit": 2, "offset": 4, "group_id": "ml", "filter": None,
                                                 "order": None}}
    status, got = run(body, asked)
    assert status == 200 and asked == [("vfolder_list", "ml", False)]
    assert got["data"]["vfolder_list"]["total_count"] == 7
    items = got["data"]["vfolder_list"]["items"]
    assert [i["name"] for i in items] == ["f4", "f5"]
    assert list(items[0]) == ["host", "name", "created_at", "creator", "group", "permission", "ownership_type",
                              "status"]  # the asked fields in the asked order: the client pairs them by position
    status, got = run({"query": query(fields="name num_files"), "variables": {"limit": 1, "offset": 0}}, asked)
    assert asked[-1] == ("vfolder_list", None, True) and got["data"]["vfolder_list"]["items"] == [
        {"name": "f0", "num_files": 0}]


REFUSED = [
    ({"query": "{ vfolder_list { items { name } } }"}, "query", "limit"),
    ({"query": "mutation { delete_vfolder(id: 1) { ok } }"}, "query", "mutation"),
    ({"query": query(root="user_list", fields="email")}, "query", "user_list"),
    ({"query": query(fields="name password")}, "query", "password"),
    ({"query": query(fields="name { x }")}, "query", "name"),
    ({"query": query(args='limit:$limit, offset:$offset, name:"x"')}, "query", "name"),
    ({"query": query(root="vfolder_own_list", args="limit:$limit, offset:$offset, group_id:$g").replace(
        "$offset:Int!)", "$offset:Int!, $g:String)"),
      "variables": {"limit": 1, "offset": 0, "g": "ml"}}, "query", "group_id"),
    ({"query": query(), "variables": {"offset": 0}}, "query", "limit"),
    ({"query": query(), "variables": {"limit": 0, "offset": 0}}, "limit", "limit"),
    ({"query": query(), "variables": {"limit": 101, "offset": 0}}, "limit", "limit"),
    ({"query": query(), "variables": {"limit": True, "offset": 0}}, "query", "limit"),
    ({"query": query(), "variables": {"limit": 10, "offset": -1}}, "offset", "offset"),
    ({"query": query(args="limit:$limit, offset:$offset, filter:$f").replace("$offset:Int!)", "$offset:Int!, $f:String)"),
      "variables": {"limit": 10, "offset": 0, "f": 'name == "x"'}}, "filter", "not supported"),
    ({"query": query(args="limit:$limit, offset:$offset, order:$o").replace("$offset:Int!)", "$offset:Int!, $o:String)"),
      "variables": {"limit": 10, "offset": 0, "o": "-name"}}, "order", "not supported"),
]


@pytest.mark.parametrize("body, field, words", REFUSED)
def test_anything_else_is_a_graphql_error_naming_it(body, field, words):
    status, got = run(body)
    assert status == 400 and got["errors"] and words in got["errors"][0]["message"], got
    assert got.get("field", "query") == field


@pytest.mark.parametrize("body, field", [({"query": 5}, "query"), ({"query": query(), "variables": "x"}, "variables")])
def test_a_body_that_is_no_graphql_request_is_a_400(body, field):
    with pytest.raises(InvalidInput) as e:
        run(body)
    assert e.value.field == field


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
