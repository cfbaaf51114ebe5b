"""REST service latency: a keypair-signed request against unauthenticated ones, same service, one run."""

from __future__ import annotations

import asyncio
import http.client
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from .common import REPO, print_ratios, print_table, ratio, stats, time_calls

if str(REPO) not in sys.path:  # the harness lives in tests/, importable from the repo root
    sys.path.insert(0, str(REPO))

from backendai_hub import signing  # noqa: E402
from tests.integration.service_harness import API, KEYS, PREFIX, make_template  # noqa: E402

DESCRIPTION = ("REST service: signed GET api/v1/me vs unauthenticated requests (service in its own "
               "process), plus signing/verify/DB micro-costs, milliseconds and microseconds")

N = 500          # timed requests per kind
ROUNDS = 10      # kinds interleaved in this many rounds, so drift lands on all alike
WARMUP = 50      # untimed requests per kind first
N_MICRO = 2000   # calls per micro-benchmark

ME = API + "me"
ACTOR = "root"   # a superadmin
WRONG_SECRET = "not-the-secret-not-the-secret-not-the-sec"
HUB_TOKEN = "bench-hub-token"
# benchmark-only routes (see _add_baselines)
NOAUTH_ME = "/bench/me-principal-handed-in"
NOAUTH_TOKEN_ME = "/bench/me-token-principal-handed-in"
NOOP = "/bench/noop"
NOAUTH_NOOP = "/bench/noop-principal-handed-in"


# -- the server, in a process of its own ------------------------------------------------------------

def _serve(template: str, workdir: str, conn, cpu: int | None) -> None:
    """Child process: the harness's Service on 127.0.0.1, access log off, until terminated."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})

    async def main():
        from tests.integration.service_harness import Service

        svc = Service(Path(template), Path(workdir))
        # tornado logs every 4xx at warning; without a handler that would print 1000 lines here
        svc.app.settings["log_function"] = lambda handler: None
        _add_baselines(svc.app)
        conn.send(svc.port)
        await asyncio.Event().wait()

    asyncio.run(main())


def _add_baselines(app) -> None:
    """Benchmark-only routes: the same handlers with the principal handed in (what authentication adds
    is the difference), a handler whose one transaction does nothing, and a hub token whose hub answer
    is already known (HubOAuth's own cache, without the hub)."""
    from sqlalchemy import text

    from backendai_hub.service.base import APIHandler
    from backendai_hub.service.me import MeHandler
    from backendai_hub.service.rules import SUPERADMIN, Principal

    root = Principal(username=ACTOR, role=SUPERADMIN, domain="default", via="keypair",
                     access_key=KEYS[ACTOR][0])
    token_root = Principal(username=ACTOR, role=SUPERADMIN, domain="default", via="token")

    class NoAuthMe(MeHandler):
        async def authenticate(self):
            return root

    class NoAuthTokenMe(MeHandler):  # a hub token's principal has no keypair: the handler does less
        async def authenticate(self):
            return token_root

    def one_query(s):
        s.execute(text("SELECT 1")).one()  # a transaction that reaches the database
        return {}

    class Noop(APIHandler):
        async def get(self):
            self.write_json(await self.run(one_query))

    class NoAuthNoop(Noop):
        async def authenticate(self):
            return root

    app.add_handlers(r".*", [(NOAUTH_ME, NoAuthMe), (NOAUTH_TOKEN_ME, NoAuthTokenMe), (NOOP, Noop),
                             (NOAUTH_NOOP, NoAuthNoop)])
    hub_auth = app.settings["hub_auth"]
    model = {"kind": "user", "name": ACTOR, "scopes": ["custom:backendai:admin"]}

    async def user_for_token(token, **_kw):
        return model if token == HUB_TOKEN else None

    hub_auth.user_for_token = user_for_token


class ServerProcess:
    def __init__(self, template: Path, workdir: Path, cpu: int | None):
        ctx = multiprocessing.get_context("spawn")  # a clean interpreter, not a fork of this one
        parent, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(str(template), str(workdir), child, cpu),
                                daemon=True)
        self.proc.start()
        if not parent.poll(60):
            self.stop()
            raise RuntimeError("the service process did not report its port within 60 s")
        self.port = parent.recv()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.join(10)
        if self.proc.is_alive():  # pragma: no cover - terminate is enough for tornado
            self.proc.kill()
            self.proc.join()


