"""Vfolder transfer through the hub proxy: 1 GiB tus upload and download against dd, and the service's memory.

``python -m benchmarks vfolder_transfer`` runs everything; ``python -m benchmarks.vfolder_transfer
[--quick] [--size-mib N] [--rounds N] [--memory-gib N]`` picks the sizes (``--memory-gib 0`` skips the
memory part; through ``python -m benchmarks`` the environment variable BENCH_VFOLDER_MEMORY_GIB does).
How it measures: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from .common import REPO, print_ratios, print_table, ratio, write_result

if str(REPO) not in sys.path:  # the harness lives in tests/, importable from the repo root
    sys.path.insert(0, str(REPO))

from backendai_hub import signing  # noqa: E402
from tests.hubproc import free_port_block, wait_for_hub  # noqa: E402
from tests.integration.vfolder_harness import API, KEYS, make_template  # noqa: E402

DESCRIPTION = ("vfolders: 1 GiB tus upload and download (curl) through the hub proxy and direct to the "
               "service, as a ratio to dd conv=fdatasync on the storage filesystem; service RSS growth "
               "during a 10 GiB upload and download")

MiB = 1 << 20
GiB = 1 << 30
ACTOR = "bob"  # his policy sets no quota
CHP = REPO / "node_modules" / ".bin" / "configurable-http-proxy"


# -- processes ------------------------------------------------------------------------------------------

def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (its threads included)."""
    f = _stat(pid)
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def children(pid: int) -> list[tuple[int, str]]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int(_stat(int(d.name))[1]) == pid:
                    out.append((int(d.name), (d / "cmdline").read_bytes().replace(b"\0", b" ").decode()))
            except (OSError, IndexError, ValueError):
                continue
    return out


