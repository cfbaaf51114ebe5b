"""The Backend.AI GraphQL subset served at ``admin/gql``: a schema (graphql-core) and its resolvers.

What backend.ai-client 23.9 sends: the paginated vfolder lists (``vfolder list``), the session list
(``ps`` / ``session list``: ``compute_session_list``), one session (``session info``:
``compute_session(id:)``) and the caller's keypair (``keypair``, which ``ps`` asks for ``is_admin``).
Anything else is refused by the schema's validation with a GraphQL error naming it. The data comes
from a :class:`Source` the service builds over one database transaction; this module does no I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

from graphql import GraphQLError, build_schema, graphql_sync

from . import session_query as Q
from .errors import InvalidInput, TenancyError

MAX_LIMIT = 100  # the client's own page limit (ai.backend.client.pagination.MAX_PAGE_SIZE)

SDL = """
scalar UUID
scalar BigInt
scalar DateTime
scalar JSONString

type Query {
  vfolder_list(limit: Int!, offset: Int!, filter: String, order: String, domain_name: String,
               group_id: UUID, access_key: String): VirtualFolderList
  vfolder_own_list(limit: Int!, offset: Int!, filter: String, order: String, domain_name: String,
                   access_key: String): VirtualFolderList
  vfolder_invited_list(limit: Int!, offset: Int!, filter: String, order: String, domain_name: String,
                       access_key: String): VirtualFolderList
  vfolder_project_list(limit: Int!, offset: Int!, filter: String, order: String, domain_name: String,
                       access_key: String): VirtualFolderList
  compute_session_list(limit: Int!, offset: Int!, filter: String, order: String, domain_name: String,
                       group_id: String, access_key: String, status: String): ComputeSessionList
  compute_session(id: UUID!): ComputeSession
  keypair(domain_name: String, access_key: String): KeyPair
}

type VirtualFolderList { items: [VirtualFolder]! total_count: Int! }

type VirtualFolder {
  id: UUID host: String name: String user: UUID group: UUID creator: String status: String
  unmanaged_path: String usage_mode: String permission: String ownership_type: String max_files: Int
  max_size: BigInt created_at: DateTime last_used: DateTime num_files: Int cur_size: BigInt cloneable: Boolean
}

type ComputeSessionList { items: [ComputeSession]! total_count: Int! }

type ComputeSession {
  id: UUID main_kernel_id: UUID tag: String name: String type: String image: String registry: String
  cluster_template: String cluster_mode: String cluster_size: Int domain_name: String group_name: String
  group_id: UUID agent_ids: [String] user_email: String user_id: UUID access_key: String
  created_user_email: String created_user_id: UUID status: String status_info: String
  status_data: JSONString status_changed: DateTime created_at: DateTime terminated_at: DateTime
  starts_at: DateTime scheduled_at: DateTime startup_command: String result: String
  resource_opts: JSONString scaling_group: String service_ports: JSONString mounts: [String]
  occupying_slots: JSONString occupied_slots: JSONString containers: [ComputeContainer]
  dependencies: [ComputeSession] abusing_reports: [JSONString] idle_checks: JSONString
}

type ComputeContainer {
  id: UUID cluster_role: String cluster_idx: Int cluster_hostname: String session_id: UUID image: String
  registry: String status: String status_info: String status_data: JSONString status_changed: DateTime
  agent: String container_id: String resource_opts: JSONString occupied_slots: JSONString
  preopen_ports: [Int] live_stat: JSONString last_stat: JSONString
}

type UserInfo { full_name: String email: String }

type KeyPair {
  user_id: String user_info: UserInfo projects: [String] access_key: String secret_key: String
  is_active: Boolean is_admin: Boolean created_at: DateTime modified_at: DateTime last_used: DateTime
  resource_policy: String rate_limit: Int concurrency_used: Int ssh_public_key: String
}
"""

SCHEMA = build_schema(SDL)


# custom scalars pass values through (graphql-core's default, in 3.2 and 3.3 alike): a JSONString is
# made a JSON text by session_item, as Backend.AI's graphene JSONString answers it


VFOLDER_LISTS = ("vfolder_list", "vfolder_own_list", "vfolder_invited_list", "vfolder_project_list")


@dataclass
class Source:
    """Where the resolvers get their data (the service: one transaction; tests: plain lists).

    ``vfolders(root, group, sizes)``: the folders of that list as ``backendai_format.gql_item`` dicts (every
    field); ``sessions(filters, limit, offset)``: (items as :func:`session_item`, total);
    ``session(id)``: one item or None; ``keypair()``: the caller's keypair.
    """

    vfolders: Callable[[str, str | None, bool], list[dict]]
    sessions: Callable[[Q.Filters, int, int], tuple[list[dict], int]]
    session: Callable[[int], dict | None]
    keypair: Callable[[], dict]


def _page(limit: Any, offset: Any) -> tuple[int, int]:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit: must be an integer from 1 to {MAX_LIMIT}", field="limit")
    if offset < 0:
        raise InvalidInput("offset: must be an integer >= 0", field="offset")
    return limit, offset


def _no_expressions(args: dict) -> None:
    for name in ("filter", "order"):
        if args.get(name) is not None:
            raise InvalidInput(f"{name}: filter and order expressions are not supported; list everything",
                               field=name)


def _asked(info, *path: str) -> set[str]:
    """The fields the query selects under the resolved field's ``path`` (``items``)."""
    nodes = list(info.field_nodes)
    for step in path:
        nodes = [sel for node in nodes for sel in (node.selection_set.selections if node.selection_set else ())
                 if getattr(sel, "name", None) and sel.name.value == step]
    return {sel.name.value for node in nodes for sel in (node.selection_set.selections if node.selection_set else ())
            if getattr(sel, "name", None)}


