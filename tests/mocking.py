"""Failure-mode BackendAISpawners (as in JupyterHub's mocking.py) and a hub that drives them, without Docker."""

from __future__ import annotations

import asyncio
import socket
import uuid
from dataclasses import dataclass, field

from jupyterhub import orm, roles
from jupyterhub.oauth.provider import make_provider
from jupyterhub.objects import Hub
from jupyterhub.user import User
from tornado import httpserver, netutil, web
from traitlets import Any, Float, default
from traitlets.config import Config

from backendai_hub.images import KERNELSPEC_LABEL, ImageCatalog
from backendai_hub.spawner.network import SessionNetwork
from backendai_hub.spawner.spawner import BackendAISpawner

GiB = 1 << 30
NOTEBOOK = "backendai-hub/notebook:latest"


class FakeEngine:
    """What the glue reads from the engine's API (``info``, ``images``); anything else is a test failure."""

    def __init__(self, ncpu: int = 8, mem: int = 32 * GiB, tags: tuple[str, ...] = (NOTEBOOK,)):
        self.ncpu, self.mem, self.tags = ncpu, mem, tags

    def info(self) -> dict:
        return {"NCPU": self.ncpu, "MemTotal": self.mem}

    def images(self, filters: dict | None = None) -> list[dict]:
        assert filters == {"label": KERNELSPEC_LABEL}, filters
        return [{"Id": f"sha256:{i:064x}", "RepoTags": [tag], "Labels": {KERNELSPEC_LABEL: "{}"}}
                for i, tag in enumerate(self.tags, 1)]


class _Answer(web.RequestHandler):
    def get(self, *args):
        self.write({"container": "in-process"})


@dataclass
class FakeContainer:
    """A session container as the spawner set it up: its options, and the server that plays it."""

    id: str
    name: str
    image: str
    environment: dict
    host_config: dict
    create_kwargs: dict
    running: bool = True
    server: httpserver.HTTPServer | None = field(default=None, repr=False)
    port: int = 0


class MockSpawner(BackendAISpawner):
    """BackendAISpawner whose container is an HTTP server in this process; no Docker, no iptables.

    The glue (options, tenancy, admission, queue, mounts, container options, release) is the real
    one; only the steps that reach the engine are replaced. The server answers, so that JupyterHub's
    own ``User.spawn`` sees the session come up. The failure modes are the subclasses below.
    """

    engine = Any(help="The FakeEngine the spawner reads host info and images from.")

    @default("engine")
    def _default_engine(self):
        return FakeEngine()

    container: FakeContainer | None = None
    _mock_catalog: ImageCatalog | None = None

    @property
    def client(self):
        return self.engine

    @property
    def catalog(self) -> ImageCatalog:
        # one catalog per spawner over its own fake engine (the real one is shared per hub process)
        if self._mock_catalog is None:
            self._mock_catalog = ImageCatalog(lambda: self.engine, self.image_aliases)
        return self._mock_catalog

    def setup_network(self, port: int) -> SessionNetwork:
        return SessionNetwork(self.network_name, "mock-network", "bhub-mock", "127.0.0.1", "127.0.0.0/8")

    async def _create_container(self) -> FakeContainer:
        """What DockerSpawner's create does with the options the glue set (``image``, ``extra_*``)."""
        return FakeContainer(id=uuid.uuid4().hex, name=self.object_name, image=self.image, environment=self.get_env(),
                             host_config=dict(self.extra_host_config), create_kwargs=dict(self.extra_create_kwargs))

    async def _serve(self, container: FakeContainer) -> int:
        sockets = netutil.bind_sockets(0, "127.0.0.1")
        container.server = httpserver.HTTPServer(web.Application([(r"/.*", _Answer)]))
        container.server.add_sockets(sockets)
        return sockets[0].getsockname()[1]

    async def launch_container(self) -> tuple[str, int]:
        self.container = container = await self._create_container()
        self.object_id = container.id
        container.port = await self._serve(container)
        return "127.0.0.1", container.port

    async def remove_container(self, now: bool = False) -> None:
        if self.container is not None:
            self.container.running = False
            if self.container.server is not None:
                self.container.server.stop()
        self.object_id = ""
        self.clear_state()

    async def container_status(self):
        # as DockerSpawner: a container that is gone reads as exited with 0
        return None if self.container is not None and self.container.running else 0

    async def discard_exited_container(self) -> None:
        if self.container is not None and not self.container.running:
            self.container = None


class SlowSpawner(MockSpawner):
    """The container takes ``delay`` seconds to create."""

    delay = Float(0.3, help="Seconds the container step takes.").tag(config=True)

    async def launch_container(self) -> tuple[str, int]:
        await asyncio.sleep(self.delay)
        return await super().launch_container()


class BadSpawner(MockSpawner):
    """The engine refuses to start the container: a failure after admission."""

    async def launch_container(self) -> tuple[str, int]:
        self.container = await self._create_container()
        raise RuntimeError("the engine refused to start the container")


