"""A 1 GiB upload from Chromium through the Virtual folders sidebar against curl doing the same tus
upload through the hub proxy, in one run, interleaved.

Both sides take an upload grant from the session's server extension (``POST
<server>/backendai-hub/api/folders/<id>/uploads``) and send the bytes to the grant's tus URL at the
hub's public address (configurable-http-proxy -> the service), never through the session's server:
the browser with tus-js-client as the sidebar does (the file as four tus parts side by side, joined by
the service), and again with the sidebar's ``uploadParts`` setting at 1 (one PATCH: how the sidebar
uploaded before), curl with one streamed ``PATCH -T``.
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
from .sidebar_common import chromium, hub_with_session, lab_page, show_sidebar

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


def _curl_upload(hub, token: str, folder_id: str, path: Path, name: str, size: int,
                 listener_base: str | None = None) -> float:
    """curl's tus PATCH of ``path`` to the grant's URL, or, given the listener's base, to the same token
    route at the hub's public address (through the proxy) instead of the listener the grant names."""
    import requests

    t0 = time.perf_counter()
    r = requests.post(f"{hub.url}/user/demo/backendai-hub/api/folders/{folder_id}/uploads",
                      json={"path": name, "size": size}, headers={"Authorization": f"token {token}"}, timeout=60)
    assert r.status_code in (200, 201), r.text
    url = r.json()["url"]
    if listener_base:
        assert url.startswith(listener_base), (url, listener_base)
        url = f"{hub.url}/services/backendai/{url[len(listener_base):]}"
    url = url if url.startswith("http") else hub.url + url
    out = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PATCH", "-T", str(path),
                          "-H", "Tus-Resumable: 1.0.0", "-H", "Upload-Offset: 0",
                          "-H", "Content-Type: application/offset+octet-stream", "-H", "Expect:", url],
                         capture_output=True, text=True, timeout=1800)
    assert out.stdout.strip() == "204", (out.stdout, out.stderr)
    return time.perf_counter() - t0


PARTS = int(os.environ.get("BENCH_SIDEBAR_UPLOAD_PARTS", "4"))  # the sidebar's default uploadParts
BROWSER, BROWSER_ONE, CURL_PROXY, CURL_LISTENER = (
    f"Chromium (sidebar, {PARTS} parts)", "Chromium (sidebar, 1 request)", "curl (tus PATCH, hub proxy)",
    "curl (tus PATCH, listener)")
PLUGIN = "backendai-hub-labextension:plugin"


def _set_parts(page, parts: int) -> None:
    """The sidebar's ``uploadParts`` setting, through JupyterLab's settings API, then the page reloaded."""
    status = page.evaluate("""async ([plugin, parts]) => {
        const base = document.querySelector('#jupyter-config-data')
            ? JSON.parse(document.querySelector('#jupyter-config-data').textContent).baseUrl : '/';
        const xsrf = (document.cookie.match(/(?:^|; )_xsrf=([^;]*)/) || [])[1] || '';
        const r = await fetch(`${base}lab/api/settings/${plugin}`, {method: 'PUT',
            headers: {'Content-Type': 'application/json', 'X-XSRFToken': decodeURIComponent(xsrf)},
            body: JSON.stringify({raw: JSON.stringify({uploadParts: parts})})});
        return r.status; }""", [PLUGIN, parts])
    assert status == 204, status
    page.reload()
    show_sidebar(page)


