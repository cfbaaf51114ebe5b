"""``python -m benchmarks [NAME ...]``: run benchmarks, print a table each, write .state/bench/NAME.json."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

from .common import DEFAULT_OUT, write_result

# name -> module; each module has DESCRIPTION and run(*, quick: bool) -> dict (JSON-able)
BENCHMARKS = {
    "admission_scale": "benchmarks.admission_scale",
    "apps_ws": "benchmarks.apps_ws",
    "audit_overhead": "benchmarks.audit_overhead",
    "code_log": "benchmarks.code_log",
    "load_test": "benchmarks.load_test",
    "allocation": "benchmarks.allocation",
    "policy_admission": "benchmarks.policy_admission",
    "service_latency": "benchmarks.service_latency",
    "shell_ws": "benchmarks.shell_ws",
    "sidebar_paint": "benchmarks.sidebar_paint",
    "sidebar_upload": "benchmarks.sidebar_upload",
    "spawn": "benchmarks.spawn",
    "usage": "benchmarks.usage",
    "vfolder_transfer": "benchmarks.vfolder_transfer",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Run backendai-hub benchmarks; each prints a table and writes <out>/<name>.json.")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"benchmarks to run (default: all): {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true",
                        help="a tenth of the samples: a smoke run, not numbers to quote")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"where the JSON results go (default: {DEFAULT_OUT})")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)

    if args.list:
        for name, mod in BENCHMARKS.items():
            print(f"{name:20s} {importlib.import_module(mod).DESCRIPTION}")
        return 0
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)} (known: {', '.join(BENCHMARKS)})")

    failed = []
    for name in args.names or list(BENCHMARKS):
        module = importlib.import_module(BENCHMARKS[name])
        print(f"=== {name}: {module.DESCRIPTION}", flush=True)
        t0 = time.perf_counter()
        try:
            result = module.run(quick=args.quick)
        except Exception as e:  # report and go on with the others; the exit status says it failed
            print(f"!!! {name} failed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            failed.append(name)
            continue
        result["wall_s"] = round(time.perf_counter() - t0, 2)
        result["quick"] = args.quick
        path = write_result(name, result, args.out)
        print(f"\n({result['wall_s']} s; results in {path})\n", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
