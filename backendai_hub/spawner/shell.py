"""[shell] The web shell: a named server ("shell") on the CLI image, with every folder its user may mount,
a persistent home under a hard quota, and a keypair of its own, issued at start and revoked at stop.

The home is a loopback quota image on the default storage host (vfolders/quota.py), named by the user's
id, mounted at /home/work; the vfolders are bind-mounted over it at /home/work/<name>, so wiping the
home (reset) never reaches them.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Sequence

from sqlalchemy import select
from sqlalchemy.orm import object_session
from traitlets import HasTraits, Unicode

from .. import admission as S
from .. import policy as P
from ..errors import Forbidden, InvalidInput, NotFound
from ..models import KeyPair, User, VFolderStatus
from ..session_user import SESSION_HOME
from ..tenancy import keypairs
from ..vfolders import StorageHosts
from ..vfolders import permissions as A
from .. import host_permissions as H
from ..vfolders.lookup import host_grants_for, list_for
from . import records
from ..vfolders.mounts import Mount, Mountable, mounts_for, plan_mounts, subject_of

SHELL_APP = "shell"
# how the folders a user reaches rank when two share a name (as in mounts_for): own first
_RANK = {A.OWNER: 0, A.GROUP: 1, A.OVERRIDE: 1, A.INVITED: 2, A.PUBLIC: 3}
_HOME_NS = uuid.UUID("6f0c8a52-3d5e-4e7f-9a51-5e2b9f4c1d10")


def home_id(user_id: int) -> str:
    """The id of a user's shell home on the storage host (32 hex digits, like a vfolder's)."""
    return uuid.uuid5(_HOME_NS, f"shell-home:{user_id}").hex


def all_mounts(folders: Sequence[Mountable], *, home: str = SESSION_HOME) -> list[Mount]:
    """Every folder the user may mount (own, group, invited, public: not those an admin merely sees),
    one per name (the best ranked; a tie goes to the older id order), with its permission."""
    best: dict[str, Mountable] = {}
    for f in sorted(folders, key=lambda f: (_RANK.get(f.via, 9), f.id)):
        if f.via in _RANK and f.name not in best:
            best[f.name] = f
    return mounts_for([f.id for f in best.values()], list(best.values()), home=home)


def plan_shell_mounts(s, storage: StorageHosts, username: str) -> list[Mount]:
    """The mounts of a shell session: all the user's mountable folders, where the host grants
    mount-in-session (reads only; :func:`prepare_mounts` makes them real)."""
    user = s.scalar(select(User).where(User.username == username))
    if user is None:
        raise Forbidden(f"hub user {username!r} has no backendai-hub account")
    grants = host_grants_for(s, user)
    folders = [Mountable(id=vf.id, name=vf.name, path=storage.path(vf.host, vf.id), perm=acc.perm, via=acc.via,
                         host=vf.host)
               for vf, acc in list_for(s, subject_of(user))
               if acc.perm is not None and vf.status == VFolderStatus.ready
               and H.MOUNT_IN_SESSION in grants.get(vf.host, ())]
    return all_mounts(folders)


def ensure_home(storage: StorageHosts, user_id: int, quota: int) -> str:
    """Blocking: the user's shell home, created with its quota the first time, mounted; its host path."""
    vfid = home_id(user_id)
    host = storage.default_host
    try:
        return storage.ready_path(host, vfid)
    except NotFound:
        return storage.create(host, vfid, quota)


def wipe_home(storage: StorageHosts, user_id: int) -> None:
    """Blocking: remove a user's shell home (the next start makes an empty one). Only the home's own
    image or directory is touched: the user's vfolders live elsewhere."""
    storage.destroy(storage.default_host, home_id(user_id))


def issue_session_keypair(s, box, username: str, session_id: int | None) -> tuple[str, str]:
    """A keypair for one shell session, under the policy of the user's main keypair; (access, secret).
    It belongs to the session ``session_id``: when that ends (stopped, failed, released by the
    reconciler), admission's release deletes the key."""
    user = s.scalar(select(User).where(User.username == username))
    main = s.get(KeyPair, user.main_access_key) if user is not None and user.main_access_key else None
    if main is None:
        raise Forbidden(f"user {username!r} has no main keypair: an admin must issue one before a shell session")
    if not main.is_active:
        raise Forbidden(f"the main keypair of {username!r} is inactive: a shell session gets no keys")
    kp, secret = keypairs.issue(s, box, {"user": username, "resource_policy": main.resource_policy.name})
    kp.session_id = session_id
    return kp.access_key, secret


def revoke_session_keypair(s, access_key: str) -> bool:
    """End a session's keypair (idempotent; :func:`admission.retire_keypair`); whether it existed."""
    kp = s.get(KeyPair, access_key)
    if kp is None:
        return False
    S.retire_keypair(s, kp)
    return True