class NeverSpawner(MockSpawner):
    """The container step never returns (the hub gives up after ``start_timeout``)."""

    async def launch_container(self) -> tuple[str, int]:
        self.container = await self._create_container()
        await asyncio.Event().wait()


class SilentSpawner(MockSpawner):
    """The container runs but its server never answers (the hub gives up after ``http_timeout``)."""

    async def _serve(self, container: FakeContainer) -> int:
        with socket.socket() as s:  # a port nobody listens on: connections are refused
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]


def spawner_config(db_url: str, crypt_key_file: str, vfolder_root: str, **spawner: object) -> Config:
    """Settings for in-process spawners on our database ``db_url``: no firewall, no accelerators."""
    c = Config()
    c.Database.url = db_url
    c.Database.crypt_key_file = crypt_key_file
    c.StorageHosts.hosts = {"local": vfolder_root}
    c.Accelerators.plugins = []
    c.BackendAISpawner.firewall = False
    c.BackendAISpawner.network_name = "mock-sessions"
    c.BackendAISpawner.hub_connect_url = "http://127.0.0.1:8081"
    c.BackendAISpawner.queue_poll_interval = 0.05
    for name, value in spawner.items():
        setattr(c.BackendAISpawner, name, value)
    return c


class InProcessHub:
    """What JupyterHub gives a spawner: its own ORM (SQLite in memory), its OAuth provider, users,
    ``User.spawn``/``stop``."""

    def __init__(self, config: Config, spawner_class: type[MockSpawner] = MockSpawner):
        self.db = orm.new_session_factory("sqlite://")()
        for role in roles.get_default_roles():
            roles.create_role(self.db, role)
        # the hub's own OAuth client, which JupyterHub.init_db creates
        self.db.add(orm.OAuthClient(identifier="jupyterhub", secret="", redirect_uri="", description="JupyterHub"))
        self.db.commit()
        # as JupyterHub.init_oauth: User.spawn registers each server's OAuth client with it
        self.oauth_provider = make_provider(lambda: self.db, url_prefix="/hub/api/oauth2", login_url="/hub/login")
        self.config = config
        self.spawner_class = spawner_class
        self.users: dict[str, User] = {}

    def user(self, name: str, spawner_class: type[MockSpawner] | None = None) -> User:
        """The hub's user ``name`` (created on first use), spawning with ``spawner_class``."""
        if name not in self.users:
            orm_user = orm.User(name=name)
            self.db.add(orm_user)
            self.db.commit()
            roles.assign_default_roles(self.db, orm_user)
            self.db.commit()
            self.users[name] = User(orm_user, {"db": self.db, "hub": Hub(), "config": self.config, "domain": "",
                                               "internal_ssl": False, "oauth_provider": self.oauth_provider,
                                               "spawner_class": spawner_class or self.spawner_class})
        elif spawner_class is not None:
            self.users[name].settings["spawner_class"] = spawner_class
        return self.users[name]

    def spawn(self, name: str, server: str = "", options: dict | None = None,
              spawner_class: type[MockSpawner] | None = None) -> tuple[MockSpawner, asyncio.Future]:
        """Start a spawn as the hub's spawn handler does; the spawner and the spawn's future."""
        user = self.user(name, spawner_class)
        if server in user.spawners and user.spawners[server]._failed:
            user.spawners.pop(server)  # as User.spawn would: a failed spawner is replaced by a new one
        spawner = user.get_or_create_spawner(server, server)
        # as BaseHandler.spawn_single_user: the spawn is pending, its future kept on the spawner and
        # dropped when done (kept when it failed, so that a failed spawn is not retried implicitly)
        spawner._spawn_pending = True
        future = asyncio.ensure_future(user.spawn(server, options=options or {}))
        spawner._spawn_future = future

        def done(f: asyncio.Future) -> None:
            if f.cancelled() or f.exception() is None:
                spawner._spawn_future = None
            spawner._spawn_pending = False

        future.add_done_callback(done)
        return spawner, future

    async def stop(self, name: str, server: str = "") -> None:
        """What ``DELETE /hub/api/users/<name>/servers/<server>`` does: a pending spawn is cancelled first."""
        user = self.users[name]
        future = user.spawners[server]._spawn_future
        if future is not None and not future.done():
            future.cancel()
            await asyncio.wait([future], timeout=10)  # the handler too gives the cancel a moment
        await user.stop(server)


async def events_until(spawner: MockSpawner, text: str, timeout: float = 10) -> list[dict]:
    """The spawner's progress events, as the hub's progress page reads them, up to one containing ``text``."""
    seen: list[dict] = []

    async def read():
        async for event in spawner.progress():
            seen.append(event)
            if text in event["message"]:
                return

    await asyncio.wait_for(read(), timeout)
    assert any(text in e["message"] for e in seen), (text, seen)
    return seen
