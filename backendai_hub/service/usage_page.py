"""The usage page at ``/services/backendai/usage``: charts rendered server-side (inline SVG, no script)
with a period picker. Admins see GPU-hours per group, core-hours per domain and the top users of their
reach; a user sees their own usage. Browsers sign in through the hub (OAuth)."""

from __future__ import annotations

import html
from urllib.parse import urlencode

from tornado.httputil import url_concat

from ..errors import TenancyError, Unauthorized
from ..usage import plots
from ..usage import query as UQ
from . import charts
from .base import APIHandler
from .rules import session_scope

PERIODS = (("24h", "last 24 hours"), ("7d", "last 7 days"), ("30d", "last 30 days"), ("3m", "last 3 months"))
RENDER_TIMEOUT = 60.0
# no script at all; the charts' own <style> and attributes are the only inline styles
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'self'"


def _login_url(handler) -> str:
    """The hub's OAuth login, coming back here (as HubOAuthenticated.get_login_url does it)."""
    auth = handler.settings["hub_auth"]
    params, verifier = {}, None
    if getattr(auth, "pkce_enabled", False):
        verifier, challenge, method = auth.generate_pkce_code_challenge()
        params.update(code_challenge=challenge, code_challenge_method=method)
    params["state"] = auth.set_state_cookie(handler, next_url=handler.request.uri, code_verifier=verifier)
    return url_concat(auth.login_url, params)


def _table(answer: dict, limit: int = 10, caption: str | None = None) -> str:
    by = answer["by"]
    rows = "".join(
        f"<tr><th scope='row'>{html.escape(UQ.label(t, by))}</th><td>{t['sessions']}</td>"
        f"<td>{t['allocated']['gpu_hours']:,.2f}</td><td>{t['used']['gpu_hours']:,.2f}</td>"
        f"<td>{t['allocated']['cpu_core_hours']:,.2f}</td><td>{t['used']['cpu_core_hours']:,.2f}</td>"
        f"<td>{t['allocated']['mem_gib_hours']:,.1f}</td><td>{t['used']['mem_peak_bytes'] / 2**30:,.2f}</td></tr>"
        for t in answer["totals"][:limit]) or "<tr><td colspan='8'>no usage in this period</td></tr>"
    caption = caption or f"Top {by}s"
    return (f"<table><caption>{html.escape(caption)}, {html.escape(answer['start'][:10])} to "
            f"{html.escape(answer['end'][:10])}</caption><thead><tr><th scope='col'>{html.escape(by)}</th>"
            "<th scope='col'>sessions</th><th scope='col'>GPU-hours allocated</th><th scope='col'>GPU-hours busy</th>"
            "<th scope='col'>core-hours allocated</th><th scope='col'>core-hours used</th>"
            "<th scope='col'>GiB-hours allocated</th><th scope='col'>peak memory (GiB)</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>")


def _svg(data: bytes) -> str:
    text = data.decode()
    return text[text.index("<svg"):]  # inline: without the XML prologue and doctype


STYLE = """
body{font-family:system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#1b3a5c;color:#fff;padding:.8rem 1.5rem}header h1{margin:0;font-size:1.4rem}
main{padding:1rem 1.5rem;max-width:1200px}form{margin:.5rem 0 1rem;display:flex;gap:1rem;align-items:end}
label{display:flex;flex-direction:column;font-size:.9rem}select,button{font-size:1rem;padding:.3rem .5rem}
section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:1rem;margin-bottom:1rem}
section svg{max-width:100%;height:auto}table{border-collapse:collapse;width:100%;font-size:.95rem}
th,td{border-bottom:1px solid #e5e5e5;padding:.35rem .6rem;text-align:right}
th[scope=row],thead th:first-child{text-align:left}caption{text-align:left;font-weight:600;padding:.4rem 0}
.note{color:#555;font-size:.9rem}
"""