class ShellMixin(HasTraits):
    """Mixed into the spawner: the server named ``shell_server_name`` is a web shell session."""

    shell_server_name = Unicode(
        "shell", help="The named server that is a web shell: the CLI image, all the user's mountable vfolders, "
                      "a persistent home under ``shell_home_quota`` and a keypair of its own (revoked at stop). "
                      "Empty: no web shell.",
    ).tag(config=True)

    shell_image = Unicode(
        "backendai-hub/shell:latest", help="Image of web shell sessions (kernels/shell/; its label "
                                           "ai.backend.service-ports offers the 'shell' app).",
    ).tag(config=True)

    shell_home_quota = Unicode(
        "1g", help="Hard quota of a user's persistent shell home (/home/work), with the vfolders' quota images "
                   "(StorageHosts.quota_backend 'loopback'; at least 8 MiB).",
    ).tag(config=True)

    shell_url = Unicode(
        "/terminals/shell", help="Where a shell session lands (Notebook 7's terminal page; every tab attaches to the "
                                      "same tmux session).",
    ).tag(config=True)

    shell_service = Unicode(
        "backendai", help="The hub-managed service whose URL a shell gets as $BACKEND_ENDPOINT.",
    ).tag(config=True)

    shell_access_key: str | None = None  # the live session's keypair
    _shell_reset = False

    @property
    def is_shell(self) -> bool:
        return bool(self.shell_server_name) and self.name == self.shell_server_name

    def _shell_options(self, raw: dict) -> dict:
        """A shell session's options: the shell image and app unless asked otherwise; vfolders are all of
        them. ``reset_home: true`` (a shell's only extra option) wipes the home before it starts."""
        if not self.is_shell:
            return raw
        reset = raw.pop("reset_home", False)
        if not isinstance(reset, bool):
            raise InvalidInput("reset_home: must be true or false", field="reset_home")
        self._shell_reset = reset
        return {"image": self.shell_image, "app": SHELL_APP, **raw}

    def _plan_mounts(self, s, opts) -> list[Mount]:
        if self.is_shell and not opts.vfolders:
            return plan_shell_mounts(s, self.storage_hosts, self.user.name)
        return plan_mounts(s, self.storage_hosts, self.user.name, opts.vfolders)

    async def _shell_setup(self) -> None:
        """The home mount, the session keypair and the CLI's environment (after the network: the
        endpoint is the proxy's address as the session reaches it)."""
        if not self.is_shell:
            return
        quota = int(P.parse_amount("mem", self.shell_home_quota))
        user = self.user.name
        uid = await self._db(lambda s: s.scalar(select(User.id).where(User.username == user)))
        loop = asyncio.get_running_loop()
        if self._shell_reset:
            await loop.run_in_executor(None, wipe_home, self.storage_hosts, uid)
            await self._db(lambda s: records.append(s, self, "reset", description="shell home wiped"))
            self._shell_reset = False
            self._forget_reset()
        path = await loop.run_in_executor(None, ensure_home, self.storage_hosts, uid, quota)
        home = Mount(source=path, target=SESSION_HOME, read_only=False)
        # the persistent home replaces the jail's scratch tmpfs there (which would hide it)
        self.extra_host_config["tmpfs"] = {k: v for k, v in self.extra_host_config.get("tmpfs", {}).items()
                                           if k != SESSION_HOME}
        # the home first: Docker mounts parents before children, the vfolders land on top of it
        self.extra_host_config["mounts"] = [home.docker(), *self.extra_host_config.get("mounts", [])]
        await self._shell_revoke()  # a key left by a crash of the hub
        self.shell_access_key, secret = await self._db(
            lambda s: issue_session_keypair(s, self.database.secrets, user, self.session_id))
        origin = (self.hub_connect_url or "").rstrip("/")
        base = self.hub.base_url.removesuffix("hub/")
        self.environment = {**self.environment, "BACKEND_ENDPOINT": f"{origin}{base}services/{self.shell_service}",
                            "BACKEND_ENDPOINT_TYPE": "api", "BACKEND_ACCESS_KEY": self.shell_access_key,
                            "BACKEND_SECRET_KEY": secret}
        self.default_url = self.shell_url
        self.log.info("%s: shell session with keypair %s and home %s", self._log_name, self.shell_access_key, path)

    def _forget_reset(self) -> None:
        """The hub keeps a start's options as the defaults of the next one: a reset is done once."""
        self.user_options = {k: v for k, v in (self.user_options or {}).items() if k != "reset_home"}
        orm = getattr(self, "orm_spawner", None)
        if orm is not None and orm.user_options and "reset_home" in orm.user_options:
            orm.user_options = dict(self.user_options)
            session = object_session(orm)
            if session is not None:
                session.commit()

    async def _shell_revoke(self) -> None:
        """Revoke the session's keypair (at stop, and when a start fails)."""
        key, self.shell_access_key = self.shell_access_key, None
        if key:
            if await self._db(lambda s: revoke_session_keypair(s, key)):
                self.log.info("%s: revoked the session keypair %s", self._log_name, key)

    def get_state(self):
        state = super().get_state()
        if self.shell_access_key:
            state["shell_access_key"] = self.shell_access_key
        return state

    def load_state(self, state):
        super().load_state(state)
        self.shell_access_key = state.get("shell_access_key") or self.shell_access_key
