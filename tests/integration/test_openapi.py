"""The served OpenAPI document: valid OpenAPI 3.0, true to the routes and fields, true to real answers."""

from __future__ import annotations

import copy
import json
import re

import jsonschema
import pytest
import schemathesis
from schemathesis.core.result import Err
from schemathesis.specs.openapi.definitions import OPENAPI_30
from tornado import web

from backendai_hub import tenancy as T
from backendai_hub.db import Database
from backendai_hub.errors import InvalidInput
from backendai_hub.service.app import API_ROUTES

SERVED_ROUTES = [(r.pattern, r.handler) for r in API_ROUTES]
from tests.integration.service_harness import API, KEYS

AK = {u: ak for u, (ak, _) in KEYS.items()}
METHODS = ("get", "post", "patch", "delete")


@pytest.fixture
async def spec(svc):
    code, doc = await svc.call(None, "GET", "openapi.json")  # the document itself needs no credentials
    assert code == 200 and isinstance(doc, dict)
    return doc


def _template_re(template: str) -> re.Pattern:
    return re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$")


def _norm(template: str) -> str:
    """Path template with parameter names erased: ``users/{username}`` -> ``users/{}``."""
    return re.sub(r"\{[^}]*\}", "{}", template)


def _resolve(doc: dict, node):
    """``node`` with every local $ref inlined (the spec has no recursive schemas)."""
    if isinstance(node, dict):
        if "$ref" in node:
            target = doc
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            return _resolve(doc, target)
        return {k: _resolve(doc, v) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(doc, v) for v in node]
    return node


