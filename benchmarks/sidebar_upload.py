"""A 1 GiB upload from Chromium through the Virtual folders sidebar against curl doing the same tus
upload through the hub proxy, in one run, interleaved.

Both sides take an upload grant from the session's server extension (``POST
<server>/backendai-hub/api/folders/<id>/uploads``) and send the bytes to the grant's tus URL at the
hub's public address (configurable-http-proxy -> the service), never through the session's server:
the browser with tus-js-client as the sidebar does (one PATCH), curl with one streamed ``PATCH -T``.
The time runs from the file's pick (browser) or the grant request (curl) to the upload's end; the
sizes match. ``python -m benchmarks.sidebar_upload [--size-mib N] [--rounds N]``; through ``python
-m benchmarks`` the size is $BENCH_SIDEBAR_UPLOAD_MIB (default 1024; --quick: 128).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from .common import print_ratios, print_table, ratio, write_result
from .sidebar_common import chromium, hub_with_session, lab_page

DESCRIPTION = ("Virtual folders sidebar: 1 GiB upload from Chromium (tus-js-client, the sidebar's button) "
               "against curl's tus PATCH of the same file through the hub proxy, both with the sidebar's "
               "upload grant; MiB/s, goal browser >= 0.8x curl")
MiB = 1 << 20
FOLDER = "bench"
GOAL = 0.8


def _write_file(path: Path, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            block = os.urandom(min(left, 8 * MiB))
            h.update(block)
            f.write(block)
            left -= len(block)
    return h.hexdigest()


def _browser_upload(page, path: Path, name: str, timeout: float = 1800) -> float:
    row = page.locator(f".bhub-Folder[data-name='{FOLDER}']")
    if "bhub-mod-open" not in (row.get_attribute("class") or ""):
        row.locator(".bhub-Folder-head").click()
    with page.expect_file_chooser() as chooser:
        row.locator("button[data-action='upload-files']").click()
    t0 = time.perf_counter()
    chooser.value.set_files(str(path))
    up = page.locator(f".bhub-Upload[data-path='{name}']").last
    deadline = t0 + timeout
    while time.perf_counter() < deadline:
        state = up.get_attribute("data-state") if up.count() else None
        if state == "done":
            return time.perf_counter() - t0
        assert state != "failed", up.inner_text()
        time.sleep(0.02)
    raise AssertionError(f"the browser's upload did not end in {timeout}s")


def _curl_upload(hub, token: str, folder_id: str, path: Path, name: str, size: int) -> float:
    import requests

    t0 = time.perf_counter()
    r = requests.post(f"{hub.url}/user/demo/backendai-hub/api/folders/{folder_id}/uploads",
                      json={"path": name, "size": size}, headers={"Authorization": f"token {token}"}, timeout=60)
    assert r.status_code in (200, 201), r.text
    url = r.json()["url"]
    url = url if url.startswith("http") else hub.url + url
    out = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PATCH", "-T", str(path),
                          "-H", "Tus-Resumable: 1.0.0", "-H", "Upload-Offset: 0",
                          "-H", "Content-Type: application/offset+octet-stream", "-H", "Expect:", url],
                         capture_output=True, text=True, timeout=1800)
    assert out.stdout.strip() == "204", (out.stdout, out.stderr)
    return time.perf_counter() - t0


def measure(size_mib: int = 1024, rounds: int = 3) -> dict:
    from tests.hubproc import service_api

    size = size_mib * MiB
    with tempfile.TemporaryDirectory(prefix="bench-sidebar-file-") as tmp:
        path = Path(tmp) / "payload.bin"
        digest = _write_file(path, size)
        with hub_with_session("bench-sidebar-upload-") as (hub, tokens):
            demo = tokens["demo"]
            r = service_api(hub, demo, "POST", "vfolders", json={"name": FOLDER})
            assert r.status_code == 201, r.text
            folder_id = r.json()["id"]
            times: dict[str, list[float]] = {"Chromium (sidebar, tus-js-client)": [], "curl (tus PATCH)": []}
            with chromium() as browser:
                page = lab_page(browser, hub)
                for i in range(rounds):
                    order = ["browser", "curl"] if i % 2 == 0 else ["curl", "browser"]
                    for side in order:
                        name = f"{side}-{i}.bin"
                        src = Path(tmp) / name  # the sidebar names the upload after the picked file
                        os.link(path, src)
                        if side == "browser":
                            times["Chromium (sidebar, tus-js-client)"].append(_browser_upload(page, src, name))
                        else:
                            times["curl (tus PATCH)"].append(_curl_upload(hub, demo, folder_id, src, name, size))
                        got = service_api(hub, demo, "GET", f"vfolders/{FOLDER}/files", params={"path": ""}).json()
                        entry = next(e for e in got["items"] if e["name"] == name)
                        assert entry["size"] == size, entry
                        if i == 0:  # the bytes are right (once per side: hashing 1 GiB costs seconds)
                            dl = service_api(hub, demo, "GET", f"vfolders/{FOLDER}/download",
                                             params={"path": name}, timeout=600, stream=True)
                            h = hashlib.sha256()
                            for chunk in dl.iter_content(8 * MiB):
                                h.update(chunk)
                            assert h.hexdigest() == digest, f"{side}: the upload's SHA-256 differs"
                        service_api(hub, demo, "DELETE", f"vfolders/{FOLDER}/files", params={"path": name})
                        src.unlink()
    speeds = {side: [size / MiB / t for t in ts] for side, ts in times.items()}
    return {"size_mib": size_mib, "rounds": rounds, "seconds": times, "mib_per_s": speeds}


def run(*, quick: bool) -> dict:
    size = int(os.environ.get("BENCH_SIDEBAR_UPLOAD_MIB", "128" if quick else "1024"))
    got = measure(size, 1 if quick else 3)
    rows = {}
    for side, xs in got["mib_per_s"].items():
        s = sorted(xs)
        rows[side] = {"n": len(s), "p50": statistics.median(s), "p95": s[0], "p99": s[0], "mean": statistics.fmean(s)}
    print_table(f"{got['size_mib']} MiB upload through the hub proxy (MiB/s; p95/p99: the slowest round)", rows,
                unit="MiB/s")
    browser, curl = (statistics.median(xs) for xs in got["mib_per_s"].values())
    ratios = {"Chromium / curl (median MiB/s)": ratio(browser, curl)}
    print_ratios(f"ratio (goal >= {GOAL})", ratios)
    return {**got, "stats": rows, "ratios": ratios, "goal_ratio": GOAL}


def main() -> None:
    ap = argparse.ArgumentParser(description=DESCRIPTION)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    got = measure(args.size_mib, args.rounds)
    print(got)
    write_result("sidebar_upload", got)


if __name__ == "__main__":
    main()
