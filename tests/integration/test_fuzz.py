"""Property-based fuzzing of the live REST service from its own OpenAPI document (schemathesis).

Every generated request is signed with a Backend.AI keypair (root, then the plain user alice) and
sent over a real socket to the in-process service; each operation runs against a fresh copy of the
tenancy. No answer may be a 5xx, and every answer with a documented status must match its schema.
Seeds are derandomized, so a run is reproducible; the budget is at most TOTAL_EXAMPLES (150) in all
(FUZZ_SCALE=20 multiplies it for a deeper run by hand). What the fuzzing found is pinned by
plain regression tests at the end of this file.
"""

from __future__ import annotations

import asyncio
import os
import threading

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from backendai_hub import signing
from backendai_hub.service.app import API_ROUTES, SCHEMAS
from backendai_hub.service.openapi import build_spec
from tests.integration.service_harness import API, KEYS, PREFIX, Service

CHECKS = [not_a_server_error, response_schema_conformance]

# the operations, known at collection time; the test fuzzes the same ones as the live service serves them
OPERATIONS = [(method.upper(), path, op) for path, ops in build_spec([r for r in API_ROUTES if r.tag != "vfolders"], SCHEMAS, PREFIX)["paths"].items()
              for method, op in ops.items()]


def _has_input(op: dict) -> bool:
    return "requestBody" in op or any(p["in"] == "query" for p in op.get("parameters", []))


TOTAL_EXAMPLES = 150  # all operations, both actors, both modes


def _weights(op: dict) -> tuple[int, int, int]:
    """Examples wanted per operation: (root positive, root negative, alice positive)."""
    if "requestBody" in op:
        return 4, 2, 1
    if _has_input(op):
        return 4, 1, 1
    return 2, 0, 1  # path parameters only


def _plan() -> dict[tuple[str, str], tuple[int, int, int]]:
    """The weights, scaled down for root when the route table grows past TOTAL_EXAMPLES."""
    wanted = {(m, p): _weights(op) for m, p, op in OPERATIONS}
    fixed = sum(a for _, _, a in wanted.values())
    scalable = sum(pos + neg for pos, neg, _ in wanted.values())
    factor = min(1.0, (TOTAL_EXAMPLES - fixed) / scalable)
    while True:
        plan = {key: (max(1, round(pos * factor)), round(neg * factor), a) for key, (pos, neg, a) in wanted.items()}
        if sum(map(sum, plan.values())) <= TOTAL_EXAMPLES or factor <= 0:
            return plan
        factor -= 0.01


PLAN = _plan()


# Random names almost never hit an existing object, and the document marks no body field as required,
# so half the time a case is steered onto the tenancy: path parameters name objects that exist (never
# the fuzzing actor's own user, domain or key, which would lock it out) and a create carries a valid
# name. Every other part of the case stays as generated.
EXISTING = {
    "domains/{name}": st.fixed_dictionaries({"name": st.sampled_from(["other", "empty"])}),
    "groups/{domain}/{name}": st.sampled_from([("default", "cv"), ("other", "ml"), ("default", "ml")]).map(
        lambda t: {"domain": t[0], "name": t[1]}),
    "users/{username}": st.fixed_dictionaries({"username": st.sampled_from(["bob", "olivia", "dadmin"])}),
    "keypairs/{access_key}": st.fixed_dictionaries({"access_key": st.sampled_from(
        [KEYS["bob"][0], KEYS["olivia"][0], KEYS["dadmin"][0]])}),
    "resource-policies/{kind}/{name}": st.sampled_from(
        [("keypair", "gold"), ("keypair", "unused"), ("keypair", "default"), ("user", "upol"),
         ("group", "gpol")]).map(lambda t: {"kind": t[0], "name": t[1]}),
}
LOWER_NAME = st.from_regex(r"\A[a-z0-9][a-z0-9._-]{0,20}\Z")
CREATE_KEYS = {
    "domains": st.fixed_dictionaries({"name": LOWER_NAME}),
    "groups": st.fixed_dictionaries({"name": LOWER_NAME, "domain": st.sampled_from(["default", "other"])}),
    "users": LOWER_NAME.map(lambda n: {"username": n, "email": f"{n}@example.com"}),
    "resource-policies": st.fixed_dictionaries({"name": LOWER_NAME,
                                                "kind": st.sampled_from(["keypair", "user", "group"])}),
}


