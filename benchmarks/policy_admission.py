"""Decision time of the pure admission check, policy.admit, over keypair, group and domain levels."""

from __future__ import annotations

import time

from backendai_hub.policy import Level, Usage, admit, parse_slots

from .common import print_table, stats, time_calls, timer_overhead_ns

DESCRIPTION = "policy.admit decision time (keypair/group/domain, cpu/mem/cuda slots), microseconds"

N = 10_000
WARMUP = 1_000
ROUNDS = 10

# realistic limits: a keypair policy for one researcher, a project, a department-sized domain
KEYPAIR = Level("keypair", "gold", parse_slots("cpu=16,mem=64g,cuda.device=2,cuda.shares=2"), max_sessions=4)
GROUP = Level("group", "ml", parse_slots("cpu=64,mem=256g,cuda.device=8,cuda.shares=8"), max_sessions=20)
DOMAIN = Level("domain", "default", parse_slots("cpu=256,mem=1t,cuda.device=32,cuda.shares=32"))
KNOWN = ("cpu", "mem", "cuda.device", "cuda.shares", "cuda.device:1g.10gb-mig")

USAGE_KEYPAIR = Usage(parse_slots("cpu=4,mem=16g,cuda.device=1"), sessions=1)
USAGE_GROUP = Usage(parse_slots("cpu=40,mem=160g,cuda.device=5,cuda.shares=1.5"), sessions=9)
USAGE_DOMAIN = Usage(parse_slots("cpu=200,mem=800g,cuda.device=30,cuda.shares=12"), sessions=60)
LEVELS = [(KEYPAIR, USAGE_KEYPAIR), (GROUP, USAGE_GROUP), (DOMAIN, USAGE_DOMAIN)]

REQUEST = parse_slots("cpu=4,mem=16g,cuda.device=1", allow_zero=False)
REQUEST_FRACTIONAL = parse_slots("cpu=2,mem=8g,cuda.shares=0.5", allow_zero=False)

# (label, request, levels, known_slots, expected level that denies or None)
SCENARIOS = [
    ("allow: 3 levels checked", REQUEST, LEVELS, None, None),
    ("allow: + known_slots check", REQUEST, LEVELS, KNOWN, None),
    ("allow: fractional cuda.shares", REQUEST_FRACTIONAL, LEVELS, KNOWN, None),
    ("deny at keypair (cuda.device)", parse_slots("cpu=2,mem=4g,cuda.device=2"), LEVELS, KNOWN, "keypair"),
    ("deny at domain (cuda.device)",
     REQUEST, [(KEYPAIR, Usage()), (GROUP, Usage()), (DOMAIN, Usage(parse_slots("cuda.device=32")))],
     KNOWN, "domain"),
    ("deny: unknown slot", parse_slots("cpu=1,rocm.device=1"), LEVELS, KNOWN, None),
]


def run(*, quick: bool = False) -> dict:
    n = N // 10 if quick else N
    overhead = timer_overhead_ns()
    checked = []
    for label, request, levels, known, denier in SCENARIOS:
        decision = admit(request, levels, known)
        # a benchmark of the wrong path measures nothing: check each scenario decides as named
        if label.startswith("allow") != decision.allowed or (denier and decision.level != denier):
            raise AssertionError(f"{label}: unexpected decision {decision!r}")
        checked.append((label, (lambda r=request, lv=levels, k=known: admit(r, lv, k)), decision))
    # interleaved rounds, so drift on a shared machine lands on every scenario alike
    samples = {label: [] for label, _, _ in checked}
    bulk_ns = {label: 0 for label, _, _ in checked}
    per_round = max(1, n // ROUNDS)
    for _ in range(ROUNDS):
        for label, call, _ in checked:
            samples[label] += time_calls(call, per_round, warmup=WARMUP // ROUNDS)
            # cross-check without a timer around each call: one tight loop
            t0 = time.perf_counter_ns()
            for _ in range(per_round):
                call()
            bulk_ns[label] += time.perf_counter_ns() - t0
    rows, results = {}, {}
    for label, _, decision in checked:
        s = stats(samples[label], "us")
        s["bulk_mean"] = bulk_ns[label] / (per_round * ROUNDS) / 1000
        s["decisions_per_s"] = round(1e6 / s["bulk_mean"])
        s["reason"] = decision.reason
        rows[label] = results[label] = s
    print_table(f"policy.admit, {n} decisions per row (timer overhead {overhead:.0f} ns included)",
                rows, unit="us", columns=("n", "p50", "p95", "p99", "mean", "bulk_mean"))
    return {"params": {"n": n, "warmup": WARMUP, "rounds": ROUNDS, "levels": [lv.label for lv, _ in LEVELS],
                       "request": {k: str(v) for k, v in REQUEST.items()}},
            "timer_overhead_ns": overhead, "results": results}


if __name__ == "__main__":  # pragma: no cover
    run()