def _to_json_schema(node):
    """OpenAPI 3.0 schema object -> JSON Schema: ``nullable: true`` becomes ``anyOf [..., null]``."""
    if isinstance(node, list):
        return [_to_json_schema(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in ("properties", "patternProperties", "definitions"):
            out[key] = {k: _to_json_schema(v) for k, v in value.items()}
        elif key == "nullable":
            continue
        else:
            out[key] = _to_json_schema(value)
    if node.get("nullable"):
        return {"anyOf": [out, {"type": "null"}]}
    return out


# -- the document is OpenAPI 3.0 -------------------------------------------------------------------


async def test_spec_validates_against_the_openapi_30_schema(spec):
    assert spec["openapi"].startswith("3.0.")
    validator = jsonschema.Draft4Validator(OPENAPI_30)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(spec)]
    assert errors == []


async def test_spec_loads_in_schemathesis_and_every_operation_resolves(spec):
    schema = schemathesis.openapi.from_dict(copy.deepcopy(spec))
    results = list(schema.get_all_operations())
    bad = [str(r.err()) for r in results if isinstance(r, Err)]
    assert bad == []
    assert len(results) == sum(len(ops) for ops in spec["paths"].values())


async def test_refs_resolve_and_path_parameters_match_templates(spec):
    refs = re.findall(r'"\$ref": "([^"]+)"', json.dumps(spec))
    assert refs
    for ref in refs:
        target = spec
        for part in ref.removeprefix("#/").split("/"):
            assert part in target, f"dangling $ref {ref}"
            target = target[part]
    op_ids = []
    for path, ops in spec["paths"].items():
        in_path = re.findall(r"\{([^}]+)\}", path)
        for method, op in ops.items():
            declared = [p["name"] for p in op.get("parameters", []) if p["in"] == "path"]
            assert sorted(declared) == sorted(in_path), (method, path)
            assert all(p["required"] for p in op.get("parameters", []) if p["in"] == "path")
            op_ids.append(op["operationId"])
            for scheme in (name for req in op.get("security", []) for name in req):
                assert scheme in spec["components"]["securitySchemes"]
    assert len(op_ids) == len(set(op_ids)), "operationIds must be unique"


# -- the document is true to the routes ------------------------------------------------------------


def _served_operations() -> set[tuple[str, str]]:
    """(path template with erased names, method) for every API route, from the handler classes."""
    out = set()
    for route, handler in SERVED_ROUTES:
        template = API + re.sub(r"\([^)]*\)", "{}", route)
        for method in METHODS:
            # a method counts when the class (or a parent below RequestHandler) overrides it
            if getattr(handler, method) is not getattr(web.RequestHandler, method):
                out.add((template, method))
    return out


async def test_spec_operations_equal_the_routes_handlers_serve(spec):
    documented = {(_norm(path), method) for path, ops in spec["paths"].items() for method in ops}
    served = _served_operations()
    assert documented - served == set(), "documented but not served"
    assert served - documented == set(), "served but not documented"


SAMPLE_PARAMS = {"answer": "accept"}  # path parameters whose route only takes certain words


async def test_every_documented_path_reaches_its_handler(svc, spec):
    """A documented path with sample parameters is routed to its handler, not the JSON 404 fallback."""
    handlers = {_norm(API + re.sub(r"\([^)]*\)", "{}", r)): h for r, h in SERVED_ROUTES}
    for path in spec["paths"]:
        sample = re.sub(r"\{([^}]+)\}", lambda m: SAMPLE_PARAMS.get(m.group(1), "x"), path)
        request = type("R", (), {"path": sample, "host": "127.0.0.1", "headers": {}, "connection": None})()
        delegate = svc.app.find_handler(request)
        assert delegate.handler_class is handlers[_norm(path)], path


def _accepted(call) -> bool:
    """Whether the tenancy call took the field past its unknown-field gate (any later error is fine)."""
    try:
        call()
    except InvalidInput as e:
        return not e.message.startswith("unknown field")
    except Exception:  # noqa: BLE001 - a wrong value or a missing object still means the field is known
        return True
    return True


class _Rollback(Exception):
    pass


POLICY_SAMPLES = (("keypair", "gold"), ("user", "upol"), ("group", "gpol"))
# each probe runs one tenancy call; an operation accepts a field when any of its probes does
PROBES = {
    "post domains": [lambda db, s, d: T.domains.create(s, d)],
    "patch domains": [lambda db, s, d: T.domains.update(s, "default", d)],
    "post groups": [lambda db, s, d: T.groups.create(s, d)],
    "patch groups": [lambda db, s, d: T.groups.update(s, "default", "ml", d)],
    "post users": [lambda db, s, d: T.users.create(s, d)],
    "patch users": [lambda db, s, d: T.users.update(s, "alice", d)],
    "post keypairs": [lambda db, s, d: T.keypairs.issue(s, db.secrets, d)],
    "patch keypairs": [lambda db, s, d: T.keypairs.update(s, AK["alice"], d)],
    # policies are per kind; the API documents one body for all kinds, so any kind counts
    "post resource-policies": [lambda db, s, d, k=k: T.policies.create(s, k, d) for k, _ in POLICY_SAMPLES],
    "patch resource-policies": [lambda db, s, d, k=k, n=n: T.policies.update(s, k, n, d)
                                for k, n in POLICY_SAMPLES],
}


def _tenancy_accepts(db: Database, op: str, field: str) -> bool:
    """Probe the tenancy layer itself, each call in a transaction that is always rolled back."""
    for probe in PROBES[op]:
        result = None
        try:
            with db.session() as s:
                result = _accepted(lambda: probe(db, s, {field: None}))
                raise _Rollback
        except _Rollback:
            pass
        if result:
            return True
    return False


# what the tenancy layer accepts for each body (its constants, where it has them)
EXPECTED_BODIES = {
    ("post", "domains"): set(T.domains.FIELDS),
    ("patch", "domains"): set(T.domains.FIELDS),
    ("post", "groups"): set(T.groups.FIELDS),
    ("patch", "groups"): set(T.groups.FIELDS) - {"domain"},
    ("post", "users"): set(T.users.FIELDS),
    ("patch", "users"): set(T.users.UPDATE_FIELDS),
    ("post", "keypairs"): set(T.keypairs.FIELDS),
    ("patch", "keypairs"): {"resource_policy", "is_active"},  # update_keypair's own list, no constant
    ("post", "resource-policies"): set().union(*T.policies.FIELDS.values()) | {"kind"},
    ("patch", "resource-policies"): set().union(*T.policies.FIELDS.values()),
}


@pytest.mark.parametrize("method, resource", [pytest.param(m, r, id=f"{m}-{r}") for m, r in EXPECTED_BODIES])
async def test_request_bodies_name_exactly_the_fields_the_tenancy_layer_accepts(svc, spec, method, resource):
    bodies = [op["requestBody"]["content"]["application/json"]["schema"]
              for path, ops in spec["paths"].items() if path.startswith(API + resource) for m, op in ops.items()
              if m == method]
    assert len(bodies) == 1, (method, resource)
    documented = set(bodies[0]["properties"])
    assert bodies[0].get("additionalProperties") is False
    # the probe and the constants agree about what tenancy takes ...
    candidates = documented | EXPECTED_BODIES[(method, resource)] | {"no_such_field"}
    probed = {f for f in candidates if f == "kind" or _tenancy_accepts(svc.db, f"{method} {resource}", f)}
    assert probed == EXPECTED_BODIES[(method, resource)]
    # ... and the document names exactly that
    assert documented == probed


async def test_every_documented_request_body_is_checked_above(spec):
    tenancy = {r for _, r in EXPECTED_BODIES}  # vfolder bodies: tests/integration/test_vfolder_openapi.py
    with_body = {(m, path.removeprefix(API).split("/")[0]) for path, ops in spec["paths"].items()
                 for m, op in ops.items() if "requestBody" in op}
    assert {(m, r) for m, r in with_body if r in tenancy} == set(EXPECTED_BODIES)


# -- real answers match the documented response schemas -------------------------------------------

NEW_USER = {"username": "newbie", "email": "newbie@example.com", "domain": "default"}

# (actor, method, path relative to the API root, body, expected status)
CALLS = [
    ("root", "GET", "domains", None, 200),
    ("alice", "GET", "users", None, 200),
    ("root", "GET", "keypairs?limit=2&offset=1", None, 200),
    ("root", "GET", "resource-policies?kind=user", None, 200),
    ("root", "GET", "login-locks", None, 200),
    ("root", "GET", "groups?domain=default", None, 200),
    ("root", "GET", "domains/default", None, 200),
    ("dadmin", "GET", "groups/default/ml", None, 200),
    ("alice", "GET", "users/alice", None, 200),
    ("alice", "GET", f"keypairs/{AK['alice']}", None, 200),
    ("root", "GET", "resource-policies/keypair/gold", None, 200),
    ("alice", "GET", "me", None, 200),
    ("root", "POST", "domains", {"name": "newdom", "total_resource_slots": "cpu=4,mem=16g"}, 201),
    ("dadmin", "POST", "groups", {"name": "new"}, 201),
    ("root", "POST", "users", NEW_USER, 201),
    ("alice", "POST", "keypairs", {}, 201),
    ("root", "POST", "resource-policies", {"kind": "user", "name": "new", "max_quota_size": "10g"}, 201),
    ("alice", "PATCH", "users/alice", {"full_name": "Alice A."}, 200),
    ("root", "PATCH", "resource-policies/keypair/gold", {"max_concurrent_sessions": 3}, 200),
    ("root", "POST", "domains", {"name": "Not A Name!"}, 400),
    ("root", "POST", "domains", {"name": "x", "colour": "red"}, 400),
    ("root", "GET", "users?limit=lots", None, 400),
    ("root", "PATCH", "domains/default", b"{not json", 400),
    ("alice", "POST", "domains", {"name": "newdom"}, 403),
    ("alice", "GET", "resource-policies", None, 403),
    ("root", "GET", "domains/nope", None, 404),
    ("alice", "GET", "users/bob", None, 404),
    ("root", "DELETE", "login-locks/user:nobody", None, 404),
    ("root", "POST", "domains", {"name": "default"}, 409),
    ("root", "DELETE", "resource-policies/keypair/default", None, 409),
]


def _documented_schema(spec: dict, method: str, path: str, status: int) -> dict:
    bare = (API + path).split("?")[0]
    matches = [t for t in spec["paths"] if _template_re(t).match(bare)]
    # a literal segment beats a parameter (tornado tries routes in order, the spec has no overlaps)
    assert len(matches) == 1, (path, matches)
    responses = spec["paths"][matches[0]][method.lower()]["responses"]
    assert str(status) in responses, f"{method} {matches[0]} does not document {status}"
    content = responses[str(status)]["content"]["application/json"]["schema"]
    return _to_json_schema(_resolve(spec, content))


@pytest.mark.parametrize("actor, method, path, body, status", CALLS,
                         ids=[f"{a}-{m}-{p}-{s}" for a, m, p, _, s in CALLS])
async def test_real_answers_validate_against_the_documented_schema(svc, spec, actor, method, path, body, status):
    code, payload = await svc.call(actor, method, path, body)
    assert code == status, payload
    schema = _documented_schema(spec, method, path, status)
    jsonschema.validate(payload, schema, cls=jsonschema.Draft4Validator,
                        format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)
    if status >= 400:
        assert set(payload) >= {"error", "message"}


async def test_an_unauthenticated_answer_matches_the_documented_401(svc, spec):
    code, payload = await svc.call("alice", "GET", "domains", secret="not-alice's-secret")
    assert code == 401
    jsonschema.validate(payload, _documented_schema(spec, "GET", "domains", 401), cls=jsonschema.Draft4Validator)


async def test_a_created_answer_names_no_undocumented_property(svc, spec):
    """Item schemas are open (no additionalProperties: false), so check the property sets here."""
    for actor, path, body, schema_name in [
        ("root", "domains", {"name": "newdom"}, "Domain"),
        ("root", "groups", {"name": "g", "domain": "default"}, "Group"),
        ("root", "users", NEW_USER, "User"),
        ("root", "keypairs", {}, "KeyPair"),
        ("root", "resource-policies", {"kind": "keypair", "name": "p"}, "ResourcePolicy"),
    ]:
        code, payload = await svc.call(actor, "POST", path, body)
        assert code == 201, payload
        documented = set(spec["components"]["schemas"][schema_name]["properties"])
        # a keypair policy has no vfolder limits; a user/group policy has no session limits
        assert set(payload) <= documented, (schema_name, set(payload) - documented)
