"""Backend.AI-compatible shapes: folder and file answers, the manager's problem fields, a folder as a GraphQL item."""

from __future__ import annotations


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

# the fields of a folder in the GraphQL lists (backendai_gql.py's VirtualFolder)
GQL_FIELDS = ("id", "host", "name", "user", "group", "creator", "status", "unmanaged_path", "usage_mode",
              "permission", "ownership_type", "max_files", "max_size", "created_at", "last_used", "num_files",
              "cur_size", "cloneable")


def gql_item(d: dict, fields: list[str]) -> dict:
    """One folder (``folder_dict`` shape) with exactly the asked fields, in the asked order: the client
    pairs values with its columns by position."""
    values = {"user": d.get("user"), "group": d.get("group"), "unmanaged_path": None, "max_files": 0,
              "num_files": d.get("numFiles"), "cur_size": d.get("used_bytes")}
    return {f: values[f] if f in values else d.get(f) for f in fields}
