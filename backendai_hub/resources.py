"""The tenancy resource registry: one description per resource that the CLI, REST, OpenAPI and fixtures read.

A :class:`Resource` names its REST collection, the key that names one object (the CLI's positional
arguments and the REST path parameters), its list filters and CLI columns, the fields its create and
update accept (the parsers live in the tenancy modules, their OpenAPI schemas here), the schema of
what it answers, and its five operations with one signature each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from sqlalchemy.orm import Session

from . import tenancy as T
from .host_permissions import HOST_PERMISSIONS
from .keys import SecretBox
from .validation import ACCESS_KEY_RE, NAME_RE, USERNAME_RE

# -- OpenAPI schemas of input and output values -------------------------------------------------------

NAME = {"type": "string", "pattern": NAME_RE.pattern}
LOWER_NAME = {"type": "string", "pattern": USERNAME_RE.pattern}
SLOTS = {"oneOf": [
    {"type": "object", "additionalProperties": {"oneOf": [{"type": "number", "minimum": 0},
                                                          {"type": "string"}]}},
    {"type": "string", "description": "slot=amount,... e.g. cpu=4,mem=16g"}],
    "description": "Resource slots; an absent slot is unlimited. mem accepts binary suffixes (4g)."}
SLOTS_OUT = {"type": "object", "additionalProperties": {"type": "string"}}
STR = {"type": "string"}
BOOL = {"type": "boolean"}
STR_LIST = {"type": "array", "items": STR}
NULLABLE_INT = {"type": "integer", "nullable": True, "minimum": 0}
NULLABLE_STR = {"type": "string", "nullable": True}
SIZE = {"oneOf": [NULLABLE_INT, STR]}
HOSTS_OUT = {"type": "object",
             "additionalProperties": {"type": "array", "items": {"type": "string", "enum": list(HOST_PERMISSIONS)}},
             "description": "storage host -> the permissions it grants"}
HOSTS = {"oneOf": [HOSTS_OUT, STR_LIST, STR],
         "description": "storage host -> permissions; or hosts ('host' grants every permission, "
                        "'host:perm+perm' those), as a list or comma-separated"}
TIMESTAMP = {"type": "string", "format": "date-time", "nullable": True}
ACCESS_KEY = {"type": "string", "pattern": ACCESS_KEY_RE.pattern}
POLICIES_OUT = {"type": "object", "additionalProperties": STR_LIST,
                "description": "policy kind (keypair, user, group) -> the names the domain's admins may assign"}
POLICIES = {"oneOf": [POLICIES_OUT, STR_LIST, STR],
            "description": "policy kind -> names; or kind:name items, as a list or comma-separated"}

CODE_LOG = {"type": "boolean", "description": "record the code its sessions run (code-logs); a session logs when "
                                            "its domain or its group has this on"}
_SHARED_IN = {"description": STR, "is_active": BOOL, "total_resource_slots": SLOTS, "allowed_images": STR_LIST,
              "allowed_vfolder_hosts": HOSTS, "code_log": CODE_LOG}
_SHARED_OUT = {"description": STR, "is_active": BOOL, "total_resource_slots": SLOTS_OUT,
               "allowed_images": STR_LIST, "allowed_vfolder_hosts": HOSTS_OUT, "code_log": BOOL}
_POLICY_IN = {"name": NAME, "total_resource_slots": SLOTS, "max_concurrent_sessions": NULLABLE_INT,
              "max_session_lifetime": NULLABLE_INT, "idle_timeout": NULLABLE_INT, "allowed_vfolder_hosts": HOSTS,
              "idle_timeout_accelerator": {**NULLABLE_INT, "description": "idle timeout (s) of sessions holding "
                                           "accelerators; unset: idle_timeout applies to them too"},
              "max_vfolder_count": NULLABLE_INT, "max_quota_size": SIZE, "max_quota_scope_size": SIZE,
              "egress": {"type": "string", "enum": ["none", "allowlist", "open"]}, "egress_allowlist": STR_LIST}


@dataclass(frozen=True)
class Resource:
    """One tenancy resource. Operations: ``create(s, secrets, data)`` (answers the new object as a
    dict: a keypair's with its secret, the only time it is shown), ``get(s, *key)``,
    ``list(s, **filters)``, ``update(s, *key, data)``, ``delete(s, *key)``, ``to_dict(obj)``."""

    name: str  # CLI resource and fixture kind
    path: str  # REST collection under api/v1/
    key: tuple[str, ...]  # what names one object: CLI positionals, REST path parameters, fixture fields
    rename: str  # the field that renames an object
    filters: tuple[str, ...]  # list filters (CLI options, REST query parameters)
    columns: tuple[str, ...]  # the CLI's table
    schema: str  # the OpenAPI component of one object
    output: Mapping[str, dict]  # its properties
    create_fields: Mapping[str, dict]  # body of a create: field -> OpenAPI schema
    update_fields: Mapping[str, dict]  # body of an update
    create: Callable[[Session, SecretBox, dict], dict]
    get: Callable[..., Any]
    list: Callable[..., list]
    update: Callable[..., Any]
    delete: Callable[..., None]
    to_dict: Callable[[Any], dict]

    def key_of(self, record: Mapping[str, Any], defaults: Mapping[str, Any] = {}) -> tuple:
        """The key of the object a record (a fixture entry) describes."""
        return tuple(record.get(k, defaults.get(k)) for k in self.key)

    def label(self, key: tuple) -> str:
        return "/".join(map(str, key))


def _schema(fields: Mapping[str, Any], schemas: Mapping[str, dict]) -> dict[str, dict]:
    """The OpenAPI schema of each field a tenancy module's parser table accepts (one name, one schema)."""
    return {f: schemas[f] for f in fields}


def _issue(s: Session, secrets: SecretBox, data: dict) -> dict:
    kp, secret = T.keypairs.issue(s, secrets, data)
    return {**T.keypairs.to_dict(kp), "secret_key": secret}  # the only answer that shows it


def _create_policy(s: Session, _secrets: SecretBox, data: dict) -> dict:
    data = dict(data)
    return T.policies.to_dict(T.policies.create(s, data.pop("kind", "keypair"), data))


def _creator(create: Callable[[Session, dict], Any], to_dict: Callable[[Any], dict]):
    return lambda s, _secrets, data: to_dict(create(s, data))


_POLICY_FIELDS = dict.fromkeys(f for fields in T.policies.FIELDS.values() for f in fields)


_DOMAIN_SCHEMAS = {"name": LOWER_NAME, **_SHARED_IN, "allowed_resource_policies": POLICIES}
_USER_SCHEMAS = {"username": LOWER_NAME, "email": {"type": "string", "format": "email"}, "full_name": STR,
                 "password": {"type": "string", "minLength": 8, "nullable": True},
                 "role": {"type": "string", "enum": ["superadmin", "domain-admin", "user"]},
                 "status": {"type": "string", "enum": ["active", "inactive"]}, "domain": LOWER_NAME,
                 "groups": STR_LIST, "resource_policy": NULLABLE_STR, "add_groups": STR_LIST,
                 "remove_groups": STR_LIST, "main_access_key": ACCESS_KEY}
_GROUP_SCHEMAS = {"name": NAME, "domain": LOWER_NAME, **_SHARED_IN, "resource_policy": NULLABLE_STR}
_KEYPAIR_SCHEMAS = {"user": STR, "resource_policy": STR, "is_active": BOOL}

REGISTRY: dict[str, Resource] = {r.name: r for r in (
    Resource(
        name="domain", path="domains", key=("name",), rename="name", filters=(),
        columns=("name", "is_active", "total_resource_slots", "allowed_images", "description"),
        schema="Domain", output={"name": STR, **_SHARED_OUT, "allowed_resource_policies": POLICIES_OUT,
                                 "created_at": TIMESTAMP},
        create_fields=_schema(T.domains.FIELDS, _DOMAIN_SCHEMAS),
        update_fields=_schema(T.domains.FIELDS, _DOMAIN_SCHEMAS),
        create=_creator(T.domains.create, T.domains.to_dict), get=T.domains.get, list=T.domains.list_,
        update=T.domains.update, delete=T.domains.delete, to_dict=T.domains.to_dict),
    Resource(
        name="group", path="groups", key=("domain", "name"), rename="name", filters=("domain",),
        columns=("domain", "name", "is_active", "total_resource_slots", "resource_policy", "members"),
        schema="Group", output={"name": STR, "domain": STR, **_SHARED_OUT, "resource_policy": NULLABLE_STR,
                                "members": STR_LIST, "created_at": TIMESTAMP},
        create_fields=_schema(T.groups.FIELDS, _GROUP_SCHEMAS),
        update_fields=_schema(T.groups.UPDATE_FIELDS, _GROUP_SCHEMAS),
        create=_creator(T.groups.create, T.groups.to_dict), get=T.groups.get, list=T.groups.list_,
        update=T.groups.update, delete=T.groups.delete, to_dict=T.groups.to_dict),
    Resource(
        name="user", path="users", key=("username",), rename="username", filters=("domain", "group"),
        columns=("username", "email", "role", "status", "domain", "groups"),
        schema="User", output={"username": STR, "email": STR, "full_name": STR, "role": STR, "status": STR,
                               "domain": STR, "groups": STR_LIST, "resource_policy": NULLABLE_STR,
                               "keypairs": STR_LIST, "main_access_key": {**ACCESS_KEY, "nullable": True},
                               "created_at": TIMESTAMP},
        create_fields=_schema(T.users.FIELDS, _USER_SCHEMAS),
        update_fields=_schema(T.users.UPDATE_FIELDS, _USER_SCHEMAS),
        create=_creator(T.users.create, T.users.to_dict), get=T.users.get, list=T.users.list_,
        update=T.users.update, delete=T.users.delete, to_dict=T.users.to_dict),
    Resource(
        name="keypair", path="keypairs", key=("access_key",), rename="", filters=("user",),
        columns=("access_key", "user", "is_active", "resource_policy", "created_at", "session_id"),
        schema="KeyPair", output={"access_key": STR, "user": STR, "is_active": BOOL, "resource_policy": STR,
                                  "created_at": TIMESTAMP, "last_used": TIMESTAMP,
                                  "session_id": {**NULLABLE_INT, "description": "the web shell session this key was "
                                                 "issued to: it is deleted when that session ends"},
                                  "secret_key": {"type": "string", "description": "only in the answer to a create"}},
        create_fields=_schema(T.keypairs.FIELDS, _KEYPAIR_SCHEMAS),
        update_fields=_schema(T.keypairs.UPDATE_FIELDS, _KEYPAIR_SCHEMAS),
        create=_issue, get=T.keypairs.get, list=T.keypairs.list_, update=T.keypairs.update,
        delete=T.keypairs.delete, to_dict=T.keypairs.to_dict),
    Resource(
        name="policy", path="resource-policies", key=("kind", "name"), rename="name", filters=("kind",),
        columns=("kind", "name", "total_resource_slots", "max_concurrent_sessions", "max_session_lifetime",
                 "idle_timeout", "idle_timeout_accelerator", "max_vfolder_count", "max_quota_size", "max_quota_scope_size"),
        schema="ResourcePolicy", output={
            "kind": STR, "name": STR, "total_resource_slots": SLOTS_OUT, "max_concurrent_sessions": NULLABLE_INT,
            "max_session_lifetime": NULLABLE_INT, "idle_timeout": NULLABLE_INT, "allowed_vfolder_hosts": HOSTS_OUT,
            "idle_timeout_accelerator": NULLABLE_INT, "max_vfolder_count": NULLABLE_INT, "max_quota_size": NULLABLE_INT, "max_quota_scope_size": NULLABLE_INT,
            "egress": STR, "egress_allowlist": STR_LIST, "created_at": TIMESTAMP},
        create_fields={"kind": {"type": "string", "enum": list(T.policies.KINDS)}, **_schema(_POLICY_FIELDS, _POLICY_IN)},
        update_fields=_schema(_POLICY_FIELDS, _POLICY_IN),
        create=_create_policy, get=T.policies.get, list=T.policies.list_, update=T.policies.update,
        delete=T.policies.delete, to_dict=T.policies.to_dict),
)}
