"""Vfolder transfers: 1 GiB tus upload and download through the hub proxy, the transfer listener and direct, against dd.

``python -m benchmarks vfolder_transfer`` runs everything; ``python -m benchmarks.vfolder_transfer
[--quick] [--size-mib N] [--rounds N] [--memory-gib N] [--before REV]`` picks the sizes (``--memory-gib 0``
skips the memory part; through ``python -m benchmarks`` the environment variable BENCH_VFOLDER_MEMORY_GIB
does) and a git revision to measure side by side (BENCH_VFOLDER_BEFORE).
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
import time
from datetime import datetime, timezone
from pathlib import Path

from .common import REPO, print_ratios, print_table, ratio, write_result
from .vfolder_bench_hub import BenchHub, RSSSampler, cpu_seconds

if str(REPO) not in sys.path:  # the harness lives in tests/, importable from the repo root
    sys.path.insert(0, str(REPO))

from backendai_hub import signing  # noqa: E402
from tests.integration.vfolder_harness import API, KEYS, make_template  # noqa: E402

DESCRIPTION = ("vfolders: 1 GiB tus upload and download (curl) through the hub proxy, through the service's "
               "public transfer listener (request-upload's URL) and direct to the service, as a ratio to dd "
               "conv=fdatasync on the storage filesystem; service RSS growth during a 10 GiB upload and download")

MiB = 1 << 20
GiB = 1 << 30
ACTOR = "bob"  # his policy sets no quota
CHP = REPO / "node_modules" / ".bin" / "configurable-http-proxy"


# -- the client: curl, with the signature computed here -------------------------------------------------

class Curl:
    """Signed requests to one port (the proxy's or the service's own) of ``hub``; bodies move through curl."""

    def __init__(self, port: int, hub: BenchHub):
        self.port, self.hub = port, hub

    def headers(self, method: str, url: str, content_type: str = "application/json") -> dict:
        ak, sk = KEYS[ACTOR]
        h = signing.sign(method, url, host=f"127.0.0.1:{self.port}", date=datetime.now(timezone.utc),
                         content_type=content_type, version=signing.API_VERSION, access_key=ak, secret_key=sk)
        return {**h, "Content-Type": content_type}

    def json(self, method: str, path: str, body=None):
        url = path if path.startswith("/") else API + path
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


class TokenCurl(Curl):
    """What the backend.ai client does: request-upload / request-download at the hub's public address
    (signed, through the proxy), then the bytes to the URL it answers (the transfer listener when the
    service has one) with only the ``?token=``."""

    def _grant(self, what: str, name: str, size: int | None = None) -> str:
        body = {"path": name, **({"size": size} if size is not None else {})}
        got = self.json("POST", f"/services/backendai/folders/bench/request-{what}", body)
        return f"{got['url']}?token={got['token']}"

    def _curl_url(self, method: str, url: str, extra: dict, args: list[str]) -> dict:
        cmd = ["curl", "-sS", "-X", method, "-H", "Expect:", "-w", "%{http_code} %{time_total}"]
        for k, v in extra.items():
            cmd += ["-H", f"{k}: {v}"]
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = subprocess.run([*cmd, *args, url], check=True, capture_output=True, text=True)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        return {"out": out, "cpu": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)}

    def upload(self, folder: str, name: str, src: Path) -> dict:
        url = self._grant("upload", name, src.stat().st_size)
        r = self._curl_url("PATCH", url, {"Tus-Resumable": "1.0.0", "Upload-Offset": "0",
                                          "Content-Type": "application/offset+octet-stream"},
                           ["-T", str(src), "-o", "/dev/null"])
        code, seconds = r["out"].stdout.split()
        if code != "204":
            raise RuntimeError(f"PATCH {url.split('?')[0]}: {code}")
        return {"seconds": float(seconds), "curl_cpu": r["cpu"]}

    def download(self, folder: str, name: str) -> dict:
        r = self._curl_url("GET", self._grant("download", name), {}, ["-o", "/dev/null"])
        code, seconds = r["out"].stdout.split()
        if code != "200":
            raise RuntimeError(f"download: {code}")
        return {"seconds": float(seconds), "curl_cpu": r["cpu"]}

    def download_sha256(self, folder: str, name: str) -> str:
        h = hashlib.sha256()
        with subprocess.Popen(["curl", "-sS", "--fail", self._grant("download", name)], stdout=subprocess.PIPE) as p:
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


CHECKED = ("proxy", "listener", "before: proxy")  # paths whose bytes are checked by SHA-256 in round 1


def measure_throughput(clients: dict[str, Curl], tmp: Path, size: int, rounds: int) -> dict:
    src = tmp / "src.bin"
    digest = random_file(src, size)
    mib = size / MiB
    storage = next(iter(clients.values())).hub.storage
    samples: dict[str, list[float]] = {"dd conv=fdatasync": []}
    cpu: dict[str, dict[str, list[float]]] = {}
    kinds = ("upload", "download", "cached download")
    for via in clients:
        for kind in kinds:
            samples[f"{kind} via {via}"] = []
    checked: list[str] = []
    try:
        for i in range(rounds):
            os.sync()
            samples["dd conv=fdatasync"].append(dd(storage / "dd.bin", size // MiB))
            order = list(clients) if i % 2 == 0 else list(reversed(clients))
            for via in order:
                client, name = clients[via], f"r{i}-{via.replace(':', '').replace(' ', '-')}.bin"
                hub = client.hub
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
                if i == 0 and via in CHECKED:  # the bytes arrived, and come back, unchanged
                    if client.download_sha256("bench", name) != digest:
                        raise RuntimeError(f"the download via {via} does not match the source")
                    if file_sha256(next(hub.storage.glob(f"*/*/{name}"))) != digest:
                        raise RuntimeError(f"the file uploaded via {via} does not match the source")
                    checked.append(via)
                client.json("DELETE", f"vfolders/bench/files?path={name}")
    finally:
        src.unlink(missing_ok=True)
    rows = {label: _row(v) for label, v in samples.items()}
    dd_median = rows["dd conv=fdatasync"]["median"]
    ratios = {label: ratio(rows[label]["median"], dd_median) for label in rows if label != "dd conv=fdatasync"}
    pairs = [(a, b) for a, b in [("proxy", "direct"), ("listener", "direct"), ("listener", "proxy"),
                                 ("direct", "before: direct"), ("listener", "before: proxy"),
                                 ("proxy", "before: proxy")] if a in clients and b in clients]
    for a, b in pairs:
        for kind in kinds:
            ratios[f"{kind}: {a} / {b}"] = ratio(rows[f"{kind} via {a}"]["median"], rows[f"{kind} via {b}"]["median"])
    cpu_per_gib = {label: {who: statistics.median(v) * GiB / size for who, v in c.items()}
                   for label, c in cpu.items()}
    print_table(f"{size // MiB} MiB transfers, {rounds} rounds (curl; downloads to /dev/null, from the disk "
                "or, cached, from the page cache)", rows,
                unit="MiB/s", columns=("n", "median", "min", "max"))
    print_ratios("median / median of dd conv=fdatasync (goals: >= 0.80 direct, >= 0.60 at the hub's public "
                 "address: the listener, or the proxy without one)",
                 {k: v for k, v in ratios.items() if " / " not in k})
    if pairs:
        print_ratios("one path / another (medians)", {k: v for k, v in ratios.items() if " / " in k})
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


def export_revision(rev: str, into: Path) -> Path:
    """The tree of git revision ``rev`` of this checkout in ``into`` (with this checkout's node_modules)."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    (into / "node_modules").symlink_to(REPO / "node_modules")
    return into


def start_hub(tmp: Path, name: str, *, repo: Path = REPO, listener: bool = False) -> BenchHub:
    """A hub with a tenancy and a storage host of its own, and bob's folder ``bench``."""
    template = make_template(Path(tempfile.mkdtemp(dir=tmp)))
    storage = tmp / f"vfolders-{name}"
    storage.mkdir()
    hub = BenchHub(tmp / f"hub-{name}", template, storage, repo=repo, listener=listener)
    hub.start()
    print(f"{name}: hub at {hub.url} (proxy pid {hub.proxy_pid}), service pid {hub.service_pid} on port "
          f"{hub.service_port}" + (f", transfer listener on {hub.listener_port}" if listener else "")
          + f", storage {storage}", flush=True)
    Curl(hub.port, hub).json("POST", "vfolders", {"name": "bench"})
    return hub


def run(*, quick: bool = False, size_mib: int | None = None, rounds: int | None = None,
        memory_gib: int | None = None, direct: bool = True, before: str | None = None) -> dict:
    if shutil.which("curl") is None:
        raise RuntimeError("curl is missing: the benchmark's client is curl")
    if not CHP.exists():
        raise RuntimeError("configurable-http-proxy is missing: run `make node` (npm ci) first")
    size = (size_mib or (256 if quick else 1024)) * MiB
    rounds = rounds or (1 if quick else 3)
    if memory_gib is None:
        memory_gib = int(os.environ.get("BENCH_VFOLDER_MEMORY_GIB", "1" if quick else "10"))
    before = before if before is not None else os.environ.get("BENCH_VFOLDER_BEFORE") or None
    tmp = Path(tempfile.mkdtemp(prefix="bah-bench-vf-"))  # on the same filesystem as the storage host
    hubs: list[BenchHub] = []
    try:
        hub = start_hub(tmp, "after", listener=True)
        hubs.append(hub)
        clients: dict[str, Curl] = {"proxy": Curl(hub.port, hub), "listener": TokenCurl(hub.port, hub)}
        if direct:
            clients["direct"] = Curl(hub.service_port, hub)
        result = {"client": "curl " + subprocess.run(["curl", "--version"], capture_output=True,
                                                      text=True, check=True).stdout.split()[1],
                  "load_average_before": os.getloadavg()}
        if before:
            old = start_hub(tmp, "before", repo=export_revision(before, tmp / "before-tree"))
            hubs.append(old)
            clients["before: proxy"] = Curl(old.port, old)
            if direct:
                clients["before: direct"] = Curl(old.service_port, old)
            result["before"] = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", before],
                                              capture_output=True, text=True, check=True).stdout.strip()
        result["throughput"] = measure_throughput(clients, tmp, size, rounds)
        result["load_average_after"] = os.getloadavg()
        print("load average before/after: " + " / ".join(
            ", ".join(f"{x:.2f}" for x in result[k]) for k in ("load_average_before", "load_average_after")))
        if memory_gib > 0:
            result["memory"] = measure_memory(hub, clients["proxy"], tmp, memory_gib * GiB)
        return result
    finally:
        for h in hubs:
            h.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.vfolder_transfer", description=DESCRIPTION)
    parser.add_argument("--quick", action="store_true", help="256 MiB, 1 round, 1 GiB for memory")
    parser.add_argument("--size-mib", type=int, help="size of the timed transfers (default 1024)")
    parser.add_argument("--rounds", type=int, help="rounds of the timed transfers (default 3)")
    parser.add_argument("--memory-gib", type=int,
                        help="size of the memory transfers, 0 skips them (default 10, or $BENCH_VFOLDER_MEMORY_GIB)")
    parser.add_argument("--no-direct", action="store_true", help="not direct to the service's own port")
    parser.add_argument("--before", metavar="REV", help="also measure git revision REV (its proxy and direct "
                        "paths, a hub of its own), interleaved: before and after in one run "
                        "(default: $BENCH_VFOLDER_BEFORE)")
    args = parser.parse_args()
    t0 = time.perf_counter()
    result = run(quick=args.quick, size_mib=args.size_mib, rounds=args.rounds, memory_gib=args.memory_gib,
                 direct=not args.no_direct, before=args.before)
    result["wall_s"], result["quick"] = round(time.perf_counter() - t0, 2), args.quick
    print("wrote", write_result("vfolder_transfer", result))