class UsagePageHandler(APIHandler):
    audited = False

    async def prepare(self):
        try:
            await super().prepare()
        except Unauthorized:
            if self.request.headers.get("Authorization"):
                raise
            self.redirect(_login_url(self))  # a browser: sign in through the hub, then come back

    def write_error(self, status_code: int, **kwargs):
        exc = kwargs.get("exc_info", (None, None))[1]
        if isinstance(exc, TenancyError) and status_code < 500:
            self.set_status(status_code)
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.finish(self._page("Usage", f"<p role='alert'>{html.escape(exc.message)}</p>"))
            return
        super().write_error(status_code, **kwargs)

    def _page(self, title: str, body: str) -> str:
        return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                f"<meta name='viewport' content='width=device-width,initial-scale=1'><style>{STYLE}</style></head>"
                f"<body><header><h1>{html.escape(title)}</h1></header><main>{body}</main></body></html>")

    def _picker(self, period: str, bucket: str) -> str:
        opts = "".join(f"<option value='{v}'{' selected' if v == period else ''}>{t}</option>" for v, t in PERIODS)
        bopts = "".join(f"<option value='{b}'{' selected' if b == bucket else ''}>{b}</option>" for b in UQ.BUCKETS)
        return (f"<form method='get' aria-label='period'><label for='period'>Period<select id='period' name='period'>"
                f"{opts}</select></label><label for='bucket'>Per<select id='bucket' name='bucket'>{bopts}</select>"
                "</label><button type='submit'>Show</button></form>")

    async def get(self):
        period = self.get_query_argument("period", "30d")
        bucket = self.get_query_argument("bucket", "day")
        p, scope = self.principal, session_scope(self.principal)
        base = {"period": period, "bucket": bucket}
        UQ.check_chartable(UQ.parse_query(base))  # a bad period or bucket: 400 naming it, before any work

        def answers(s):
            if not p.is_admin:
                return [UQ.usage(s, scope, UQ.parse_query({**base, "by": "user"}))]
            return [UQ.usage(s, scope, UQ.parse_query({**base, "by": by})) for by in ("group", "domain", "user")]

        got = await self.run(answers, readonly=True)

        def render() -> list[bytes]:
            if not p.is_admin:
                return [plots.series_chart(got[0], ("gpu_hours", "cpu_core_hours"), fmt="svg",
                                           title=f"Your usage ({p.username})")]
            return [plots.series_chart(got[0], ("gpu_hours",), fmt="svg", title="GPU-hours per group"),
                    plots.series_chart(got[1], ("cpu_core_hours",), fmt="svg", title="Core-hours per domain"),
                    plots.top_chart(got[2], "gpu_hours", fmt="svg", title="Top users by GPU-hours"),
                    plots.top_chart(got[2], "cpu_core_hours", fmt="svg", title="Top users by core-hours")]

        drawn = await charts.POOL.render(render, timeout=RENDER_TIMEOUT)
        reach = ("every domain" if p.is_superadmin else "domain " + ", ".join(sorted(p.admin_domains))
                 if p.is_admin else "your own sessions")
        csv = f"api/v1/usage?{urlencode({**base, 'by': 'user' if not p.is_admin else 'group'})}"
        sections = "".join(f"<section aria-label='chart {n + 1}'>{_svg(c)}</section>" for n, c in enumerate(drawn))
        body = (f"<p class='note'>Signed in as <strong>{html.escape(p.username)}</strong>: usage of {html.escape(reach)}. "
                f"Times are UTC; allocated amounts count from start to stop. "
                f"<a href='{html.escape(csv)}'>The same as JSON</a>.</p>{self._picker(period, bucket)}{sections}"
                f"<section>{_table(got[-1], caption=None if p.is_admin else 'Your usage')}</section>")
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Content-Security-Policy", CSP)
        self.finish(self._page("Usage", body))


ROUTES = [(r"usage", UsagePageHandler)]