class RSSSampler:
    """The service's VmRSS every 20 ms, and VmHWM (reset at the start where the kernel allows)."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self.baseline = status_kib(pid, "VmRSS")
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self.hwm_reset = True
        except OSError:
            self.hwm_reset = False
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, status_kib(self.pid, "VmRSS"))
            self._stop.wait(0.02)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        hwm = status_kib(self.pid, "VmHWM") if self.hwm_reset else 0
        self.result = {"baseline_kib": self.baseline, "peak_sampled_kib": self.peak,
                       "vmhwm_kib": hwm if self.hwm_reset else None,
                       "growth_kib": max(self.peak, hwm) - self.baseline}


class BenchHub:
    """JupyterHub + configurable-http-proxy + our service (benchmarks/vfolder_hub_config.py)."""

    def __init__(self, state: Path, template: Path, storage: Path):
        self.state, self.storage = state, storage
        self.port = free_port_block(4)
        self.url = f"http://127.0.0.1:{self.port}"  # the proxy's public port
        self.service_port = self.port + 3
        self.log = state / "hub.log"
        self.env = {**os.environ, "BENCH_VF_STATE": str(state), "BENCH_VF_PORT": str(self.port),
                    "BENCH_VF_DB": f"sqlite:///{template / 'template.sqlite'}",
                    "BENCH_VF_KEY": str(template / "key"), "BENCH_VF_STORAGE": str(storage)}
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 90) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [str(Path(sys.executable).with_name("jupyterhub")), "-f",
                 str(REPO / "benchmarks" / "vfolder_hub_config.py")],
                cwd=self.state, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_hub(self.url, self.proc, self.log, timeout, what="benchmark hub")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # the service answers through the proxy
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", API + "openapi.json")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.3)
        else:
            raise RuntimeError(f"the service did not answer through the proxy:\n{self.log.read_text()[-3000:]}")
        kids = children(self.proc.pid)
        self.service_pid = next(p for p, cmd in kids if "backendai_hub.service" in cmd)
        self.proxy_pid = next(p for p, cmd in kids if "configurable-http-proxy" in cmd)

    def stop(self) -> None:
        from tests.hubproc import stop_group

        stop_group(self.proc, 30)


# -- the client: curl, with the signature computed here -------------------------------------------------

class Curl:
    """Signed requests to one port (the proxy's or the service's own); bodies move through curl."""

    def __init__(self, port: int):
        self.port = port

    def headers(self, method: str, url: str, content_type: str = "application/json") -> dict:
        ak, sk = KEYS[ACTOR]
        h = signing.sign(method, url, host=f"127.0.0.1:{self.port}", date=datetime.now(timezone.utc),
                         content_type=content_type, version=signing.API_VERSION, access_key=ak, secret_key=sk)
        return {**h, "Content-Type": content_type}

    def json(self, method: str, path: str, body=None):
        url = API + path
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        conn.request(method, url, json.dumps(body) if body is not None else None, self.headers(method, url))
        resp = conn.getresponse()
        data = resp.read()
        if resp.status >= 300:
            raise RuntimeError(f"{method} {path}: {resp.status} {data[:300]!r}")
        return json.loads(data) if data else None

    def _curl(self, method: str, url: str, extra: dict, args: list[str], content_type: str, **run) -> dict:
        cmd = ["curl", "-sS", "-X", method, "-H", "Expect:", "-w", "%{http_code} %{time_total}"]
        for k, v in {**self.headers(method, url, content_type), **extra}.items():
            cmd += ["-H", f"{k}: {v}"]
        cmd += [*args, f"http://127.0.0.1:{self.port}{url}"]
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = subprocess.run(cmd, check=True, **run)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        return {"out": out, "cpu": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)}

    def upload(self, folder: str, name: str, src: Path) -> dict:
        """tus: create, then one PATCH with the whole file; the PATCH is what is timed."""
        size = src.stat().st_size
        url = API + f"vfolders/{folder}/uploads?path={name}"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        conn.request("POST", url, b"", {**self.headers("POST", url), "Tus-Resumable": "1.0.0",
                                        "Upload-Length": str(size)})
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 201:
            raise RuntimeError(f"create upload: {resp.status} {body[:300]!r}")
        r = self._curl("PATCH", resp.headers["Location"], {"Tus-Resumable": "1.0.0", "Upload-Offset": "0"},
                       ["-T", str(src), "-o", "/dev/null"], "application/offset+octet-stream",
                       capture_output=True, text=True)
        code, seconds = r["out"].stdout.split()
        if code != "204":
            raise RuntimeError(f"PATCH: {code}")
        return {"seconds": float(seconds), "curl_cpu": r["cpu"]}

    def download(self, folder: str, name: str) -> dict:
        r = self._curl("GET", API + f"vfolders/{folder}/download?path={name}", {}, ["-o", "/dev/null"],
                       "application/json", capture_output=True, text=True)
        code, seconds = r["out"].stdout.split()
        if code != "200":
            raise RuntimeError(f"download: {code}")
        return {"seconds": float(seconds), "curl_cpu": r["cpu"]}

    def download_sha256(self, folder: str, name: str) -> str:
        url = API + f"vfolders/{folder}/download?path={name}"
        cmd = ["curl", "-sS", "--fail"]
        for k, v in self.headers("GET", url).items():
            cmd += ["-H", f"{k}: {v}"]
        h = hashlib.sha256()
        with subprocess.Popen([*cmd, f"http://127.0.0.1:{self.port}{url}"], stdout=subprocess.PIPE) as p:
            while data := p.stdout.read(8 * MiB):
                h.update(data)
        if p.returncode != 0:
            raise RuntimeError(f"download for the check: curl exited with {p.returncode}")
        return h.hexdigest()


# -- what is measured -----------------------------------------------------------------------------------

def random_file(path: Path, size: int) -> str:
    """``size`` pseudo-random bytes (AES-CTR keystream: GB/s, unlike os.urandom); its SHA-256."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    enc = Cipher(algorithms.AES(os.urandom(32)), modes.CTR(os.urandom(16))).encryptor()
    zeros, h = bytes(8 * MiB), hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            data = enc.update(zeros[:min(left, len(zeros))])
            h.update(data)
            f.write(data)
            left -= len(data)
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while data := f.read(8 * MiB):
            h.update(data)
    return h.hexdigest()


