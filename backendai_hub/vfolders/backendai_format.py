"""Backend.AI-compatible shapes: folder and file answers, the manager's problem fields, the client's GraphQL lists."""

from __future__ import annotations

import re

from ..errors import InvalidInput


def folder_dict(d: dict) -> dict:
    """Our folder dict (folders.to_dict, folders.info) in the manager's shape (plus ours)."""
    return {
        **d,
        "max_size": d.get("quota") or 0,
        "creator": d.get("owner") if d.get("type") == "user" else None,
        "ownership_type": d.get("type"),
        "user": d.get("owner") if d.get("type") == "user" else None,
        "group": d.get("owner") if d.get("type") == "group" else None,
        "numFiles": d.get("file_count"),
        "used_bytes": d.get("size"),
        "last_used": None,
    }


def file_entries(entries: list[dict]) -> list[dict]:
    """files.list_dir entries as the manager's ``files``: filename, size, mode ("drwxr-xr-x"), mtime."""
    return [{"filename": e["name"], "size": e["size"], "mode": e["permissions"], "mtime": e["mtime"],
             "type": {"dir": "DIRECTORY", "symlink": "SYMLINK"}.get(e["type"], "FILE")} for e in entries]


# -- errors ---------------------------------------------------------------------------------------

_PROBLEMS = {400: ("invalid-request", "Bad request"), 401: ("auth-failed", "Authentication failed"),
             403: ("generic-forbidden", "Forbidden operation"), 404: ("object-not-found", "Not found"),
             405: ("method-not-allowed", "Method not allowed"), 409: ("conflict", "Conflict")}


def problem(status: int, body: dict) -> dict:
    """Our error body plus the manager's problem fields, which the client prints (``title``, ``msg``)."""
    kind, title = _PROBLEMS.get(status, ("generic-error", "Error"))
    return {"type": f"https://api.backend.ai/probs/{kind}", "title": title, "msg": body.get("message"), **body}


# -- the GraphQL vfolder lists (``backend.ai vfolder list``, ``list-own``, ``list-invited``, ...) ---------

# the only query the client's paginated lists send (ai.backend.client.pagination), nothing else is parsed
_GQL_QUERY = re.compile(r"\s*query\s*\((?P<decls>[^(){}]*)\)\s*\{\s*(?P<root>\w+)\s*\((?P<args>[^(){}]*)\)\s*"
                        r"\{\s*items\s*\{(?P<fields>[^{}]*)\}\s*total_count\s*\}\s*\}\s*")
_GQL_ARG = re.compile(r"\s*(\w+)\s*:\s*\$(\w+)\s*")
GQL_LISTS = ("vfolder_list", "vfolder_own_list", "vfolder_invited_list", "vfolder_project_list")
GQL_FIELDS = ("id", "host", "name", "user", "group", "creator", "status", "unmanaged_path", "usage_mode",
              "permission", "ownership_type", "max_files", "max_size", "created_at", "last_used", "num_files",
              "cur_size", "cloneable")
GQL_MAX_LIMIT = 100


def parse_list_query(body: dict) -> tuple[str, list[str], dict, int, int]:
    """(root field, fields, other arguments, limit, offset) of a paginated vfolder list query, or 400."""
    query, variables = body.get("query"), body.get("variables") or {}
    if not isinstance(query, str) or not isinstance(variables, dict):
        raise InvalidInput("query: must be a GraphQL query string with a variables object", field="query")
    m = _GQL_QUERY.fullmatch(query)
    if m is None:
        raise InvalidInput("query: only the paginated vfolder lists (" + ", ".join(GQL_LISTS) + ") are served "
                           "here; use the REST API for the rest", field="query")
    root = m["root"]
    if root not in GQL_LISTS:
        raise InvalidInput(f"query: {root!r} is not served; only {', '.join(GQL_LISTS)}", field="query")
    fields = m["fields"].split()
    unknown = [f for f in fields if f not in GQL_FIELDS]
    if unknown or not fields:
        raise InvalidInput(f"query: unknown vfolder field(s) {', '.join(unknown) or '(none asked)'}", field="query")
    args = {}
    for part in m["args"].split(","):
        a = _GQL_ARG.fullmatch(part)
        if a is None:
            raise InvalidInput("query: arguments must be variables ($name)", field="query")
        args[a[1]] = variables.get(a[2])
    for name in ("filter", "order"):
        if args.pop(name, None) is not None:
            raise InvalidInput(f"{name}: filter and order expressions are not supported; list everything",
                               field=name)
    limit, offset = args.pop("limit", None), args.pop("offset", 0)
    for name, value, top in (("limit", limit, GQL_MAX_LIMIT), ("offset", offset, None)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0 or (top and not 1 <= value <= top):
            raise InvalidInput(f"{name}: must be an integer{f' from 1 to {top}' if top else ' >= 0'}", field=name)
    unknown = sorted(set(args) - ({"group_id"} if root == "vfolder_list" else set()))
    if unknown:
        raise InvalidInput(f"query: unknown argument(s) {', '.join(unknown)} of {root}", field="query")
    return root, fields, args, limit, offset


def gql_item(d: dict, fields: list[str]) -> dict:
    """One folder (``folder_dict`` shape) with exactly the asked fields, in the asked order: the client
    pairs values with its columns by position."""
    values = {"user": d.get("user"), "group": d.get("group"), "unmanaged_path": None, "max_files": 0,
              "num_files": d.get("numFiles"), "cur_size": d.get("used_bytes")}
    return {f: values[f] if f in values else d.get(f) for f in fields}
