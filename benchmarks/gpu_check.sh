#!/usr/bin/env bash
# GPU smoke check (not part of CI): on a host with an NVIDIA GPU, its driver and the NVIDIA container
# toolkit, list the devices through the cuda plugin (NVML), run a container holding one GPU with the
# plugin's container options, and print `nvidia-smi -L` from inside it; then one holding none.
#
#   benchmarks/gpu_check.sh                      # IMAGE=backendai-hub/notebook:latest by default
#   IMAGE=ubuntu:22.04 PYTHON=python3 benchmarks/gpu_check.sh
#
# Exit status: 0 when the GPU session sees exactly its device and the GPU-less one sees none.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
export IMAGE=${IMAGE:-backendai-hub/notebook:latest}
command -v nvidia-smi >/dev/null && nvidia-smi -L || echo "(no nvidia-smi on the host)"
exec timeout "${TIMEOUT:-300}" "$PYTHON" - <<'EOF'
import json
import os
import sys
import time
from decimal import Decimal

import docker

from backendai_hub.accelerators.allocation import DeviceAllocator
from backendai_hub.accelerators.base import amounts
from backendai_hub.accelerators.cuda import CUDAPlugin

t0 = time.monotonic()
plugin = CUDAPlugin()
devices = plugin.list_devices()
print(f"cuda plugin: {len(devices)} device(s) in {time.monotonic() - t0:.2f} s; "
      f"{json.dumps(plugin.get_physical_info_summary())}")
for d in devices:
    print(f"  {d.device_id:6} {d.slot:28} {d.model:32} {d.memory / 2**30:7.1f} GiB  numa={d.numa_node}  {d.uuid}")
if not devices:
    sys.exit("no GPU found through NVML (driver missing, or no device visible)")
print("live:", json.dumps(plugin.collect_live_stats()))

# one device of the first slot offered, chosen as the hub would (no other session holds one here)
kinds = plugin.slot_types()
slot = sorted(kinds)[0]
allocation = DeviceAllocator(devices).allocate([], {slot: Decimal("1" if kinds[slot] == "count" else "0.5")})
print("allocation:", json.dumps(allocation))
t0 = time.monotonic()
opts = plugin.container_options(amounts(allocation["devices"]))
print(f"container options in {(time.monotonic() - t0) * 1000:.3f} ms:",
      json.dumps({"device_requests": opts.device_requests, "environment": opts.environment,
                  "mounts": opts.mounts, "host_config": opts.host_config}))

client = docker.from_env()
script = "echo NVIDIA_VISIBLE_DEVICES=$NVIDIA_VISIBLE_DEVICES; nvidia-smi -L"


def run(options, label):
    kwargs = {"environment": options.environment}
    if options.device_requests:
        kwargs["device_requests"] = [docker.types.DeviceRequest(**r) for r in options.device_requests]
    if options.mounts:
        kwargs["mounts"] = [docker.types.Mount(m["Target"], m["Source"], type=m["Type"].lower(),
                                               read_only=m.get("ReadOnly", False)) for m in options.mounts]
    kwargs.update(options.host_config)
    container = client.containers.create(os.environ["IMAGE"], ["sh", "-c", script], **kwargs)
    try:
        container.start()
        status = container.wait(timeout=120)["StatusCode"]
        out = container.logs(stdout=True, stderr=True).decode() + f"(exit {status})"
    except docker.errors.APIError as e:
        out = f"(could not start: {e.explanation})"
    finally:
        container.remove(force=True)
    print(f"--- {label}:\n{out.rstrip()}")
    return out


held = run(opts, "session holding one GPU")
none = run(plugin.container_options({}), "session holding none")
uuids = [d.uuid for d in devices if d.device_id in allocation["devices"][slot]]
ok = all(u in held for u in uuids) and sum(line.startswith(("GPU ", "  MIG ")) for line in held.splitlines()) >= 1 \
    and not any(line.startswith("GPU ") for line in none.splitlines())
print("OK" if ok else "UNEXPECTED: see above")
sys.exit(0 if ok else 1)
EOF