def measure(size_mib: int = 1024, rounds: int = 3, listener: bool = False, split_cores: bool = False) -> dict:
    """With ``listener`` the service runs its public transfer listener, so the sidebar's grants (and the
    browser's bytes) go there, past the Node proxy; curl then measures both the proxy and the listener.
    With ``split_cores`` the clients (Chromium, curl) run on one half of the CPUs and the hub, its proxy
    and the service on the other, as a browser on a user's machine and a hub on a server would: on
    shared cores the browser's upload pipeline (about twice curl's CPU per byte) competes with the
    server for the same CPUs."""
    from tests.hubproc import free_port_block, service_api

    cpus = sorted(os.sched_getaffinity(0))
    if split_cores:
        assert len(cpus) >= 2, "--split-cores needs two CPUs or more"
        client_cpus, server_cpus = set(cpus[:len(cpus) // 2]), set(cpus[len(cpus) // 2:])
        os.sched_setaffinity(0, server_cpus)  # the hub and what it starts inherit it

    size = size_mib * MiB
    with tempfile.TemporaryDirectory(prefix="bench-sidebar-file-") as tmp:
        path = Path(tmp) / "payload.bin"
        digest = _write_file(path, size)
        lport = free_port_block(1) if listener else None
        base = f"http://127.0.0.1:{lport}/" if listener else None
        env = {"BENCH_SIDEBAR_LISTENER_PORT": str(lport)} if listener else {}
        with hub_with_session("bench-sidebar-upload-", extra_env=env) as (hub, tokens):
            if split_cores:
                os.sched_setaffinity(0, client_cpus)  # Chromium and curl start from here
            demo = tokens["demo"]
            r = service_api(hub, demo, "POST", "vfolders", json={"name": FOLDER})
            assert r.status_code == 201, r.text
            folder_id = r.json()["id"]
            sides = [BROWSER, BROWSER_ONE, CURL_PROXY] + ([CURL_LISTENER] if listener else [])
            times: dict[str, list[float]] = {side: [] for side in sides}
            with chromium() as browser:
                page = lab_page(browser, hub)
                for i in range(rounds):
                    order = sides if i % 2 == 0 else sides[::-1]
                    for side in order:
                        name = f"{sides.index(side)}-{i}.bin"
                        src = Path(tmp) / name  # the sidebar names the upload after the picked file
                        os.link(path, src)
                        if side in (BROWSER, BROWSER_ONE):
                            _set_parts(page, PARTS if side == BROWSER else 1)
                            times[side].append(_browser_upload(page, src, name))
                        else:
                            times[side].append(_curl_upload(hub, demo, folder_id, src, name, size,
                                                            base if side == CURL_PROXY else None))
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
    if split_cores:
        os.sched_setaffinity(0, set(cpus))
    speeds = {side: [size / MiB / t for t in ts] for side, ts in times.items()}
    return {"size_mib": size_mib, "rounds": rounds, "listener": listener, "split_cores": split_cores,
            "seconds": times, "mib_per_s": speeds}


def report(got: dict) -> dict:
    rows = {}
    for side, xs in got["mib_per_s"].items():
        s = sorted(xs)
        rows[side] = {"n": len(s), "p50": statistics.median(s), "p95": s[0], "p99": s[0], "mean": statistics.fmean(s)}
    where = "the browser to the transfer listener" if got["listener"] else "all through the hub proxy"
    if got.get("split_cores"):
        where += ", clients and server on separate cores"
    print_table(f"{got['size_mib']} MiB upload, {where} (MiB/s; p95/p99: the slowest round)", rows, unit="MiB/s")
    med = {side: statistics.median(xs) for side, xs in got["mib_per_s"].items()}
    ratios = {"Chromium / curl through the hub proxy (median MiB/s)": ratio(med[BROWSER], med[CURL_PROXY]),
              "Chromium with one request / curl through the hub proxy (before)": ratio(med[BROWSER_ONE],
                                                                                       med[CURL_PROXY]),
              f"Chromium, {PARTS} parts / 1 request": ratio(med[BROWSER], med[BROWSER_ONE])}
    if CURL_LISTENER in med:
        ratios["Chromium / curl to the listener"] = ratio(med[BROWSER], med[CURL_LISTENER])
    print_ratios(f"ratio (goal >= {GOAL})", ratios)
    return {**got, "stats": rows, "ratios": ratios, "goal_ratio": GOAL}


def run(*, quick: bool) -> dict:
    size = int(os.environ.get("BENCH_SIDEBAR_UPLOAD_MIB", "128" if quick else "1024"))
    listener = os.environ.get("BENCH_SIDEBAR_UPLOAD_LISTENER", "0") == "1"
    split = os.environ.get("BENCH_SIDEBAR_UPLOAD_SPLIT_CORES", "0") == "1"
    return report(measure(size, 1 if quick else 3, listener, split))


def main() -> None:
    ap = argparse.ArgumentParser(description=DESCRIPTION)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--listener", action="store_true",
                    help="run the service's public transfer listener (the sidebar's grants point there)")
    ap.add_argument("--split-cores", action="store_true",
                    help="Chromium and curl on one half of the CPUs, the hub, proxy and service on the other")
    args = ap.parse_args()
    write_result("sidebar_upload", report(measure(args.size_mib, args.rounds, args.listener, args.split_cores)))


if __name__ == "__main__":
    main()