def _steer(case, data) -> None:
    route = case.operation.path.removeprefix(API)
    if route in EXISTING and data.draw(st.booleans(), label="existing object"):
        case.path_parameters.update(data.draw(EXISTING[route], label="path"))
    if (case.method == "POST" and route in CREATE_KEYS and isinstance(case.body, dict)
            and data.draw(st.booleans(), label="valid create keys")):
        case.body.update(data.draw(CREATE_KEYS[route], label="create keys"))


class SignedAuth(requests.auth.AuthBase):
    """Signs the request exactly as it goes on the wire: its path+query and its Host."""

    def __init__(self, actor: str, host: str):
        self.access_key, self.secret_key = KEYS[actor]
        self.host = host

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        content_type = r.headers.get("Content-Type") or "application/json"
        r.headers.update(signing.sign(r.method, r.path_url, host=self.host, access_key=self.access_key,
                                      secret_key=self.secret_key, content_type=content_type))
        return r


class LiveLoop:
    """An event loop on its own thread, so that the service serves while a synchronous test calls it."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="fuzz-service-loop", daemon=True)
        self.thread.start()

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, fn):
        """Run ``fn()`` on the loop's thread (tornado binds servers to the current loop) and return its value."""
        async def call():
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(timeout=30)

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture(scope="module")
def live_loop():
    loop = LiveLoop()
    yield loop
    loop.close()


@pytest.fixture
def live(live_loop, template, tmp_path):
    """A fresh service (fresh tenancy copy) listening on 127.0.0.1."""
    svc = live_loop.run(lambda: Service(template, tmp_path))
    yield svc
    live_loop.run(svc.stop)


@pytest.fixture(scope="module")
def schema(live_loop, template, tmp_path_factory):
    """The document as the live service serves it, loaded by schemathesis."""
    svc = live_loop.run(lambda: Service(template, tmp_path_factory.mktemp("spec")))
    try:
        return schemathesis.openapi.from_url(f"{svc.base}{API}openapi.json")
    finally:
        live_loop.run(svc.stop)


def _fuzz(schema, live, method: str, path: str, actor: str, mode, examples: int) -> int:
    """Run ``examples`` generated cases of one operation as ``actor``; returns how many were sent."""
    examples *= int(os.environ.get("FUZZ_SCALE", "1"))  # run deeper by hand: FUZZ_SCALE=20
    if examples == 0:
        return 0
    operation = schema[path][method]
    auth = SignedAuth(actor, f"127.0.0.1:{live.port}")
    sent = []

    @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
    @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate, Phase.shrink],
              suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
    def run(case, data):
        _steer(case, data)
        response = case.call(base_url=live.base, auth=auth, timeout=10)
        sent.append(response.status_code)
        case.validate_response(response, checks=CHECKS)

    run()
    return len(sent)


def _still_signs_in(live, actor: str) -> None:
    """The fuzzing must not have locked the actor out, or later examples would only test the 401."""
    r = requests.get(f"{live.base}{API}me", auth=SignedAuth(actor, f"127.0.0.1:{live.port}"), timeout=10)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("method, path, op", OPERATIONS, ids=[f"{m} {p.removeprefix(API)}" for m, p, _ in OPERATIONS])
def test_fuzz_as_superadmin(schema, live, method, path, op):
    positive, negative, _ = PLAN[(method, path)]
    sent = _fuzz(schema, live, method, path, "root", schemathesis.GenerationMode.POSITIVE, positive)
    sent += _fuzz(schema, live, method, path, "root", schemathesis.GenerationMode.NEGATIVE, negative)
    assert sent >= 1
    _still_signs_in(live, "root")


@pytest.mark.parametrize("method, path, op", OPERATIONS, ids=[f"{m} {p.removeprefix(API)}" for m, p, _ in OPERATIONS])
def test_fuzz_as_plain_user(schema, live, method, path, op):
    _, _, positive = PLAN[(method, path)]
    assert _fuzz(schema, live, method, path, "alice", schemathesis.GenerationMode.POSITIVE, positive) >= 1
    _still_signs_in(live, "alice")


