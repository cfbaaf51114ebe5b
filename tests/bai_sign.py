"""Run under backend.ai-client's venv: print, as JSON, the requests the real client would send."""

# Usage: <.venv-bai>/bin/python tests/bai_sign.py < spec.json
#   spec: {"endpoint": URL, "access_key": AK, "secret_key": SK,
#          "requests": [{"method": M, "path": P, "params": {...}?, "json": ...?, "text": ...?,
#                        "files": [[filename, content, content_type], ...]?}, ...]}
#   out:  {"client_version": V, "api_version": V, "version_probe": {...},
#          "requests": [{"method", "path" (raw path?query of the request line), "headers"
#                        (all headers aiohttp would put on the wire, Host included),
#                        "signed_rel_url" (what the client passed to generate_signature)}, ...]}
# Nothing leaves the process: the client's aiohttp session is swapped for a recorder that builds
# aiohttp's own ClientRequest (so Host, Content-Type boundaries and URL quoting are the real ones)
# and then aborts the request.

from __future__ import annotations

import asyncio
import io
import json
import sys

import aiohttp
from aiohttp.client_reqrep import ClientRequest
from yarl import URL

import ai.backend.client.auth as bai_auth
import ai.backend.client.request as bai_request
from ai.backend.client import __version__ as client_version
from ai.backend.client.config import APIConfig
from ai.backend.client.request import AttachedFile, Request
from ai.backend.client.session import AsyncSession


class _Captured(Exception):
    pass


class Recorder:
    """Stands in for aiohttp.ClientSession: records what would be sent, sends nothing."""

    def __init__(self):
        self.sent: list[dict] = []
        self.probes: list[dict] = []

    def request(self, method, url, *, data=None, headers=None, **_ignored):
        req = ClientRequest(method, URL(str(url)), headers=headers, data=data,
                            loop=asyncio.get_running_loop())
        path = req.url.raw_path + ("?" + req.url.raw_query_string if req.url.raw_query_string else "")
        self.sent.append({"method": req.method, "path": path, "headers": dict(req.headers)})
        raise _Captured()

    def get(self, url, *, headers=None, **_ignored):
        # the unsigned version probe of _negotiate_api_version; failing it makes the client fall
        # back to its configured version, as it does when the server is unreachable
        self.probes.append({"method": "GET", "url": str(url), "headers": dict(headers or {})})
        raise aiohttp.ClientConnectionError("recorder: not sending")


async def main(spec: dict) -> dict:
    config = APIConfig(endpoint=spec["endpoint"], endpoint_type="api", access_key=spec["access_key"],
                       secret_key=spec["secret_key"])
    sess = AsyncSession(config=config)
    real_http, recorder = sess.aiohttp_session, Recorder()
    sess.aiohttp_session = recorder
    signed_rel_urls: list[str] = []
    original = bai_auth.generate_signature

    def spy(**kwargs):
        signed_rel_urls.append(kwargs["rel_url"])
        return original(**kwargs)

    bai_request.generate_signature = spy
    try:
        await sess.open()  # runs the version probe against the recorder
        for r in spec["requests"]:
            rqst = Request(r["method"], r["path"], params=r.get("params"))
            if "json" in r:
                rqst.set_json(r["json"])
            elif "text" in r:
                rqst.set_content(r["text"])
            elif "files" in r:
                rqst.attach_files([AttachedFile(name, io.BytesIO(content.encode()), ctype)
                                   for name, content, ctype in r["files"]])
            try:
                async with rqst.fetch():
                    pass
            except _Captured:
                pass
        api_version = f"v{sess.api_version[0]}.{sess.api_version[1]}"
    finally:
        bai_request.generate_signature = original
        sess.aiohttp_session = real_http
        await sess.close()
    for sent, rel in zip(recorder.sent, signed_rel_urls):
        sent["signed_rel_url"] = rel
    return {"client_version": client_version, "api_version": api_version,
            "version_probe": recorder.probes, "requests": recorder.sent}


if __name__ == "__main__":
    json.dump(asyncio.run(main(json.load(sys.stdin))), sys.stdout, indent=1)
