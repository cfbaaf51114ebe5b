"""The service process: its settings (traitlets), how the hub starts it, and its start-up.

The hub passes the service its whole configuration one way: ``hub_service(url, config=c)`` copies
the sections of the classes the service uses from the hub's config into one JSON environment
variable, which :func:`main` loads as the service's traitlets config.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from datetime import timedelta
from urllib.parse import urlparse

import docker
from tornado import ioloop
from tornado.log import enable_pretty_logging
from traitlets import Dict, Float, Integer, TraitError, Unicode, validate
from traitlets.config import Application, Config

from ..accelerators import Accelerators
from ..db import Database
from ..forwarded import Networks, ProxiedHTTPServer
from ..images import DEFAULT_ALIASES
from ..vfolders.storage import StorageHosts
from ..scopes import CUSTOM_SCOPES, SCOPE_CODE_LOG, SCOPE_VFOLDERS
from ..spawner.firewall import Firewall
from .app import make_app, recover
from .key_use import FLUSH_SECONDS, KeyUse
from .culler import SERVICE_SCOPES, Culler
from .session_probe import SessionProbe
from .reconciler import Reconciler
from ..usage.sampling import Sampler
from .shell import SHELL_SCOPES
from .transfer_listener import TransferListenerTraits, hub_origin, start_listener

CONFIG_ENV = "BACKENDAI_HUB_SERVICE_CONFIG"
# the configurables the service process instantiates: their sections of the hub's config reach it
CONFIG_SECTIONS = ("BackendAIService", "Database", "StorageHosts", "Accelerators", "MockPlugin", "CUDAPlugin")
# environment the service inherits from the hub when set there (secrets stay out of the config)
PASSED_ENV = ("BACKENDAI_HUB_CRYPT_KEY", "BACKENDAI_HUB_PASSWORD_COST")


class BackendAIService(TransferListenerTraits, Application):
    """The REST service at ``/services/backendai/``: tenancy admin, vfolders, Backend.AI-compatible routes."""

    name = "backendai-hub-service"
    description = __doc__

    audit_retention_days = Integer(
        0, help="""Days the audit log keeps its rows; older ones are deleted by the service's periodic pass
        (0: keep every row). The cut is recorded in the log, so what stays still verifies
        (``backendai-hub audit verify``). See ``audit_export_dir`` to keep a copy.""",
    ).tag(config=True)

    audit_export_dir = Unicode(
        "", help="""Where rows past ``audit_retention_days`` are written, as JSON lines
        (``audit-<first>-<last>.jsonl``, a new file per cut), before they are deleted; empty: not kept.""",
    ).tag(config=True)

    reconcile_grace = Float(
        600, help="""Seconds a session, container or server is left alone after it appears, before the
        periodic pass reconciles it with the engine and the hub (removing an orphaned container,
        releasing a session the hub does not know, asking the hub to stop a server whose container is
        gone). Longer than the slowest spawn (start_timeout + http_timeout), so that nothing being born
        is touched. 0 turns the reconciler off.""",
    ).tag(config=True)

    cull_interval = Float(
        60, help="Seconds between two passes of the culler that stops sessions past their keypair policy's "
                 "``idle_timeout`` (``idle_timeout_accelerator``) or ``max_session_lifetime``, or mounting a folder their user may no longer "
                 "mount (a change through this service triggers a pass at once; one made with the local CLI "
                 "is caught by the next pass).",
    ).tag(config=True)

    usage_interval = Float(
        60, help="""Seconds between two usage samples of every running session (its container's CPU time,
        memory, disk and network IO from the Docker engine, its accelerators' utilisation from their
        plugins). Counters are cumulative, so a longer interval or a pause (a service restart) loses
        nothing: each sample carries the whole delta since the last; sessions are closed at stop by the
        spawner. 0 turns sampling off (allocated time is still accounted at stop).""",
    ).tag(config=True)

    usage_concurrency = Integer(
        10, help="Containers the usage sampler asks the Docker engine about at once: the engine answers each "
                 "at its next statistics tick (about a second), so a pass over N sessions takes about "
                 "N / usage_concurrency seconds of waiting (docker-py keeps 10 connections to the engine).",
    ).tag(config=True)

    usage_sample_retention = Float(
        90, help="""Days raw usage samples are kept: the culler's pass deletes older ones, but keeps each
        session's latest sample (the next one's delta starts from it). The hourly and daily rollups that
        the usage API, page, CLI and Backend.AI's monthly routes read are kept forever, so only
        ``resource/stats/user/month``'s 15-minute bins and per-session sample series lose older points.
        0 keeps samples forever (about 60 bytes a session a minute).""",
    ).tag(config=True)

    cull_concurrency = Integer(
        8, help="Sessions the culler reads at once (their kernels, terminals and accelerators; each read "
                "waits on that session's server), so that one slow or hung session does not hold up the rest.",
    ).tag(config=True)

    cull_warning = Float(
        300, help="""Seconds before a stop by the culler (idle timeout, ``idle_timeout_accelerator`` or
        max lifetime) that the session is told: a JupyterLab notification and a banner in its open
        terminals say when and why. A stop comes no sooner than this after its warning, so a session
        found overdue unwarned gets this long; activity in the meantime calls an idle stop off. 0: no
        warning.""",
    ).tag(config=True)

    cull_accelerator_window = Float(
        600, help="""Seconds over which a session's accelerator utilisation is averaged (one sample a
        culler pass, the busiest device of the session): while the mean reaches
        ``cull_accelerator_threshold``, the session is active.""",
    ).tag(config=True)

    cull_accelerator_threshold = Float(
        10, help="Utilisation in percent (0-100) of a session's busiest accelerator, averaged over "
                 "``cull_accelerator_window``, at or above which the session counts as active.",
    ).tag(config=True)

    @validate("cull_warning", "cull_accelerator_window", "cull_accelerator_threshold", "usage_sample_retention")
    def _culling_bounds(self, proposal):
        value, name = proposal["value"], proposal["trait"].name
        top = 100 if name == "cull_accelerator_threshold" else float("inf")
        if not 0 <= value <= top:
            raise TraitError(f"BackendAIService.{name} must be between 0 and {top:g}, not {value!r}")
        return value

    @validate("cull_concurrency")
    def _positive_concurrency(self, proposal):
        if proposal["value"] < 1:
            raise TraitError(f"BackendAIService.cull_concurrency must be at least 1, not {proposal['value']!r}")
        return proposal["value"]

    max_clock_skew = Float(
        900, help="Seconds a keypair-signed request's Date may differ from the service's clock (Backend.AI: "
                  "15 minutes); signatures are remembered this long to refuse replays.",
    ).tag(config=True)

    image_aliases = Dict(
        DEFAULT_ALIASES,
        help="Short image names shown by the ``images`` route, as the spawner's. ``hub_service`` copies "
             "``BackendAISpawner.image_aliases`` here unless this is set.",
    ).tag(config=True)

    http_chunk_size = Integer(
        1 << 20,
        help="Bytes a streamed body (a tus PATCH) reaches its handler in: each piece is one recv and one trip "
             "through the event loop, so tornado's 64 KiB default bounded uploads.",
    ).tag(config=True)

    http_max_buffer_size = Integer(
        64 << 20, help="Largest body read whole (JSON; transfers are streamed), in bytes.",
    ).tag(config=True)

    trusted_proxies = Networks(
        help="IP addresses or networks (CIDR) of the proxies in front of the service (the hub's "
             "configurable-http-proxy on this host by default): only their X-Forwarded-For and "
             "X-Forwarded-Proto say the client's address (access log) and scheme (upload URLs); from "
             "any other peer those headers are ignored, and X-Real-Ip always is. As "
             "``BackendAIAuthenticator.trusted_proxies`` for the hub.",
    ).tag(config=True)

    code_log_retention = Float(
        0, help="Days code-log records are kept: the culler's pass deletes older ones (0 keeps them forever; "
                "``backendai-hub code-log prune --before … --export FILE`` exports them first).",
    ).tag(config=True)

    code_log_gap_after = Float(
        300, help="Seconds a running session with code logging on may ship nothing (a batch or a heartbeat; "
                  "sessions send one every 60 s) before the culler's pass records a ``gap`` row for it: its "
                  "records may be missing from then on. 0 records no gaps.",
    ).tag(config=True)

    upload_grant_ttl = Float(
        600, help="""Seconds the upload and download URLs the JupyterLab sidebar hands the browser work (a
        grant names the user, the folder and the upload). An upload running past it goes on to its end
        when sent in one request; a chunked or interrupted one asks for a fresh URL and resumes.""",
    ).tag(config=True)

    @validate("upload_grant_ttl")
    def _grant_ttl_bounds(self, proposal):
        if not 10 <= proposal["value"] <= 86400:
            raise TraitError(f"BackendAIService.upload_grant_ttl must be between 10 and 86400, not {proposal['value']!r}")
        return proposal["value"]

    def http_server_options(self) -> dict:
        return {"chunk_size": self.http_chunk_size, "max_buffer_size": self.http_max_buffer_size}

    def start(self) -> None:
        enable_pretty_logging()
        logging.getLogger().setLevel(logging.INFO)
        log = logging.getLogger("backendai_hub.service")
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/backendai/")
        url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:10101"))
        db = Database.instance(config=self.config)
        db.ensure_schema()
        Accelerators.instance(config=self.config)
        app = make_app(db, prefix=prefix, max_clock_skew=timedelta(seconds=self.max_clock_skew),
                       image_aliases=self.image_aliases, storage=StorageHosts.instance(config=self.config),
                       upload_grant_ttl=self.upload_grant_ttl)
        recover(app)
        ProxiedHTTPServer(app, trusted_proxies=self.trusted_proxies, **self.http_server_options()).listen(
            url.port or 80, address=url.hostname or "127.0.0.1")
        if self.usage_interval > 0:  # [usage] beside the culler: sampling needs only the engine and the database
            sampler = app.settings["usage_sampler"] = Sampler(
                db, docker.from_env, accelerators=Accelerators.instance(), interval=self.usage_interval,
                concurrency=self.usage_concurrency)
            ioloop.IOLoop.current().add_callback(sampler.run_forever)
        api_url, token = os.environ.get("JUPYTERHUB_API_URL"), os.environ.get("JUPYTERHUB_API_TOKEN")
        if api_url and token:
            app.settings["hub_api"] = (api_url, token)  # session stops (service/sessions.py)
            culler = app.settings["culler"] = Culler(
                db, api_url, token, interval=self.cull_interval,
                audit_retention=timedelta(days=self.audit_retention_days) if self.audit_retention_days > 0 else None,
                audit_export_dir=self.audit_export_dir or None,
                reconciler=Reconciler(db, docker.from_env(), grace=timedelta(seconds=self.reconcile_grace),
                                      firewall=Firewall() if os.geteuid() == 0 else None)
                if self.reconcile_grace > 0 else None,
                code_log_retention=self.code_log_retention, code_log_gap_after=self.code_log_gap_after,
                probe=SessionProbe(docker.from_env, Accelerators.instance()), warning=self.cull_warning,
                util_window=self.cull_accelerator_window, util_threshold=self.cull_accelerator_threshold,
                concurrency=self.cull_concurrency, usage_retention=self.usage_sample_retention)
            ioloop.IOLoop.current().add_callback(culler.run_forever)
        listener = self.transfer_listener_settings()
        if listener is not None:  # last: it shares the settings made above (the culler's poke)
            start_listener(app, listener, allowed_origins=self.transfer_allowed_origins,
                           trusted_proxies=self.trusted_proxies, **self.http_server_options())
            log.info("transfer listener at %s, public URL %s", listener[0], listener[1])
        log.info("backendai-hub service at %s%s", url.geturl(), prefix)
        loop = ioloop.IOLoop.current()
        key_use = app.settings.setdefault("key_use", KeyUse())  # keypairs' last use, written in batches
        ioloop.PeriodicCallback(lambda: loop.run_in_executor(None, key_use.flush, db), FLUSH_SECONDS * 1000).start()

        def stop(signum, _frame):
            log.info("Stopping on signal %s", signum)
            loop.add_callback_from_signal(loop.stop)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        loop.start()
        key_use.flush(db)  # what the last seconds noted
        db.dispose()


def service_config(config: Config) -> dict:
    """The sections of the hub's ``config`` that the service reads, as plain JSON-able data."""
    out = {name: dict(config[name]) for name in CONFIG_SECTIONS if name in config and config[name]}
    aliases = config["BackendAISpawner"].get("image_aliases") if "BackendAISpawner" in config else None
    if aliases is not None and "image_aliases" not in out.get("BackendAIService", {}):
        out.setdefault("BackendAIService", {})["image_aliases"] = dict(aliases)
    section = out.get("BackendAIService", {})
    if section.get("transfer_bind_url") and "transfer_allowed_origins" not in section:
        origin = hub_origin(config)  # browsers on the hub's pages may upload to the listener
        if origin:
            section["transfer_allowed_origins"] = [origin]
    try:
        json.dumps(out)
    except TypeError as e:
        raise ValueError(f"the service's settings must be plain data (JSON): {e}") from None
    return out