def test_budget_stays_bounded():
    assert sum(sum(n) for n in PLAN.values()) <= TOTAL_EXAMPLES
    assert all(pos >= 1 and alice >= 1 for pos, _, alice in PLAN.values())


def test_signing_covers_the_query_string(live):
    """The auth hook signs path+query as sent: a query on the wire that was not signed is refused."""
    auth = SignedAuth("root", f"127.0.0.1:{live.port}")
    ok = requests.get(f"{live.base}{API}users", params={"limit": "1", "domain": "default"}, auth=auth, timeout=10)
    assert ok.status_code == 200 and ok.json()["limit"] == 1
    headers = signing.sign("GET", f"{API}users", host=f"127.0.0.1:{live.port}", access_key=KEYS["root"][0],
                           secret_key=KEYS["root"][1])
    tampered = requests.get(f"{live.base}{API}users?limit=1", headers=headers, timeout=10)
    assert tampered.status_code == 401


# -- regressions: 500s the fuzzing found (each a sqlite3/SQLAlchemy error escaping as a 500) --

NON_STRING_POLICY = [
    ("POST", "keypairs", {"resource_policy": {"": None}}),
    ("PATCH", f"keypairs/{KEYS['bob'][0]}", {"resource_policy": ["gold"]}),
    ("POST", "groups", {"name": "g", "domain": "default", "resource_policy": {"a": 1}}),
    ("PATCH", "groups/default/cv", {"resource_policy": ["gpol"]}),
    ("POST", "users", {"username": "u", "email": "u@example.com", "resource_policy": {"a": 1}}),
    ("PATCH", "users/bob", {"resource_policy": ["upol"]}),
]


@pytest.mark.parametrize("method, path, body", NON_STRING_POLICY, ids=[f"{m} {p}" for m, p, _ in NON_STRING_POLICY])
def test_non_string_resource_policy_is_a_400_not_a_500(live, method, path, body):
    """Was a 500: tenancy.get_policy bound a dict to SQL (sqlite3.ProgrammingError: type 'dict' is not supported)."""
    r = requests.request(method, f"{live.base}{API}{path}", json=body, timeout=10,
                         auth=SignedAuth("root", f"127.0.0.1:{live.port}"))
    assert r.status_code == 400, r.text
    assert r.json()["field"] == "resource_policy"


@pytest.mark.parametrize("actor, user", [("root", {"a": 1}), ("alice", ["bob"])], ids=["root-dict", "alice-list"])
def test_non_string_keypair_owner_is_a_400_not_a_500(live, actor, user):
    """Was a 500 for any signed caller: service/keypairs.py post -> tenancy.get_user bound a dict/list to SQL."""
    r = requests.post(f"{live.base}{API}keypairs", json={"user": user}, timeout=10,
                      auth=SignedAuth(actor, f"127.0.0.1:{live.port}"))
    assert r.status_code == 400, r.text
    assert r.json()["field"] == "user"


BIG = 2**63


def _limit(body: dict) -> str:
    return next(k for k in body if k not in ("kind", "name"))

HUGE_LIMITS = [
    ("POST", "resource-policies", {"kind": "group", "name": "g2", "max_quota_size": BIG}),
    ("POST", "resource-policies", {"kind": "user", "name": "u2", "max_quota_size": "99999999999e"}),
    ("POST", "resource-policies", {"kind": "user", "name": "u3", "max_vfolder_count": BIG}),
    ("POST", "resource-policies", {"kind": "keypair", "name": "k2", "max_concurrent_sessions": BIG}),
    ("PATCH", "resource-policies/keypair/gold", {"max_session_lifetime": BIG}),
]


@pytest.mark.parametrize("method, path, body", HUGE_LIMITS, ids=[f"{m} {_limit(b)}" for m, _, b in HUGE_LIMITS])
def test_policy_limit_beyond_64_bits_is_a_400_not_a_500(live, method, path, body):
    """Was a 500 (and reachable with schema-valid input): OverflowError 'Python int too large to convert to
    SQLite INTEGER' at tenancy._flush."""
    r = requests.request(method, f"{live.base}{API}{path}", json=body, timeout=10,
                         auth=SignedAuth("root", f"127.0.0.1:{live.port}"))
    assert r.status_code == 400, r.text
    assert r.json()["field"] == _limit(body)