# -- the client ----------------------------------------------------------------------------------------

class Client:
    """One keep-alive HTTP/1.1 connection; signing happens before the clock starts."""

    def __init__(self, port: int):
        self.port = port
        self.host = f"127.0.0.1:{port}"  # what http.client sends as Host, so what is signed
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self._last_date: datetime | None = None

    def signed_headers(self, path: str, secret: str | None = None) -> dict[str, str]:
        ak, sk = KEYS[ACTOR]
        date = datetime.now(timezone.utc)
        if self._last_date is not None and date <= self._last_date:
            date = self._last_date + timedelta(microseconds=1)  # never the same signature twice
        self._last_date = date
        return signing.sign("GET", path, host=self.host, access_key=ak, secret_key=secret or sk,
                            date=date, content_type="application/json")

    def get(self, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        self.conn.request("GET", path, headers=headers)
        resp = self.conn.getresponse()
        return resp.status, resp.read()

    def close(self) -> None:
        self.conn.close()


# kind -> (path, authenticated with: None | "secret" | "wrong" | "token", expected status)
KINDS = {
    "unauth GET / (handshake, 200)": (PREFIX, None, 200),
    "unauth GET api/v1/me (401)": (ME, None, 401),
    "me handler, principal handed in (200)": (NOAUTH_ME, None, 200),
    "signed GET api/v1/me (200)": (ME, "secret", 200),
    "me handler, token principal handed in": (NOAUTH_TOKEN_ME, None, 200),
    "hub-token GET api/v1/me (200)": (ME, "token", 200),
    "signed, wrong secret (401)": (ME, "wrong", 401),
    "SELECT 1 transaction, principal handed in": (NOAUTH_NOOP, None, 200),
    "signed SELECT 1 transaction (200)": (NOOP, "secret", 200),
}


def _measure_http(client: Client, n: int, warmup: int) -> dict[str, list[int]]:
    plain = {"Content-Type": "application/json"}
    token = {**plain, "Authorization": f"token {HUB_TOKEN}"}

    def headers_for(path, how):
        if how is None:
            return plain
        if how == "token":
            return token
        return client.signed_headers(path, WRONG_SECRET if how == "wrong" else None)

    def once(kind: str) -> int:
        path, how, expect = KINDS[kind]
        hdrs = headers_for(path, how)
        t0 = time.perf_counter_ns()
        status, body = client.get(path, hdrs)
        dt = time.perf_counter_ns() - t0
        if status != expect:
            raise RuntimeError(f"{kind}: expected {expect}, got {status}: {body[:300]!r}")
        return dt

    for kind in KINDS:
        for _ in range(warmup):
            once(kind)
    samples: dict[str, list[int]] = {kind: [] for kind in KINDS}
    per_round = max(1, n // ROUNDS)
    for _ in range(ROUNDS):
        for kind in KINDS:
            samples[kind] += [once(kind) for _ in range(per_round)]
    return samples


# -- micro-benchmarks: where the signed request's extra time goes --------------------------------------

def _measure_micro(template: Path, workdir: Path, n: int) -> tuple[dict[str, list[int]], dict[str, int]]:
    from backendai_hub import tenancy as T
    from backendai_hub.db import Database
    from backendai_hub.models import KeyPair
    from backendai_hub.policy import effective_limits, slots_to_json
    from backendai_hub.admission import levels_for

    shutil.copy(template / "template.sqlite", workdir / "micro.sqlite")
    shutil.copy(template / "key", workdir / "micro.key")
    (workdir / "micro.key").chmod(0o600)
    db = Database(url=f"sqlite:///{workdir / 'micro.sqlite'}", crypt_key_file=str(workdir / "micro.key"))
    ak, sk = KEYS[ACTOR]
    host = "127.0.0.1:8081"
    secrets = {ak: sk}
    client = Client.__new__(Client)  # only for its unique-date signing
    client.host, client._last_date = host, None

    def fresh_headers():
        h = client.signed_headers(ME)
        h["Host"] = host
        return h

    with db.session() as s:
        token = s.get(KeyPair, ak).secret_key_encrypted

    out: dict[str, list[int]] = {}
    out["signing.sign (client side, untimed above)"] = time_calls(
        lambda: signing.sign("GET", ME, host=host, access_key=ak, secret_key=sk), n, warmup=200)

    fixed = fresh_headers()  # no replay cache: the same headers verify again and again
    out["signing.verify (secret from a dict)"] = time_calls(
        lambda: signing.verify("GET", ME, fixed, lookup_secret=secrets.get), n, warmup=200)

    cache = signing.ReplayCache()
    batch = [fresh_headers() for _ in range(n + 200)]
    it = iter(batch)
    out["signing.verify + ReplayCache"] = time_calls(
        lambda: signing.verify("GET", ME, next(it), lookup_secret=secrets.get, replay_cache=cache),
        n, warmup=200)

    out["SecretBox.decrypt (Fernet)"] = time_calls(lambda: db.secrets.decrypt(token), n, warmup=200)

    def lookup_only():
        with db.session() as s:
            s.get(KeyPair, ak)

    out["DB: transaction + KeyPair lookup"] = time_calls(lookup_only, n, warmup=200)

    from backendai_hub.service import principals as P

    def auth_work():
        # a cache miss: what APIHandler._from_signature does in its own transaction
        with db.session(readonly=True) as s:
            found = []

            def lookup(key):
                facts = P.keypair_facts(s, key)
                if facts is None:
                    return None
                found.append((facts, db.secrets.decrypt(facts.secret_token)))
                return found[0][1]

            signed = signing.verify("GET", ME, fixed, lookup_secret=lookup)
            P.keypair_principal(found[0][0], signed.access_key)

    out["cache miss: auth transaction (1 stmt+decrypt+verify)"] = time_calls(auth_work, n, warmup=200)

    def me_body(s):
        # what MeHandler.get does inside its transaction
        u = T.users.get(s, ACTOR)
        d = T.users.to_dict(u)
        kp = T.keypairs.get(s, ak)
        levels = [levels_for(kp, g) for g in u.groups]
        d["keypair_policy"] = T.policies.to_dict(kp.resource_policy)
        d["effective_limits"] = {g.name: slots_to_json(effective_limits(lv))
                                 for g, lv in zip(u.groups, levels)}
        json.dumps(d)

    def me_work():
        with db.session(readonly=True) as s:
            me_body(s)

    def me_confirmed():
        # a cache hit: the handler's one transaction confirms the cached principal first (APIHandler.run)
        with db.session(readonly=True) as s:
            P.keypair_principal(P.keypair_facts(s, ak), ak)
            me_body(s)

    out["me handler transaction"] = time_calls(me_work, n, warmup=200)
    out["cache hit: me transaction + confirmation"] = time_calls(me_confirmed, n, warmup=200)

    # SQL statements each transaction sends through a cursor (BEGIN IMMEDIATE and SELECTs; the
    # COMMIT goes through the DB-API's commit() and is not counted)
    from sqlalchemy import event

    statements: dict[str, int] = {}
    for label, fn in (("DB: transaction + KeyPair lookup", lookup_only),
                      ("cache miss: auth transaction (1 stmt+decrypt+verify)", auth_work),
                      ("me handler transaction", me_work),
                      ("cache hit: me transaction + confirmation", me_confirmed)):
        count = [0]

        def tally(*_args, count=count):
            count[0] += 1

        event.listen(db.engine, "before_cursor_execute", tally)
        fn()
        event.remove(db.engine, "before_cursor_execute", tally)
        statements[label] = count[0]

    async def hops():
        loop = asyncio.get_running_loop()
        samples = []
        for i in range(n + 200):
            t0 = time.perf_counter_ns()
            await loop.run_in_executor(None, lambda: None)
            if i >= 200:
                samples.append(time.perf_counter_ns() - t0)
        return samples

    out["executor round trip (no-op)"] = asyncio.run(hops())
    db.dispose()
    return out, statements


# -- the run -------------------------------------------------------------------------------------------

def _pin() -> tuple[int | None, set[int] | None]:
    """On two or more CPUs: the server gets one, the client the others (returned to restore)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return None, None
    if len(cpus) < 2:
        return None, None
    before = set(cpus)
    os.sched_setaffinity(0, set(cpus[1:]))
    return cpus[0], before


def run(*, quick: bool = False) -> dict:
    n = N // 10 if quick else N
    warmup = WARMUP // 5 if quick else WARMUP
    n_micro = N_MICRO // 10 if quick else N_MICRO
    with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp:
        tmp = Path(tmp)
        (tmp / "template").mkdir()
        (tmp / "server").mkdir()
        template = make_template(tmp / "template")
        server_cpu, affinity = _pin()
        try:
            server = ServerProcess(template, tmp / "server", server_cpu)
            try:
                client = Client(server.port)
                try:
                    http_samples = _measure_http(client, n, warmup)
                finally:
                    client.close()
            finally:
                server.stop()
        finally:
            if affinity:
                os.sched_setaffinity(0, affinity)
        micro_samples, statements = _measure_micro(template, tmp, n_micro)

    http_stats = {k: stats(v, "ms") for k, v in http_samples.items()}
    micro_stats = {k: stats(v, "us") for k, v in micro_samples.items()}
    for label, count in statements.items():
        micro_stats[label]["sql_statements"] = count
    signed = http_stats["signed GET api/v1/me (200)"]
    ver = http_stats["unauth GET / (handshake, 200)"]
    me401 = http_stats["unauth GET api/v1/me (401)"]
    wrong = http_stats["signed, wrong secret (401)"]
    handed = http_stats["me handler, principal handed in (200)"]
    token = http_stats["hub-token GET api/v1/me (200)"]
    token_handed = http_stats["me handler, token principal handed in"]
    noop = http_stats["signed SELECT 1 transaction (200)"]
    noop_handed = http_stats["SELECT 1 transaction, principal handed in"]
    ratios = {
        "signed me / same handler without auth, p50": ratio(signed["p50"], handed["p50"]),
        "signed me / same handler without auth, p99": ratio(signed["p99"], handed["p99"]),
        "hub-token me / same handler without auth, p50": ratio(token["p50"], token_handed["p50"]),
        "signed SELECT 1 / same without auth, p50": ratio(noop["p50"], noop_handed["p50"]),
        "signed SELECT 1 / same without auth, p99": ratio(noop["p99"], noop_handed["p99"]),
        "signed me / unauth handshake, p50": ratio(signed["p50"], ver["p50"]),
        "signed me / unauth handshake, p99": ratio(signed["p99"], ver["p99"]),
        "signed me / unauth me (401), p50": ratio(signed["p50"], me401["p50"]),
        "signed me / unauth me (401), p99": ratio(signed["p99"], me401["p99"]),
        "wrong-secret 401 / unauth 401, p50": ratio(wrong["p50"], me401["p50"]),
    }

    pinning = (f"server pinned to CPU {server_cpu}, client to the rest" if server_cpu is not None
               else "no CPU pinning (one CPU)")
    print_table(f"HTTP round trip, {n} sequential requests per kind, one keep-alive connection "
                f"({pinning})", http_stats, unit="ms")
    print_ratios("Ratios (signed / unauthenticated)", ratios)
    print_table(f"Where signed time goes: micro-costs, {n_micro} calls each (in the client process)",
                micro_stats, unit="us",
                extra={k: {"SQL stmts": str(v)} for k, v in statements.items()})
    return {
        "params": {"n": n, "rounds": ROUNDS, "warmup_per_kind": warmup, "n_micro": n_micro,
                   "actor": ACTOR, "server": "harness Service in a spawned process", "pinning": pinning,
                   "client": "http.client keep-alive; signing done before each timed request"},
        "http": http_stats,
        "ratios": ratios,
        "micro": micro_stats,
    }


if __name__ == "__main__":  # pragma: no cover
    run()