def hub_service_role(name: str = "backendai") -> dict:
    """The role (for ``c.JupyterHub.load_roles``) that lets the service stop overdue servers."""
    return {"name": f"{name}-service", "description": "backendai-hub service: enforce session lifetimes",
            "scopes": sorted({*SERVICE_SCOPES, *SHELL_SCOPES}), "services": [name]}


def hub_service(url: str, *, config: Config | None = None, name: str = "backendai") -> dict:
    """The entry for ``c.JupyterHub.services`` that runs this service under the hub.

    ``config`` is the hub's config (``c`` in ``jupyterhub_config.py``): the service gets the
    sections of ``Database``, ``StorageHosts``, ``BackendAIService`` and the accelerator plugins
    from it, and the spawner's image aliases. Pass it after those are set.
    """
    environment = {CONFIG_ENV: json.dumps(service_config(config if config is not None else Config()))}
    environment.update({k: os.environ[k] for k in PASSED_ENV if os.environ.get(k)})
    return {
        "name": name,
        "url": url,
        "command": [sys.executable, "-m", "backendai_hub.service"],
        "environment": environment,
        # browser sign-ins to the service never carry the code-log and session scopes: only server tokens do
        "oauth_client_allowed_scopes": sorted(set(CUSTOM_SCOPES) - {SCOPE_CODE_LOG, SCOPE_VFOLDERS}),
        "oauth_no_confirm": True,
        "display": True,
    }


def exit_with_parent() -> bool:
    """Linux: be sent SIGTERM when the process that started us (the hub) dies, even by SIGKILL.

    The hub starts the service in a session of its own, so a hub killed outright would leave it
    running; the restarted hub's own service could then not bind the port. Returns whether it is set.
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0) != 0:
        return False
    if os.getppid() == 1:  # the hub died before the call: nothing will signal us
        os.kill(os.getpid(), signal.SIGTERM)
    return True


def main(argv: list[str] | None = None) -> None:
    """Entry point the hub starts (see ``hub_service``)."""
    exit_with_parent()
    service = BackendAIService(config=Config(json.loads(os.environ.get(CONFIG_ENV) or "{}")))
    service.parse_command_line(argv if argv is not None else sys.argv[1:])
    service.start()