def evict(path: Path) -> None:
    """Drop a (written back) file's pages from the page cache: a download then reads the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def dd(target: Path, mib: int) -> float:
    """MiB/s of ``dd if=/dev/zero of=target bs=1M count=mib conv=fdatasync`` (what it reports)."""
    out = subprocess.run(["dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={mib}", "conv=fdatasync"],
                         capture_output=True, text=True, check=True, env={**os.environ, "LC_ALL": "C"})
    target.unlink()
    m = re.search(r"^(\d+) bytes .* copied, ([\d.]+) s", out.stderr, re.M)
    return int(m.group(1)) / MiB / float(m.group(2))


def _row(values: list[float]) -> dict:
    return {"n": len(values), "median": statistics.median(values), "min": min(values), "max": max(values)}


def measure_throughput(hub: BenchHub, clients: dict[str, Curl], tmp: Path, size: int, rounds: int) -> dict:
    src = tmp / "src.bin"
    digest = random_file(src, size)
    mib = size / MiB
    samples: dict[str, list[float]] = {"dd conv=fdatasync": []}
    cpu: dict[str, dict[str, list[float]]] = {}
    kinds = ("upload", "download", "cached download")
    for via in clients:
        for kind in kinds:
            samples[f"{kind} via {via}"] = []
    checked = False
    try:
        for i in range(rounds):
            os.sync()
            samples["dd conv=fdatasync"].append(dd(hub.storage / "dd.bin", size // MiB))
            order = list(clients) if i % 2 == 0 else list(reversed(clients))
            for via in order:
                client, name = clients[via], f"r{i}-{via}.bin"
                for kind in kinds:
                    os.sync()  # every transfer starts without others' dirty pages being written back
                    if kind == "download":  # from the disk; the cached one right after finds it in memory
                        evict(next(hub.storage.glob(f"*/*/{name}")))
                    before = {"service": cpu_seconds(hub.service_pid), "proxy": cpu_seconds(hub.proxy_pid)}
                    r = client.upload("bench", name, src) if kind == "upload" else client.download("bench", name)
                    label = f"{kind} via {via}"
                    samples[label].append(mib / r["seconds"])
                    c = cpu.setdefault(label, {"service": [], "proxy": [], "curl": []})
                    c["service"].append(cpu_seconds(hub.service_pid) - before["service"])
                    c["proxy"].append(cpu_seconds(hub.proxy_pid) - before["proxy"])
                    c["curl"].append(r["curl_cpu"])
                if not checked and via == "proxy":  # the bytes arrived, and come back, unchanged
                    if clients[via].download_sha256("bench", name) != digest:
                        raise RuntimeError("the download through the proxy does not match the source")
                    stored = next(hub.storage.glob(f"*/*/{name}"))
                    if file_sha256(stored) != digest:
                        raise RuntimeError("the uploaded file does not match the source")
                    checked = True
                clients[via].json("DELETE", f"vfolders/bench/files?path={name}")
    finally:
        src.unlink(missing_ok=True)
    rows = {label: _row(v) for label, v in samples.items()}
    dd_median = rows["dd conv=fdatasync"]["median"]
    ratios = {label: ratio(rows[label]["median"], dd_median) for label in rows if label != "dd conv=fdatasync"}
    if "direct" in clients:
        for kind in kinds:
            ratios[f"{kind}: proxy / direct"] = ratio(rows[f"{kind} via proxy"]["median"],
                                                      rows[f"{kind} via direct"]["median"])
    cpu_per_gib = {label: {who: statistics.median(v) * GiB / size for who, v in c.items()}
                   for label, c in cpu.items()}
    print_table(f"{size // MiB} MiB transfers, {rounds} rounds (curl; downloads to /dev/null, from the disk "
                "or, cached, from the page cache)", rows,
                unit="MiB/s", columns=("n", "median", "min", "max"))
    print_ratios("median / median of dd conv=fdatasync (goal >= 0.60 through the proxy)",
                 {k: v for k, v in ratios.items() if ":" not in k})
    if "direct" in clients:
        print_ratios("through the proxy / direct to the service", {k: v for k, v in ratios.items() if ":" in k})
    print_table("CPU seconds per GiB moved (median), by process", cpu_per_gib, unit="s",
                columns=("service", "proxy", "curl"))
    return {"size_bytes": size, "rounds": rounds, "sha256_checked": checked, "mib_per_s": rows,
            "ratios": ratios, "cpu_s_per_gib": cpu_per_gib}


def measure_memory(hub: BenchHub, client: Curl, tmp: Path, size: int) -> dict:
    """Peak RSS of the service while ``size`` bytes go up and then down through the proxy."""
    src = tmp / "sparse.bin"
    with open(src, "wb") as f:  # reads as zeros, takes no disk: the client's side costs nothing
        f.truncate(size)
    out: dict = {"size_bytes": size}
    try:
        for kind in ("upload", "download"):
            os.sync()
            with RSSSampler(hub.service_pid) as s:
                r = client.upload("bench", "big.bin", src) if kind == "upload" else client.download("bench", "big.bin")
            out[kind] = {**s.result, "mib_per_s": size / MiB / r["seconds"]}
    finally:
        src.unlink(missing_ok=True)
        try:
            client.json("DELETE", "vfolders/bench/files?path=big.bin")
        except RuntimeError:
            pass
    rows = {kind: {"baseline": out[kind]["baseline_kib"] / 1024, "peak": max(out[kind]["peak_sampled_kib"],
                                                                              out[kind]["vmhwm_kib"] or 0) / 1024,
                   "growth": out[kind]["growth_kib"] / 1024, "MiB/s": out[kind]["mib_per_s"]}
            for kind in ("upload", "download")}
    print_table(f"service RSS during a {size // GiB} GiB transfer through the proxy (goal: growth < 64 MiB)",
                rows, unit="MiB", columns=("baseline", "peak", "growth", "MiB/s"))
    return out


def run(*, quick: bool = False, size_mib: int | None = None, rounds: int | None = None,
        memory_gib: int | None = None, direct: bool = True) -> dict:
    if shutil.which("curl") is None:
        raise RuntimeError("curl is missing: the benchmark's client is curl")
    if not CHP.exists():
        raise RuntimeError("configurable-http-proxy is missing: run `make node` (npm ci) first")
    size = (size_mib or (256 if quick else 1024)) * MiB
    rounds = rounds or (1 if quick else 3)
    if memory_gib is None:
        memory_gib = int(os.environ.get("BENCH_VFOLDER_MEMORY_GIB", "1" if quick else "10"))
    tmp = Path(tempfile.mkdtemp(prefix="bah-bench-vf-"))  # on the same filesystem as the storage host
    hub = None
    try:
        template = make_template(Path(tempfile.mkdtemp(dir=tmp)))
        storage = tmp / "vfolders"
        storage.mkdir()
        hub = BenchHub(tmp / "hub", template, storage)
        hub.start()
        print(f"hub at {hub.url} (proxy pid {hub.proxy_pid}), service pid {hub.service_pid} on port "
              f"{hub.service_port}, storage {storage}", flush=True)
        clients = {"proxy": Curl(hub.port)}
        if direct:
            clients["direct"] = Curl(hub.service_port)
        clients["proxy"].json("POST", "vfolders", {"name": "bench"})
        result = {"client": "curl " + subprocess.run(["curl", "--version"], capture_output=True,
                                                      text=True, check=True).stdout.split()[1]}
        result["throughput"] = measure_throughput(hub, clients, tmp, size, rounds)
        if memory_gib > 0:
            result["memory"] = measure_memory(hub, clients["proxy"], tmp, memory_gib * GiB)
        return result
    finally:
        if hub is not None:
            hub.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.vfolder_transfer", description=DESCRIPTION)
    parser.add_argument("--quick", action="store_true", help="256 MiB, 1 round, 1 GiB for memory")
    parser.add_argument("--size-mib", type=int, help="size of the timed transfers (default 1024)")
    parser.add_argument("--rounds", type=int, help="rounds of the timed transfers (default 3)")
    parser.add_argument("--memory-gib", type=int,
                        help="size of the memory transfers, 0 skips them (default 10, or $BENCH_VFOLDER_MEMORY_GIB)")
    parser.add_argument("--no-direct", action="store_true", help="only through the proxy")
    args = parser.parse_args()
    t0 = time.perf_counter()
    result = run(quick=args.quick, size_mib=args.size_mib, rounds=args.rounds, memory_gib=args.memory_gib,
                 direct=not args.no_direct)
    result["wall_s"], result["quick"] = round(time.perf_counter() - t0, 2), args.quick
    print("wrote", write_result("vfolder_transfer", result))
