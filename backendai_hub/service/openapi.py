"""OpenAPI 3.0 description of the REST service, generated from the route table and field schemas."""

from __future__ import annotations

import re
from typing import Any

from .. import __version__

NAME = {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"}
LOWER_NAME = {"type": "string", "pattern": r"^[a-z0-9][a-z0-9._-]{0,63}$"}
SLOTS = {"oneOf": [
    {"type": "object", "additionalProperties": {"oneOf": [{"type": "number", "minimum": 0},
                                                          {"type": "string"}]}},
    {"type": "string", "description": "slot=amount,... e.g. cpu=4,mem=16g"}],
    "description": "Resource slots; an absent slot is unlimited. mem accepts binary suffixes (4g)."}
SLOTS_OUT = {"type": "object", "additionalProperties": {"type": "string"}}
STR_LIST = {"type": "array", "items": {"type": "string"}}
NULLABLE_INT = {"type": "integer", "nullable": True, "minimum": 0}
_HOST_PERMS = {"type": "array", "items": {"type": "string", "enum": [
    "create-vfolder", "modify-vfolder", "delete-vfolder", "mount-in-session", "upload-file", "download-file",
    "invite-others", "set-user-specific-permission"]}}
HOSTS_OUT = {"type": "object", "additionalProperties": _HOST_PERMS,
             "description": "storage host -> the permissions it grants"}
HOSTS = {"oneOf": [HOSTS_OUT, STR_LIST, {"type": "string"}],
         "description": "storage host -> permissions; or hosts ('host' grants every permission, "
                        "'host:perm+perm' those), as a list or comma-separated"}
TIMESTAMP = {"type": "string", "format": "date-time", "nullable": True}

# request bodies: every field the tenancy layer accepts (tests keep these equal to tenancy.*_FIELDS)
INPUT = {
    "domain": {"name": LOWER_NAME, "description": {"type": "string"}, "is_active": {"type": "boolean"},
               "total_resource_slots": SLOTS, "allowed_images": STR_LIST, "allowed_vfolder_hosts": HOSTS},
    "group": {"name": NAME, "domain": LOWER_NAME, "description": {"type": "string"},
              "is_active": {"type": "boolean"}, "total_resource_slots": SLOTS, "allowed_images": STR_LIST,
              "allowed_vfolder_hosts": HOSTS, "resource_policy": {"type": "string", "nullable": True}},
    "user": {"username": LOWER_NAME, "email": {"type": "string", "format": "email"},
             "full_name": {"type": "string"}, "password": {"type": "string", "minLength": 8, "nullable": True},
             "role": {"type": "string", "enum": ["superadmin", "domain-admin", "user"]},
             "status": {"type": "string", "enum": ["active", "inactive"]}, "domain": LOWER_NAME,
             "groups": STR_LIST, "resource_policy": {"type": "string", "nullable": True}},
    "user_update_extra": {"add_groups": STR_LIST, "remove_groups": STR_LIST},
    "keypair": {"user": {"type": "string"}, "resource_policy": {"type": "string"},
                "is_active": {"type": "boolean"}},
    "policy": {"kind": {"type": "string", "enum": ["keypair", "user", "group"]}, "name": NAME,
               "total_resource_slots": SLOTS, "max_concurrent_sessions": NULLABLE_INT,
               "max_session_lifetime": NULLABLE_INT, "idle_timeout": NULLABLE_INT,
               "allowed_vfolder_hosts": HOSTS, "max_vfolder_count": NULLABLE_INT,
               "max_quota_size": {"oneOf": [NULLABLE_INT, {"type": "string"}]},
               "max_quota_scope_size": {"oneOf": [NULLABLE_INT, {"type": "string"}]},
               "egress": {"type": "string", "enum": ["none", "allowlist", "open"]},
               "egress_allowlist": STR_LIST},
}

OUTPUT = {
    "Domain": {"name": {"type": "string"}, "description": {"type": "string"}, "is_active": {"type": "boolean"},
               "total_resource_slots": SLOTS_OUT, "allowed_images": STR_LIST, "allowed_vfolder_hosts": HOSTS_OUT,
               "created_at": TIMESTAMP},
    "Group": {"name": {"type": "string"}, "domain": {"type": "string"}, "description": {"type": "string"},
              "is_active": {"type": "boolean"}, "total_resource_slots": SLOTS_OUT, "allowed_images": STR_LIST,
              "allowed_vfolder_hosts": HOSTS_OUT, "resource_policy": {"type": "string", "nullable": True},
              "members": STR_LIST, "created_at": TIMESTAMP},
    "User": {"username": {"type": "string"}, "email": {"type": "string"}, "full_name": {"type": "string"},
             "role": {"type": "string"}, "status": {"type": "string"}, "domain": {"type": "string"},
             "groups": STR_LIST, "resource_policy": {"type": "string", "nullable": True}, "keypairs": STR_LIST,
             "created_at": TIMESTAMP},
    "KeyPair": {"access_key": {"type": "string"}, "user": {"type": "string"}, "is_active": {"type": "boolean"},
                "resource_policy": {"type": "string"}, "created_at": TIMESTAMP, "last_used": TIMESTAMP,
                "secret_key": {"type": "string", "description": "only in the answer to a create"}},
    "ResourcePolicy": {"kind": {"type": "string"}, "name": {"type": "string"},
                       "total_resource_slots": SLOTS_OUT, "max_concurrent_sessions": NULLABLE_INT,
                       "max_session_lifetime": NULLABLE_INT, "idle_timeout": NULLABLE_INT,
                       "allowed_vfolder_hosts": HOSTS_OUT, "max_vfolder_count": NULLABLE_INT,
                       "max_quota_size": NULLABLE_INT, "max_quota_scope_size": NULLABLE_INT,
                       "egress": {"type": "string"},
                       "egress_allowlist": STR_LIST, "created_at": TIMESTAMP},
    "LoginLock": {"key": {"type": "string"}, "locked_until": {"type": "string"},
                  "seconds_left": {"type": "integer"}},
    "Session": {"id": {"type": "integer"}, "user": {"type": "string"}, "server_name": {"type": "string"},
                "access_key": {"type": "string"}, "group": {"type": "string"}, "domain": {"type": "string"},
                "image": {"type": "string"}, "app": {"type": "string"}, "resources": SLOTS_OUT,
                "status": {"type": "string", "enum": ["queued", "starting", "running", "terminated"]},
                "status_info": {"type": "string"}, "container_id": {"type": "string", "nullable": True},
                "created_at": TIMESTAMP, "started_at": TIMESTAMP, "terminated_at": TIMESTAMP},
    "Image": {"ref": {"type": "string"}, "id": {"type": "string"}, "tags": STR_LIST, "aliases": STR_LIST,
              "min_resources": SLOTS_OUT, "apps": STR_LIST,
              "labels": {"type": "object", "additionalProperties": {"type": "string"}}},
    "Error": {"error": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"}},
    # [accelerators] GET agents, agents/{agent_id} (inventory) and agents/{agent_id}/live-stats
    # (id, collected_at, cpu, memory, accelerators: the same keys with live figures)
    "Agent": {"id": {"type": "string"}, "hostname": {"type": "string"}, "status": {"type": "string"},
              "architecture": {"type": "string", "nullable": True}, "os": {"type": "string"},
              "cpu": {"type": "object", "description": "vendor, model, sockets, cores, threads, frequency_mhz, "
                                                       "max_frequency_mhz, flags; live: utilisation_percent, "
                                                       "load_average"},
              "memory": {"type": "object", "description": "total, available (bytes); live: used"},
              "numa_nodes": {"type": "array", "items": {"type": "object"}},
              "disks": {"type": "array", "items": {"type": "object"}},
              "accelerators": {"type": "array", "items": {"type": "object"},
                               "description": "per plugin: summary (driver/runtime versions, totals) and "
                                              "devices (model, memory, NUMA node, live utilisation, held_by)"},
              "capacity": SLOTS_OUT, "occupied": SLOTS_OUT,
              "failed_plugins": {"type": "object", "additionalProperties": {"type": "string"}},
              "collected_at": TIMESTAMP},
}

# path template -> (tag, schema of one item, body schema for POST/PATCH)
RESOURCES = {
    "domains": ("Domain", "domain"),
    "groups": ("Group", "group"),
    "users": ("User", "user"),
    "keypairs": ("KeyPair", "keypair"),
    "resource-policies": ("ResourcePolicy", "policy"),
    "login-locks": ("LoginLock", None),
    "sessions": ("Session", None),
    "images": ("Image", None),
    "agents": ("Agent", None),  # [accelerators]
}
LIST_FILTERS = {"groups": ["domain"], "users": ["domain", "group"], "keypairs": ["user"],
                "resource-policies": ["kind"], "sessions": ["status", "user"]}
PATH_PARAMS = {"domains": ["name"], "groups": ["domain", "name"], "users": ["username"],
               "keypairs": ["access_key"], "resource-policies": ["kind", "name"], "login-locks": ["key"],
               "sessions": ["session_id"], "agents": ["agent_id"]}  # agents: [accelerators]


def _obj(props: dict, required: list[str] | None = None) -> dict:
    out: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        out["required"] = required
    return out


def _error(description: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


ERRORS = {"400": _error("invalid input; `field` names it"), "401": _error("not authenticated"),
          "403": _error("a rule denies it; `message` names the rule"), "404": _error("unknown")}


def _template(route: str) -> tuple[str, list[str]]:
    """``users/([^/]+)`` -> ``users/{username}``."""
    resource = route.split("/")[0]
    names = iter(PATH_PARAMS.get(resource, []))
    params: list[str] = []

    def sub(_m):
        params.append(next(names))
        return "{" + params[-1] + "}"

    return re.sub(r"\([^)]*\)", sub, route), params


def build_spec(routes: list[tuple[str, type]], prefix: str) -> dict:
    """The spec for ``routes`` (relative to ``{prefix}api/v1/``) as served by the app."""
    paths: dict[str, dict] = {}
    for route, handler in routes:
        resource = route.split("/")[0]
        template, params = _template(route)
        item_schema, body_kind = RESOURCES.get(resource, (None, None))
        ops: dict[str, Any] = {}
        parameters = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in params]
        for method in ("get", "post", "patch", "delete"):
            if method not in handler.__dict__:
                continue
            op: dict[str, Any] = {"tags": [resource], "responses": dict(ERRORS),
                                  "operationId": f"{method}_{template.replace('/', '_').replace('{', '').replace('}', '')}",
                                  "security": [{"hubToken": []}, {"backendaiSignature": []}]}
            ref = {"$ref": f"#/components/schemas/{item_schema}"} if item_schema else {"type": "object"}
            if parameters:
                op["parameters"] = list(parameters)
            if method == "get" and not params and item_schema and resource != "me":
                op["parameters"] = [
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 1000}},
                    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                ] + [{"name": f, "in": "query", "schema": {"type": "string"}} for f in LIST_FILTERS.get(resource, [])]
                op["responses"]["200"] = {"description": "a page", "content": {"application/json": {"schema": _obj({
                    "items": {"type": "array", "items": ref}, "total": {"type": "integer"},
                    "limit": {"type": "integer"}, "offset": {"type": "integer"}})}}}
            elif method == "get":
                op["responses"]["200"] = {"description": "the object",
                                          "content": {"application/json": {"schema": ref if resource != "me" else {"type": "object"}}}}
            elif method == "post":
                props = dict(INPUT[body_kind])
                op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _obj(props)}}}
                op["responses"]["201"] = {"description": "created", "content": {"application/json": {"schema": ref}}}
                op["responses"]["409"] = _error("duplicate or conflicting")
            elif method == "patch":
                props = dict(INPUT[body_kind])
                if body_kind == "user":
                    props.update(INPUT["user_update_extra"])
                # what names the object is in the path and cannot change by PATCH
                for fixed in {"policy": ("kind",), "group": ("domain",), "keypair": ("user",)}.get(body_kind, ()):
                    props.pop(fixed, None)
                op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _obj(props)}}}
                op["responses"]["200"] = {"description": "updated", "content": {"application/json": {"schema": ref}}}
                op["responses"]["409"] = _error("duplicate or conflicting")
            elif method == "delete":
                op["responses"]["204"] = {"description": "deleted"}
                op["responses"]["409"] = _error("still in use")
            ops[method] = op
        paths[f"{prefix}api/v1/{template}"] = ops
    return {
        "openapi": "3.0.3",
        "info": {"title": "backendai-hub REST API", "version": __version__,
                 "description": "Tenancy administration: domains, groups, users, keypairs, resource policies."},
        "paths": paths,
        "components": {
            "schemas": {name: {"type": "object", "properties": props} for name, props in OUTPUT.items()},
            "securitySchemes": {
                "hubToken": {"type": "apiKey", "in": "header", "name": "Authorization",
                             "description": "`token <JupyterHub API token>` carrying custom:backendai:* scopes"},
                "backendaiSignature": {"type": "apiKey", "in": "header", "name": "Authorization",
                                       "description": "Backend.AI keypair HMAC-SHA256 signature"},
            },
        },
    }
