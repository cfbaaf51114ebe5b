"""The public transfer listener: the token routes of the storage proxy on an address of their own, past the hub's proxy."""

from __future__ import annotations

import json
import ssl
from collections import ChainMap
from urllib.parse import urlsplit

from tornado import web
from tornado.httpserver import HTTPServer
from traitlets import HasTraits, List, TraitError, Unicode, validate

from ..errors import Forbidden
from ..forwarded import LOOPBACK_PROXIES, ProxiedHTTPServer
from ..vfolders import uploads
from .storage_proxy import TUS_PATH, CompatTusDownloadHandler, CompatTusUploadHandler

# Backend.AI hands its clients the storage proxy's own address for the bytes of an upload or a
# download (request-upload / request-download answer it with a short-lived token), so they never
# pass through the manager. Here the same two routes, and only those, can listen on an address of
# their own: the bytes then skip configurable-http-proxy (Node), which costs as much CPU per byte as
# the service itself. The token is the only credential these routes take (no cookie, no signature).

# what a browser's tus-js-client sends and reads (CORS): the tus request headers, Range for downloads
ALLOW_HEADERS = ("Tus-Resumable, Upload-Offset, Upload-Length, Upload-Metadata, Upload-Defer-Length, "
                 "Upload-Concat, Content-Type, Range, X-HTTP-Method-Override, X-Requested-With")
EXPOSE_HEADERS = ("Upload-Offset, Upload-Length, Location, Tus-Resumable, Tus-Version, Tus-Extension, "
                  "Tus-Max-Size, Content-Range, Content-Length, Content-Disposition, Accept-Ranges, "
                  "X-Request-ID")
ALLOW_METHODS = {"upload": "HEAD, PATCH, DELETE, OPTIONS", "download": "GET, OPTIONS"}
PREFLIGHT_MAX_AGE = 600


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL, as a browser's Origin header spells it (default ports dropped)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def hub_origin(config) -> str | None:
    """The origin of the hub's public URL in a hub config (``JupyterHub.public_url``, else its
    ``bind_url`` unless that binds every address): what the listener lets browsers call it from."""
    hub = config["JupyterHub"] if "JupyterHub" in config else {}
    for key in ("public_url", "bind_url"):
        url = hub.get(key) if hasattr(hub, "get") else None
        if not url:
            continue
        try:
            origin = origin_of(str(url))
        except ValueError:
            continue
        if urlsplit(origin).hostname not in ("0.0.0.0", "::", ""):
            return origin
    return None


class TransferListenerTraits(HasTraits):
    """Settings of the public transfer listener (mixed into ``BackendAIService``)."""

    transfer_bind_url = Unicode(
        "", help="""Where the public transfer listener listens, ``http://ADDRESS:PORT`` (``https://`` with
        ``transfer_ssl_cert`` and ``transfer_ssl_key``). It serves only the token-authenticated transfer
        routes (``folders/_/tus/upload`` and ``folders/_/tus/download``: tus uploads and downloads
        that ``request-upload`` / ``request-download`` or an upload grant handed out), so their bytes
        skip the hub's proxy, as Backend.AI's storage proxy does. Empty (the default): no listener,
        transfers go through the hub's proxy.""",
    ).tag(config=True)

    transfer_public_url = Unicode(
        "", help="""The URL clients reach the transfer listener at (a load balancer or TLS terminator in
        front of it, say ``https://files.example.com/``); its path is where the listener serves the
        routes (``<path>folders/_/tus/upload``). ``request-upload`` and ``request-download`` answer
        URLs under it. Default: ``transfer_bind_url`` with a path of ``/``, unless that binds every
        address (0.0.0.0, ::), which is no address a client can use.""",
    ).tag(config=True)

    transfer_ssl_cert = Unicode(
        "", help="PEM certificate (chain) of the transfer listener, for an ``https://`` ``transfer_bind_url``.",
    ).tag(config=True)

    transfer_ssl_key = Unicode(
        "", help="PEM private key of ``transfer_ssl_cert``.",
    ).tag(config=True)

    transfer_allowed_origins = List(
        Unicode(), help="""Origins (``https://hub.example.com``) whose pages may call the transfer listener
        from a browser (CORS): their preflights are answered and their responses readable; any other
        origin gets no ``Access-Control-Allow-Origin``. Credentials (cookies) are never allowed: the
        token in the URL is the credential. ``hub_service(url, config=c)`` fills in the origin of
        ``JupyterHub.public_url`` (else ``JupyterHub.bind_url``) unless this is set.""",
    ).tag(config=True)

    @validate("transfer_bind_url", "transfer_public_url")
    def _check_url(self, proposal):
        value, name = proposal["value"].strip(), proposal["trait"].name
        if not value:
            return ""
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TraitError(f"BackendAIService.{name}: {value!r} is not an http:// or https:// URL")
        try:
            parts.port
        except ValueError:
            raise TraitError(f"BackendAIService.{name}: {value!r} has a bad port") from None
        if name == "transfer_bind_url" and parts.path not in ("", "/"):
            raise TraitError(f"BackendAIService.{name}: {value!r}: a bind URL has no path "
                             "(the path is transfer_public_url's)")
        if parts.query or parts.fragment:
            raise TraitError(f"BackendAIService.{name}: {value!r} may have no query or fragment")
        return value

    @validate("transfer_allowed_origins")
    def _check_origins(self, proposal):
        out = []
        for entry in proposal["value"]:
            try:
                origin = origin_of(entry)
            except ValueError:
                raise TraitError(f"BackendAIService.transfer_allowed_origins: {entry!r} is not an origin "
                                 "(http(s)://host[:port])") from None
            if urlsplit(entry).path not in ("", "/"):
                raise TraitError(f"BackendAIService.transfer_allowed_origins: {entry!r}: an origin has no path")
            out.append(origin)
        return out

    def transfer_listener_settings(self) -> tuple[str, str, ssl.SSLContext | None] | None:
        """(bind URL, public URL ending in '/', TLS context) of the listener, or None when it is off;
        a contradiction in the settings is a TraitError naming them."""
        if not self.transfer_bind_url:
            if self.transfer_public_url:
                raise TraitError("BackendAIService.transfer_public_url is set without transfer_bind_url")
            return None
        bind = urlsplit(self.transfer_bind_url)
        tls = bind.scheme == "https"
        if tls != bool(self.transfer_ssl_cert) or tls != bool(self.transfer_ssl_key):
            raise TraitError("BackendAIService.transfer_bind_url: https:// needs transfer_ssl_cert and "
                             "transfer_ssl_key, and http:// takes neither")
        public = self.transfer_public_url
        if not public:
            if bind.hostname in ("0.0.0.0", "::"):
                raise TraitError(f"BackendAIService.transfer_public_url: set it, the listener binds every "
                                 f"address ({self.transfer_bind_url}), which no client can connect to")
            public = f"{bind.scheme}://{bind.netloc}/"
        if not urlsplit(public).path.endswith("/"):
            public += "/"
        context = None
        if tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            try:
                context.load_cert_chain(self.transfer_ssl_cert, self.transfer_ssl_key)
            except (OSError, ssl.SSLError) as e:
                raise TraitError(f"BackendAIService.transfer_ssl_cert/transfer_ssl_key: cannot load them: {e}") \
                    from None
        return self.transfer_bind_url, public, context


