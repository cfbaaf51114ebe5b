"""ProxiedHTTPServer on a real socket: forwarding headers change remote_ip and protocol only when a
trusted proxy sent them, and only for that request."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import threading

import pytest
from tornado import web

from backendai_hub.forwarded import ProxiedHTTPServer

FORGED = {"X-Real-Ip": "203.0.113.9", "X-Forwarded-For": "203.0.113.8, 198.51.100.7", "X-Forwarded-Proto": "https"}


class Echo(web.RequestHandler):
    def get(self):
        self.write({"remote_ip": self.request.remote_ip, "protocol": self.request.protocol})


@pytest.fixture(scope="module")
def server():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started, loop_box = threading.Event(), {}

    def serve():
        async def main():
            loop_box["loop"], loop_box["stop"] = asyncio.get_running_loop(), asyncio.Event()
            srv = ProxiedHTTPServer(web.Application([(r"/", Echo)]), trusted_proxies=["127.0.0.1"])
            srv.listen(port, address="127.0.0.1")
            started.set()
            await loop_box["stop"].wait()
            srv.stop()

        asyncio.run(main())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(10)
    yield port
    loop_box["loop"].call_soon_threadsafe(loop_box["stop"].set)
    thread.join(10)


def get(conn: http.client.HTTPConnection, headers: dict | None = None) -> dict:
    conn.request("GET", "/", headers=headers or {})
    return json.loads(conn.getresponse().read())


def test_an_untrusted_peer_is_the_client_whatever_its_headers_say(server):
    conn = http.client.HTTPConnection("127.0.0.1", server, source_address=("127.0.0.2", 0), timeout=10)
    assert get(conn, FORGED) == {"remote_ip": "127.0.0.2", "protocol": "http"}


def test_a_trusted_proxy_names_the_client_for_that_request_only(server):
    conn = http.client.HTTPConnection("127.0.0.1", server, source_address=("127.0.0.1", 0), timeout=10)
    # the proxy's own entry (the rightmost) counts; X-Real-Ip and the client's own entries do not
    assert get(conn, FORGED) == {"remote_ip": "198.51.100.7", "protocol": "https"}
    # the next request on the same (kept-alive) connection is judged by its own headers
    assert get(conn) == {"remote_ip": "127.0.0.1", "protocol": "http"}


def test_xheaders_cannot_be_switched_back_on():
    with pytest.raises(ValueError, match="do not pass xheaders"):
        ProxiedHTTPServer(web.Application([]), xheaders=True)
