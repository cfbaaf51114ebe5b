"""The spawner glue: JupyterHub hooks over DockerSpawner, calling the pure builders.

``start()`` reads as its steps: options, tenancy and mount plan -> admission (maybe queued) -> mounts
-> container options -> network -> create and start -> egress -> record -> listening. Whatever
a failed start reserved is released.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

from dockerspawner import DockerSpawner
from tornado import web
from traitlets import Bool, Dict, Float, Unicode, default

from .. import metrics
from ..accelerators import Accelerators  # [accelerators]
from .. import policy as P
from .. import admission as S
from ..db import Database, instance_id
from ..errors import AdmissionDenied, ServiceUnavailable, TenancyError
from ..models import AuditStatus
from ..images import DEFAULT_ALIASES, ImageCatalog
from ..vfolders import StorageHosts
from ..vfolders.mounts import Mount, mountable, prepare_mounts
from .jail import jail_create_kwargs, jail_host_config
from .apps import AppsMixin
from .code_log import CodeLogMixin
from .shell import ShellMixin
from .sidebar import SidebarMixin
from .usage import UsageMixin
from .jail_settings import JailSettingsMixin
from . import form, records, releasing
from .names import container_token, legacy_firewall_tag, oauth_client_id, session_labels
from .networking import NetworkingMixin
from .once import once
from .readiness import ReadinessMixin
from .options import SessionOptions, options_from_form, parse_options

_catalogs: dict[tuple, ImageCatalog] = {}
_engine_info: dict[str, dict] = {}  # the engine's CPUs and memory, asked once per hub process


class BackendAISpawner(JailSettingsMixin, SidebarMixin, CodeLogMixin, ReadinessMixin, ShellMixin, UsageMixin,
                       AppsMixin, NetworkingMixin, DockerSpawner):
    """Launches each session as a jailed container, admitted within every resource policy."""

    # -- settings ------------------------------------------------------------------------------------

    @default("image")
    def _default_image(self):
        return "backendai-hub/notebook:latest"

    @default("pull_policy")
    def _default_pull_policy(self):
        # images are built air-gapped on this host; never reach for a registry implicitly
        return "never"

    @default("remove")
    def _default_remove(self):
        return True

    default_resources = Dict(
        {"cpu": "1", "mem": "1g"},
        help="Resource slots a session gets when it asks for none (raised to an image's minimums).",
    ).tag(config=True)

    resource_presets = Dict(
        {"small": "cpu=1,mem=1g", "medium": "cpu=2,mem=4g", "large": "cpu=4,mem=16g"},
        help="Named presets offered in the options form (only those within the user's policy are shown).",
    ).tag(config=True)

    image_aliases = Dict(
        DEFAULT_ALIASES,
        help="Short names users may give for images, mapped to local tags (the service's images route "
             "shows the same: hub_service copies them).",
    ).tag(config=True)

    host_capacity = Dict(
        help="Slots this host offers (e.g. {'cpu': 8, 'mem': '32g'}); default: the engine's CPUs and memory.",
    ).tag(config=True)

    queue_timeout = Float(
        300, help="Seconds a session that fits the policy may wait in the queue for free host capacity; "
                  "0 refuses it at once.",
    ).tag(config=True)

    queue_poll_interval = Float(2, help="Seconds between attempts to leave the queue.").tag(config=True)

    pin_cpus = Bool(True, help="Pin sessions to whole CPUs (cpuset) so that nproc matches the cpu slot.").tag(
        config=True)

    firewall = Bool(
        True, help="Guard the host from sessions and apply each keypair policy's egress with iptables "
                   "(needs root). Off only where another layer isolates sessions.",
    ).tag(config=True)

    @default("network_name")
    def _default_network_name(self):
        return "backendai-hub"

    name_template = Unicode(
        help="""Name of a session's container, with DockerSpawner's replacements ({prefix}, {username},
        {servername}, ...) and {session_token}, a random token drawn at each start.

        Default: "{prefix}-{session_token}". Docker's embedded DNS answers every container's name to
        every session on the session network (and each address back to its name), so a name made of
        the user or server would tell other tenants who runs which server; an opaque name tells them
        nothing. Operators find a session's container by its labels ai.backend.hub.user,
        ai.backend.hub.server and ai.backend.hub.session. A running session keeps the name it started
        with (it is kept in the server's state). A template with {username} and {servername} (both
        escaped injectively, with "--" between them) is unique too, but resolvable by other sessions.""",
    ).tag(config=True)

    @default("name_template")
    def _default_name_template(self):
        return "{prefix}-{session_token}"

    # -- state ---------------------------------------------------------------------------------------

    session_id: int | None = None
    _options: SessionOptions | None = None
    _container_token: str | None = None

    @property
    def database(self) -> Database:
        return Database.instance(parent=self)

    @property
    def storage_hosts(self) -> StorageHosts:
        return StorageHosts.instance(config=self.config)

    @property
    def accelerators(self) -> Accelerators:  # [accelerators] plugins, configured like the spawner
        return Accelerators.instance(parent=self)

    @property
    def catalog(self) -> ImageCatalog:
        key = tuple(sorted(self.image_aliases.items()))
        if key not in _catalogs:
            _catalogs[key] = ImageCatalog(lambda: self.client, self.image_aliases)
        return _catalogs[key]

    @property
    def server_oauth_client_id(self) -> str:
        """This server's OAuth client id, injective over (user, server) (JupyterHub's default is not)."""
        return oauth_client_id(self.user.name, self.name)

    def load_state(self, state):
        """Restore a server's state: JupyterHub calls it right after creating the spawner."""
        super().load_state(state)
        self.session_id = state.get("session_id")
        self._container_token = state.get("container_token") or self._container_token
        self.firewall_tag = state.get("firewall_tag") or (
            None if self.session_id is None else legacy_firewall_tag(self.session_id))
        if "oauth_client_id" in state:
            self.oauth_client_id = state["oauth_client_id"]
        elif not state.get("object_id"):
            self.oauth_client_id = self.server_oauth_client_id
        else:
            # a session started before our client ids keeps the one it was started with, which the
            # hub recorded; JupyterHub passed its default, the same unless the hub's formula changed
            orm_spawner = getattr(self, "orm_spawner", None)
            self.oauth_client_id = getattr(orm_spawner, "oauth_client_id", None) or self.oauth_client_id

    def get_state(self):
        state = super().get_state()
        state["oauth_client_id"] = self.oauth_client_id
        if self.session_id is not None:
            state["session_id"] = self.session_id
        if self.firewall_tag is not None:
            state["firewall_tag"] = self.firewall_tag
        if self.object_id and self._container_token:
            state["container_token"] = self._container_token
        return state

    def clear_state(self):
        """Forget the session; the next start (User.spawn clears the state first) gets fresh names."""
        super().clear_state()
        self.session_id = None
        self.firewall_tag = None
        if getattr(self, "user", None) is not None:
            self.oauth_client_id = self.server_oauth_client_id

    def template_namespace(self):
        """DockerSpawner's replacements, injective over (user, server), and this start's {session_token}."""
        ns = super().template_namespace()
        # DockerSpawner lowercases the server name before escaping it: 'B' and 'b' (names older hubs
        # allowed) would share a container or volume name
        ns["servername"] = self.escape(self.name)
        ns["session_token"] = self.session_token
        return ns

    @property
    def session_token(self) -> str:
        """The random part of this start's container name (drawn anew at each start; see name_template)."""
        if self._container_token is None:
            self._container_token = container_token()
        return self._container_token

    async def _db(self, fn):
        """Run ``fn(session)`` in one transaction on an executor thread."""
        def work():
            with self.database.session() as s:
                return fn(s)

        return await asyncio.get_running_loop().run_in_executor(None, work)

    # -- capacity ------------------------------------------------------------------------------------

    async def _host(self) -> tuple[dict[str, Decimal], int]:
        """The host's capacity and CPU count (the engine's, unless configured)."""
        async def engine_info():
            info = await self.docker("info")
            return {"cpu": int(info["NCPU"]), "mem": int(info["MemTotal"])}

        info = await once(_engine_info, "engine", engine_info)
        await self.accelerators.ready()  # [accelerators] discovery (NVML) once, on an executor
        capacity = {"cpu": Decimal(info["cpu"]), "mem": Decimal(info["mem"]), **self.accelerators.capacity()}
        if self.host_capacity:
            capacity = {**capacity, **P.parse_slots(self.host_capacity, field="host_capacity")}
        return capacity, info["cpu"]

    @property
    def known_slots(self) -> set[str]:
        return {"cpu", "mem"} | self.accelerators.slot_names()  # [accelerators]

    # -- options form --------------------------------------------------------------------------------

    @default("apply_user_options")
    def _default_apply_user_options(self):
        # options are validated and applied by start(), where the tenancy and images are at hand
        return lambda spawner, user_options: None

    @default("options_form")
    def _default_options_form(self):
        return BackendAISpawner.render_options_form

    async def render_options_form(self) -> str:
        """The options form: only allowed images, the user's groups, presets within the policy."""
        images = await asyncio.get_running_loop().run_in_executor(None, self.catalog.images)

        def tenancy(s):
            charge = S.resolve(s, self.user.name)
            return charge, P.effective_limits(charge.levels), mountable(s, self.storage_hosts, self.user.name)

        try:
            charge, limits, folders = await self._db(tenancy)
        except TenancyError as e:
            return form.render_error(e.message)
        return form.render(images, charge, limits, self.resource_presets, self.catalog.resolve(self.image),
                           self.known_slots, folders)

    def options_from_form(self, formdata):
        data = options_from_form(formdata, tuple(sorted(self.known_slots)))
        preset = (formdata.get("preset") or [""])[0]
        if preset and "resources" not in data and preset in self.resource_presets:
            data["resources"] = self.resource_presets[preset]
        return data

    # -- start, step by step --------------------------------------------------------------------------

    _events: list[dict]

    def _event(self, progress: int, message: str) -> None:
        self.log.info("%s: %s", self._log_name, message)
        if not hasattr(self, "_events"):
            self._events = []
        self._events.append({"progress": progress, "message": message})

    async def progress(self):
        """Yield stage events (queued / admitted / creating / starting / waiting) as they happen."""
        sent = 0
        while True:
            events = getattr(self, "_events", [])
            while sent < len(events):
                yield events[sent]
                sent += 1
            if self._spawn_future is None or self._spawn_future.done():
                break
            await asyncio.sleep(0.25)

    async def start(self):
        """Validate options, admit within every policy, then start the jailed container."""
        self._events = []
        started = time.monotonic()
        self._name_container()
        try:
            opts, charge, mounts = await self._resolve_request()
            allocation = await self._admit(opts, charge)
            await self._mount(mounts)
        except TenancyError as e:
            metrics.DENIALS.labels(reason=metrics.reason_label(e)).inc()
            self.log.warning("Refused session for %s: %s", self._log_name, e.message)
            # refused before admission wrote anything (else the release did); a database that is down
            # records nothing, and its 503 is what the user must see
            if self.session_id is None and not isinstance(e, ServiceUnavailable):
                reason = e.message
                await self._db(lambda s: records.append(s, self, "admit", AuditStatus.rejected, reason))
            raise web.HTTPError(e.status, e.message) from None
        metrics.ADMISSIONS.inc()
        metrics.STAGE.labels(stage="admission").observe(time.monotonic() - started)
        self._event(30, f"admitted to group {charge.group!r}: {P.format_slots(opts.resources)}")
        try:
            self._apply(opts, charge, allocation, mounts)
            await self._ensure_network()
            await self._code_log_env()  # [code-log]
            await self._shell_setup()  # [shell]
            self._event(40, "creating the container")
            t = time.monotonic()
            ip_port = await self.launch_container()
            metrics.STAGE.labels(stage="container").observe(time.monotonic() - t)
            await self._allow_egress(ip_port[0], charge)
            await self._db(lambda s: (S.mark_running(s, self.session_id, self.container_id),
                                      records.append(s, self, "start", description=f"container {self.object_name}")))
            self._event(80, "waiting for the server to answer")
            await self.wait_until_listening(*ip_port)
            return ip_port
        except BaseException as e:
            await self._release("failed to start")
            if isinstance(e, ServiceUnavailable):  # the database went away mid-start: its 503, not a 500
                raise web.HTTPError(e.status, e.message) from None
            raise

    def _name_container(self) -> None:
        """A fresh container name for this start (the default one is opaque: see name_template)."""
        self._container_token = container_token()
        self.object_name = self.name_template.format(**self.template_namespace())

    async def _resolve_request(self) -> tuple[SessionOptions, S.Charge, list[Mount]]:
        """Options, who is charged and the mount plan, all checked; nothing is changed yet."""
        self._event(5, "checking the request against your policies")
        await asyncio.get_running_loop().run_in_executor(None, self.catalog.images)
        raw = self._shell_options(dict(self.user_options or {}))  # [shell]
        group = raw.get("group") if isinstance(raw.get("group"), str) else None
        charge = self._charge = await self._db(lambda s: S.resolve(s, self.user.name, group))
        opts = parse_options(raw, resolve_image=self.catalog.resolve, default_image=self.image,
                             default_resources=P.parse_slots(self.default_resources, field="default_resources"),
                             allowed_images=charge.allowed_images)
        self._options = opts
        self._check_image_labels(opts)  # [apps] run-as-root, envs.userid: refused before admission
        # refuse unknown or unreachable vfolders before anything is admitted
        mounts = await self._db(lambda s: self._plan_mounts(s, opts))  # [shell]: all folders in a shell
        return opts, charge, mounts

    async def _admit(self, opts: SessionOptions, charge: S.Charge) -> dict:
        """Record the session within every policy, waiting in the queue for host capacity; its allocation."""
        capacity, host_cpus = await self._host()
        queue = self.queue_timeout > 0
        deadline = time.monotonic() + self.queue_timeout

        def attempt(s, queued_id=None):
            row = S.admit(s, charge, server_name=self.name or "", image=opts.image.ref, app=opts.app,
                          request=opts.resources, known_slots=self.known_slots, capacity=capacity, queue=queue,
                          queued_id=queued_id, host_cpus=host_cpus if self.pin_cpus else None,
                          allocator=self.accelerators.allocator())  # [accelerators]
            if row.status != S.SessionStatus.queued:
                records.append(s, self, "admit", description=f"group {charge.group!r}: "
                               f"{P.format_slots(opts.resources)}", sid=row.id)
            return row.id, row.status, S.queue_position(s, row.id), dict(row.allocation or {})

        sid, status, position, allocation = await self._db(attempt)
        self.session_id = sid
        try:
            while status == S.SessionStatus.queued:
                self._event(10, f"queued for free capacity: position {position}")
                if time.monotonic() > deadline:
                    await self._release("left the queue: timed out")
                    raise AdmissionDenied(f"waited {self.queue_timeout:.0f} s in the queue without free capacity",
                                            level="host")
                await asyncio.sleep(self.queue_poll_interval)
                sid, status, position, allocation = await self._db(lambda s: attempt(s, sid))
        except asyncio.CancelledError:
            # the user stopped the server while it waited: the hub cancels start(), we leave the queue
            await self._release("left the queue: cancelled")
            raise
        return allocation

    async def _mount(self, mounts: list[Mount]) -> None:
        """Once admitted: mount the planned folders' quota images and record the mounts."""
        sid = self.session_id
        try:
            await self._db(lambda s: prepare_mounts(s, self.storage_hosts, mounts, sid))
        except BaseException as e:
            await self._release("vfolder mounts refused" if isinstance(e, TenancyError) else "failed to start")
            raise

    def _apply(self, opts: SessionOptions, charge: S.Charge, allocation: dict, mounts: list[Mount]) -> None:
        """Container options from the admitted request (pure builders)."""
        self.image = opts.image.ref
        mem = opts.resources.get("mem")
        devices = self.accelerators.container_options(allocation)  # [accelerators]
        self.extra_host_config = devices.apply_to_host_config(jail_host_config(
            self.jail_settings, cpu=opts.resources.get("cpu"), mem_bytes=None if mem is None else int(mem),
            cpuset=allocation.get("cpuset") or None), base_mounts=self.mount_binds)
        # vfolders at /home/work/<name>, read-only where the effective permission is ro
        self.extra_host_config["mounts"] = [*self.extra_host_config.get("mounts", self.mount_binds),
                                            *(m.docker() for m in mounts)]
        # removed by stop(), by poll() once it has exited, or by the reconciler, never by the engine itself:
        # Docker before 24.0 removes a running auto-remove container when it restarts with live-restore
        # (moby/moby#46308), which would end every session that live-restore is there to keep
        self.extra_host_config["auto_remove"] = False
        # no hostname, aliases or links: other sessions resolve each of them (Docker's embedded DNS)
        self.extra_create_kwargs = {**jail_create_kwargs(self.jail_settings),
                                    "labels": session_labels(self.user.name, self.name, self.session_id,
                                                             instance_id(self.database.url))}
        self.environment = {**self.environment,
                            "BACKENDAI_SESSION_ID": str(self.session_id),
                            "BACKENDAI_GROUP": charge.group,
                            "BACKENDAI_DOMAIN": charge.domain,
                            "BACKENDAI_RESOURCES": P.format_slots(opts.resources),
                            **devices.environment}  # [accelerators] last: neither users nor images set these
        self._apply_app(opts)  # [apps] landing URL, uid/gid variables, root where allowed

    async def check_allowed(self, image):
        # DockerSpawner's own image check: ours already resolved aliases and policy in _resolve_request
        return self._options.image.ref if self._options else self.image

    # -- the engine: tests/mocking.py replaces these to test the glue without Docker -------------------

    async def launch_container(self) -> tuple[str, int]:
        """Create and start the session container (DockerSpawner's start); its (ip, port)."""
        return await super().start()

    async def remove_container(self, now: bool = False) -> None:
        """Stop and remove the container (DockerSpawner's stop); it clears the state."""
        await super().stop(now=now)

    async def container_status(self):
        """None while the container runs, else its exit status (DockerSpawner's poll)."""
        return await super().poll()

    async def discard_exited_container(self) -> None:
        """Remove the container once it has exited (what the engine's auto-remove did; see ``_apply``)."""
        if self.object_id:
            await super().remove_object()  # one already gone or being removed is no error

    # -- stop, poll, release --------------------------------------------------------------------------

    async def _release(self, reason: str, sid: int | None = None, tag: str | None = None) -> None:
        """Free what the session holds (its egress rules, its row's slots and devices), recorded."""
        await releasing.release(self, reason, self.session_id if sid is None else sid,
                                self.firewall_tag if tag is None else tag)

    async def stop(self, now=False):
        # DockerSpawner.stop clears the state; the hub deletes the server's OAuth client by
        # oauth_client_id after stop() returns, so the id in use is put back (clear_state follows)
        sid, tag, client_id = self.session_id, self.firewall_tag, self.oauth_client_id
        await self._usage_snapshot(sid)  # [usage] the closing sample's figures, while the container is there
        try:
            await self.remove_container(now)
        finally:
            self.oauth_client_id = client_id
            await self._release("stopped", sid, tag)

    async def poll(self):
        sid, tag = self.session_id, self.firewall_tag
        status = await self.container_status()
        if status is not None:
            try:
                await self.discard_exited_container()
            finally:
                await self._release(f"container exited ({status})", sid, tag)
        return status