# -- the handlers -------------------------------------------------------------------------------------


class _CORS:
    """CORS for the listener's routes: exactly the configured origins, never credentials."""

    route = ""  # upload, download

    def _allowed_origin(self) -> str | None:
        origin = self.request.headers.get("Origin")
        return origin if origin and origin in self.settings["transfer_allowed_origins"] else None

    def set_default_headers(self):
        super().set_default_headers()
        self.set_header("Vary", "Origin")
        origin = self._allowed_origin()
        if origin is not None:  # also after send_error, which clears the headers: errors stay readable
            self.set_header("Access-Control-Allow-Origin", origin)
            self.set_header("Access-Control-Expose-Headers", EXPOSE_HEADERS)

    async def prepare(self):
        if self.request.method == "OPTIONS":
            return  # a preflight carries no token: it is answered from the settings alone
        await super().prepare()

    async def options(self):
        origin = self.request.headers.get("Origin")
        if origin is not None and self._allowed_origin() is None:
            raise Forbidden(f"Origin: {origin!r} is not one of BackendAIService.transfer_allowed_origins",
                            field="Origin")
        if origin is not None:
            self.set_header("Access-Control-Allow-Methods", ALLOW_METHODS[self.route])
            self.set_header("Access-Control-Allow-Headers", ALLOW_HEADERS)
            self.set_header("Access-Control-Max-Age", str(PREFLIGHT_MAX_AGE))
        if self.route == "upload":  # tus discovery
            self.set_header("Tus-Resumable", uploads.TUS_VERSION)
            self.set_header("Tus-Version", uploads.TUS_VERSION)
            self.set_header("Tus-Extension", uploads.TUS_EXTENSIONS)
            self.set_header("Tus-Max-Size", str(uploads.MAX_UPLOAD))
        self.set_status(204)
        self.finish()


class ListenerUploadHandler(_CORS, CompatTusUploadHandler):
    route = "upload"


class ListenerDownloadHandler(_CORS, CompatTusDownloadHandler):
    route = "download"


class ListenerNotFound(web.RequestHandler):
    """Everything else: the listener serves the token routes and nothing of the API."""

    def set_default_headers(self):
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")

    def prepare(self):
        self.set_status(404)
        self.finish(json.dumps({"error": "NotFound", "message": f"no such route: {self.request.path} (the "
                                "transfer listener serves only folders/_/tus/upload and folders/_/tus/download)"}))


def make_transfer_app(main: web.Application, public_url: str, allowed_origins=()) -> web.Application:
    """The listener's application: the token routes under ``public_url``'s path, sharing ``main``'s
    settings (database, storage, the secret that signs the tokens, the culler) as they change."""
    path = urlsplit(public_url).path or "/"
    if not path.endswith("/"):
        path += "/"
    app = web.Application([(f"{path}{TUS_PATH}upload", ListenerUploadHandler),
                           (f"{path}{TUS_PATH}download", ListenerDownloadHandler)],
                          default_handler_class=ListenerNotFound)
    app.settings = ChainMap({"service_prefix": path, "transfer_allowed_origins": frozenset(allowed_origins),
                             "default_handler_class": ListenerNotFound}, main.settings)
    return app


def start_listener(main: web.Application, settings: tuple[str, str, ssl.SSLContext | None],
                   allowed_origins=(), trusted_proxies=LOOPBACK_PROXIES, **server_options) -> HTTPServer:
    """Listen at the bind URL of ``settings`` (:meth:`TransferListenerTraits.transfer_listener_settings`)
    and make ``main``'s request-upload/-download answer URLs under its public URL."""
    bind, public, context = settings
    app = make_transfer_app(main, public, allowed_origins)
    server = ProxiedHTTPServer(app, trusted_proxies=trusted_proxies, ssl_options=context, **server_options)
    parts = urlsplit(bind)
    server.listen(parts.port or (443 if parts.scheme == "https" else 80), address=parts.hostname or "")
    main.settings["transfer_public_url"] = public
    return server