def _vfolder_list(root: str):
    def resolve(_obj, info, limit, offset, **args):
        _no_expressions(args)
        limit, offset = _page(limit, offset)
        sizes = bool({"num_files", "cur_size"} & _asked(info, "items"))
        found = info.context.vfolders(root, args.get("group_id"), sizes)
        return {"items": found[offset:offset + limit], "total_count": len(found)}

    return resolve


def _status_filter(text: str | None) -> tuple:
    """Backend.AI's status names (``RUNNING,PENDING``) as ours; those we never have match nothing."""
    if text is None:
        return ()
    ours = {v: k for k, v in Q.BAI_STATUS.items()}
    names = [w.strip().upper() for w in text.split(",") if w.strip()]
    unknown = [n for n in names if n not in Q.BAI_STATUSES]
    if unknown:
        raise InvalidInput(f"status: unknown session status {unknown[0]!r} (one of {', '.join(Q.BAI_STATUSES)})",
                           field="status")
    return tuple(Q.SessionStatus(ours[n]) for n in names if n in ours) or (None,)


def _session_list(_obj, info, limit, offset, **args):
    _no_expressions(args)
    limit, offset = _page(limit, offset)
    statuses = _status_filter(args.get("status"))
    if statuses == (None,):
        return {"items": [], "total_count": 0}
    filters = Q.Filters(status=statuses, domain=args.get("domain_name"), group=args.get("group_id"),
                        access_key=args.get("access_key"))
    items, total = info.context.sessions(filters, limit, offset)
    return {"items": items, "total_count": total}


def _session(_obj, info, id):
    sid = Q.id_from_ref(str(id))
    return info.context.session(sid) if sid else None


def _keypair(_obj, info, **args):
    return info.context.keypair()


_query = SCHEMA.query_type
for _root in VFOLDER_LISTS:
    _query.fields[_root].resolve = _vfolder_list(_root)
_query.fields["compute_session_list"].resolve = _session_list
_query.fields["compute_session"].resolve = _session
_query.fields["keypair"].resolve = _keypair


def session_item(d: dict, email: str | None = None) -> dict:
    """A session (``session_query.to_dict``) as Backend.AI's ComputeSession: one container, one node."""
    js = json.dumps
    changed = d["terminated_at"] or d["started_at"] or d["created_at"]
    status = Q.BAI_STATUS[d["status"]]
    slots = dict(d["resources"])
    container = {"id": d["session_uuid"], "cluster_role": "main", "cluster_idx": 1, "cluster_hostname": "main1",
                 "session_id": d["session_uuid"], "image": d["image"], "registry": None, "status": status,
                 "status_info": d["status_info"], "status_data": js({}), "status_changed": changed,
                 "agent": "local", "container_id": d["container_id"], "resource_opts": js({}),
                 "occupied_slots": js(slots),
                 "preopen_ports": [], "live_stat": None, "last_stat": None}
    return {
        "id": d["session_uuid"], "main_kernel_id": d["session_uuid"], "tag": None, "name": d["name"],
        "type": "INTERACTIVE", "image": d["image"], "registry": None, "cluster_template": None,
        "cluster_mode": "SINGLE_NODE", "cluster_size": 1, "domain_name": d["domain"], "group_name": d["group"],
        "group_id": d["group"], "agent_ids": ["local"], "user_email": email, "user_id": d["user"],
        "access_key": d["access_key"], "created_user_email": email, "created_user_id": d["user"],
        "status": status, "status_info": d["status_info"], "status_data": js({}), "status_changed": changed,
        "created_at": d["created_at"], "terminated_at": d["terminated_at"], "starts_at": None,
        "scheduled_at": d["created_at"], "startup_command": None,
        "result": "UNDEFINED" if status != "TERMINATED" else "SUCCESS", "resource_opts": js({}),
        "scaling_group": "default", "service_ports": js([{"name": d["app"], "protocol": "http"}]), "mounts": [],
        "occupying_slots": js(slots), "occupied_slots": js(slots), "containers": [container], "dependencies": [],
        "abusing_reports": [], "idle_checks": js({}),
    }


def execute(body: Any, source: Source) -> tuple[int, dict]:
    """(HTTP status, answer) for one request body: 200 with ``data``, or 400 with ``errors`` (and the
    field a bad argument names) when the query is not in the schema or an argument is refused."""
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        raise InvalidInput("query: must be a GraphQL query string", field="query")
    variables = body.get("variables")
    if variables is not None and not isinstance(variables, dict):
        raise InvalidInput("variables: must be an object", field="variables")
    result = graphql_sync(SCHEMA, body["query"], variable_values=variables or {}, context_value=source,
                          operation_name=body.get("operationName") if isinstance(body.get("operationName"), str)
                          else None)
    if not result.errors:
        return 200, {"data": result.data}
    first = result.errors[0]
    original = first.original_error
    if original is not None and not isinstance(original, (TenancyError, GraphQLError)):
        raise original  # our bug, not the caller's: a 500 with its traceback in the log
    answer: dict = {"data": result.data, "errors": [e.formatted for e in result.errors], "message": first.message}
    if isinstance(original, TenancyError) and original.field:
        answer["field"] = original.field
    status = original.status if isinstance(original, TenancyError) else 400
    return status, answer
