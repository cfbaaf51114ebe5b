"""The Virtual folders sidebar's first paint with 1 000 folders, measured in Chromium.

The folders are made through the real service (demo's own, no quota images); the page is JupyterLab
of demo's real session. The time is the browser's own performance measure
``bhub-sidebar:first-paint``: from the panel's fetch start (one request through the session's
server extension to the service) to the frame after the list is in the DOM. Each round reloads the
page (a cold panel). ``python -m benchmarks.sidebar_paint [--folders N] [--rounds N]``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import statistics

from .common import print_ratios, print_table, write_result
from .sidebar_common import chromium, hub_with_session, lab_page, show_sidebar

DESCRIPTION = ("Virtual folders sidebar: first paint with 1 000 folders (performance measure in Chromium, "
               "fetch start -> painted frame, real session and service); goal < 1 s")
GOAL_MS = 1000.0


def _make_folders(hub, token: str, n: int) -> None:
    from tests.hubproc import service_api

    def one(i: int) -> None:
        r = service_api(hub, token, "POST", "vfolders", json={"name": f"f{i:04d}"})
        assert r.status_code == 201, r.text

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(n)))


def _first_paint_ms(page) -> float:
    return page.evaluate("""() => {
        const m = performance.getEntriesByName('bhub-sidebar:first-paint', 'measure');
        return m.length ? m[m.length - 1].duration : -1;
    }""")


def measure(folders: int = 1000, rounds: int = 5) -> dict:
    with hub_with_session("bench-sidebar-paint-", max_folders=folders + 10) as (hub, tokens):
        _make_folders(hub, tokens["demo"], folders)
        with chromium() as browser:
            page = lab_page(browser, hub)
            rows = page.locator(".bhub-Folder").count()
            assert rows == folders, f"the sidebar shows {rows} folders, not {folders}"
            samples = []
            for _ in range(rounds):
                page.reload()
                show_sidebar(page)
                samples.append(_first_paint_ms(page))
            # what one fetch of the overview costs on its own, from the page (the same request)
            fetch = page.evaluate("""async () => {
                const xsrf = (document.cookie.match(/_xsrf=([^;]+)/) || [])[1] || '';
                const t = performance.now();
                const r = await fetch(location.pathname.split('/lab')[0] + '/backendai-hub/api/folders',
                                      {headers: {'X-XSRFToken': xsrf}});
                const body = await r.json();
                return [performance.now() - t, body.folders.length];
            }""")
    return {"first_paint_ms": samples, "fetch_ms": fetch[0], "fetched": fetch[1], "folders": folders}


def run(*, quick: bool) -> dict:
    got = measure(folders=1000, rounds=2 if quick else 5)
    s = sorted(got["first_paint_ms"])
    row = {"n": len(s), "p50": statistics.median(s), "p95": s[-1], "p99": s[-1], "mean": statistics.fmean(s)}
    print_table(f"sidebar first paint with {got['folders']} folders (ms, browser measure)", {"first paint": row},
                unit="ms")
    print(f"the overview request alone, from the page: {got['fetch_ms']:.0f} ms for {got['fetched']} folders")
    ratios = {"first paint p50 / 1 s goal": statistics.median(s) / GOAL_MS}
    print_ratios("ratio to the goal (goal < 1)", ratios)
    return {**got, "stats": {"first paint": row}, "ratios": ratios, "goal_ms": GOAL_MS}


def main() -> None:
    ap = argparse.ArgumentParser(description=DESCRIPTION)
    ap.add_argument("--folders", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    got = measure(args.folders, args.rounds)
    print(got)
    write_result("sidebar_paint", got)


if __name__ == "__main__":
    main()
