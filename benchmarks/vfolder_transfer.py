"""Vfolder transfer: tus upload and download throughput against a plain file copy, and the server's memory.

Run with ``python -m benchmarks.vfolder_transfer [--quick]`` (or register it in benchmarks/__main__.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from .common import REPO, print_table, write_result

if str(REPO) not in sys.path:  # the harness lives in tests/, importable from the repo root
    sys.path.insert(0, str(REPO))

from backendai_hub import signing  # noqa: E402
from tests.integration.vfolder_harness import API, KEYS, make_template  # noqa: E402

DESCRIPTION = ("vfolders: tus upload (16 MiB PATCHes) and download MB/s vs shutil.copyfile on the same disk, "
               "tar of many small files, and the service's peak RSS while moving a large file")

MiB = 1 << 20
CHUNK = 16 * MiB


def _serve(template: str, workdir: str, conn) -> None:
    async def main():
        from tests.integration.vfolder_harness import Service

        svc = Service(Path(template), Path(workdir))
        svc.app.settings["log_function"] = lambda handler: None
        conn.send(svc.port)
        await asyncio.Event().wait()

    asyncio.run(main())


def _rss_peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


class Client:
    def __init__(self, port: int, actor: str = "bob"):  # bob's policy sets no quota
        self.port, self.actor = port, actor
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)

    def request(self, method: str, path: str, body=None, headers=None, content_type="application/json"):
        url = path if path.startswith("/") else API + path
        ak, sk = KEYS[self.actor]
        hdrs = signing.sign(method, url, host=f"127.0.0.1:{self.port}", date=datetime.now(timezone.utc),
                            content_type=content_type, version=signing.API_VERSION, access_key=ak, secret_key=sk)
        hdrs.update({"Content-Type": content_type, **(headers or {})})
        self.conn.request(method, url, body=body, headers=hdrs)
        resp = self.conn.getresponse()
        return resp

    def json(self, method, path, body=None):
        resp = self.request(method, path, json.dumps(body).encode() if body is not None else None)
        data = resp.read()
        if resp.status >= 300:
            raise RuntimeError(f"{method} {path}: {resp.status} {data[:200]!r}")
        return json.loads(data) if data else None

    def upload(self, folder: str, name: str, path: Path) -> None:
        size = path.stat().st_size
        resp = self.request("POST", f"vfolders/{folder}/uploads?path={name}", b"",
                            headers={"Tus-Resumable": "1.0.0", "Upload-Length": str(size)})
        body = resp.read()
        if resp.status != 201:
            raise RuntimeError(f"create upload: {resp.status} {body[:200]!r}")
        location = resp.headers["Location"]
        offset = 0
        with open(path, "rb") as f:
            while offset < size:
                data = f.read(CHUNK)
                resp = self.request("PATCH", location, data, content_type="application/offset+octet-stream",
                                    headers={"Tus-Resumable": "1.0.0", "Upload-Offset": str(offset)})
                resp.read()
                if resp.status != 204:
                    raise RuntimeError(f"PATCH: {resp.status}")
                offset = int(resp.headers["Upload-Offset"])

    def download(self, folder: str, name: str, dest: Path) -> None:
        resp = self.request("GET", f"vfolders/{folder}/download?path={name}")
        if resp.status != 200:
            raise RuntimeError(f"download: {resp.status}")
        with open(dest, "wb") as f:
            while True:
                data = resp.read(CHUNK)
                if not data:
                    break
                f.write(data)


def _mbps(nbytes: int, seconds: float) -> float:
    return nbytes / MiB / seconds


def run(*, quick: bool = False) -> dict:
    size = (64 if quick else 512) * MiB
    small = 200 if quick else 2000
    rounds = 1 if quick else 3
    tmp = Path(tempfile.mkdtemp(prefix="bah-bench-vf-"))
    try:
        template = make_template(Path(tempfile.mkdtemp(dir=tmp)))
        workdir = tmp / "svc"
        workdir.mkdir()
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_serve, args=(str(template), str(workdir), child), daemon=True)
        proc.start()
        if not parent.poll(60):
            raise RuntimeError("the service did not start within 60 s")
        port = parent.recv()
        try:
            src = tmp / "src.bin"
            with open(src, "wb") as f:
                for _ in range(size // MiB):
                    f.write(os.urandom(MiB))
            digest = hashlib.sha256(src.read_bytes()).hexdigest()
            client = Client(port)
            client.json("POST", "vfolders", {"name": "bench"})
            rss_before = _rss_peak_kib(proc.pid)
            rows: dict[str, dict] = {}
            samples: dict[str, list[float]] = {"copyfile": [], "upload": [], "download": []}
            for i in range(rounds):
                t = time.perf_counter()
                shutil.copyfile(src, tmp / f"copy{i}.bin")
                samples["copyfile"].append(_mbps(size, time.perf_counter() - t))
                t = time.perf_counter()
                client.upload("bench", f"up{i}.bin", src)
                samples["upload"].append(_mbps(size, time.perf_counter() - t))
                t = time.perf_counter()
                client.download("bench", f"up{i}.bin", tmp / f"down{i}.bin")
                samples["download"].append(_mbps(size, time.perf_counter() - t))
                assert hashlib.sha256((tmp / f"down{i}.bin").read_bytes()).hexdigest() == digest
                os.unlink(tmp / f"down{i}.bin")
                os.unlink(tmp / f"copy{i}.bin")
            rss_after = _rss_peak_kib(proc.pid)
            for name, values in samples.items():
                values.sort()
                rows[name] = {"n": len(values), "median": values[len(values) // 2], "min": values[0],
                              "max": values[-1]}
            print_table(f"vfolder transfer of {size // MiB} MiB ({rounds} rounds)", rows, unit="MiB/s",
                        columns=("n", "median", "min", "max"))
            # many small files as one tar stream
            client.json("POST", "vfolders", {"name": "many"})
            for i in range(small):
                p = tmp / "small"
                p.write_bytes(os.urandom(4096))
                client.upload("many", f"f{i:05d}", p)
            t = time.perf_counter()
            resp = client.request("GET", "vfolders/many/download?archive=tar")
            total = 0
            while True:
                data = resp.read(CHUNK)
                if not data:
                    break
                total += len(data)
            tar_s = time.perf_counter() - t
            print(f"tar of {small} x 4 KiB files: {tar_s:.3f} s ({small / tar_s:.0f} files/s, {total} bytes)")
            print(f"service peak RSS: {rss_before / 1024:.1f} MiB before, {rss_after / 1024:.1f} MiB after moving "
                  f"{rounds * 2 * size // MiB} MiB")
            return {"size_bytes": size, "rounds": rounds, "mbps": rows, "tar_small_files": small,
                    "tar_seconds": tar_s, "rss_peak_kib_before": rss_before, "rss_peak_kib_after": rss_after}
        finally:
            proc.terminate()
            proc.join(10)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    result = run(quick="--quick" in sys.argv)
    print("wrote", write_result("vfolder_transfer", result))
