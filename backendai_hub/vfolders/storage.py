"""Storage hosts (name -> root directory) and the on-disk life of folders: create, quota, usage, remove."""

from __future__ import annotations

import json
import os
import shutil
from typing import Callable, Iterator

from traitlets import Dict, Integer, Unicode, default, validate
from traitlets import Enum as TEnum
from traitlets.config import SingletonConfigurable

from ..errors import InsufficientStorage, InvalidInput, NotFound, QuotaExceeded, StorageError, TenancyError
from ..session_user import SESSION_GID, SESSION_UID
from .quota import LoopbackQuota, QuotaError

UPLOAD_DIR = ".upload"  # partial tus uploads, inside the folder so they count against its quota
IMAGES_DIR = ".images"  # loopback quota images, beside the folders of a host


def parse_hosts(text: str) -> dict[str, str]:
    """``local=/srv/vfolders,nfs=/mnt/nfs`` or a JSON object."""
    text = text.strip()
    if not text:
        return {}
    if text.startswith("{"):
        return {str(k): str(v) for k, v in json.loads(text).items()}
    out = {}
    for item in text.split(","):
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ValueError(f"storage host {item!r} is not name=/path")
        out[name.strip()] = path.strip()
    return out


class StorageHosts(SingletonConfigurable):
    """Where vfolders live. The hub (mounts) and the REST service (files) must agree on it."""

    hosts = Dict(
        key_trait=Unicode(), value_trait=Unicode(),
        help="""Storage hosts: name -> root directory holding that host's folders.

        Domains, groups and keypair policies allow hosts by name (``allowed_vfolder_hosts``).
        Defaults to ``$BACKENDAI_HUB_VFOLDER_HOSTS`` (``name=/path,...``) or one host ``local`` at
        ``$BACKENDAI_HUB_STATE/vfolders`` (the working directory's ``vfolders`` without it).
        """,
    ).tag(config=True)

    @default("hosts")
    def _default_hosts(self):
        env = os.environ.get("BACKENDAI_HUB_VFOLDER_HOSTS", "")
        if env.strip():
            return parse_hosts(env)
        state = os.environ.get("BACKENDAI_HUB_STATE") or "."
        return {"local": os.path.abspath(os.path.join(state, "vfolders"))}

    @validate("hosts")
    def _check_hosts(self, proposal):
        hosts = dict(proposal["value"])
        for name, root in hosts.items():
            if not name or "/" in name or not os.path.isabs(root):
                raise ValueError(f"storage host {name!r}: the root {root!r} must be an absolute path")
        return hosts

    default_host = Unicode(
        help="Host of new folders when a request names none. Defaults to "
             "``$BACKENDAI_HUB_VFOLDER_DEFAULT_HOST`` or ``local``.",
    ).tag(config=True)

    @default("default_host")
    def _default_default_host(self):
        return os.environ.get("BACKENDAI_HUB_VFOLDER_DEFAULT_HOST", "local")

    quota_backend = TEnum(
        ("none", "loopback"),
        help="""How folder quotas are enforced.

        ``none``: only the REST API checks quotas (uploads); sessions can write past them.
        ``loopback``: each folder with a quota is an ext4 image loop-mounted at its root, so writes
        past the quota fail with ENOSPC inside sessions too. Needs root, mkfs.ext4 and a free loop
        device per folder in use (see backendai_hub/vfolders/README.md).
        Defaults to ``$BACKENDAI_HUB_VFOLDER_QUOTA`` or ``none``.
        """,
    ).tag(config=True)

    @default("quota_backend")
    def _default_quota_backend(self):
        return os.environ.get("BACKENDAI_HUB_VFOLDER_QUOTA", "none")

    uid = Integer(SESSION_UID, help="Owner (uid) of folders and uploaded files: the session user.").tag(config=True)
    gid = Integer(SESSION_GID, help="Group (gid) of folders and uploaded files.").tag(config=True)

    def environment(self) -> dict[str, str]:
        """These settings as the environment of the REST service (``hub_service(environment=...)``)."""
        return {"BACKENDAI_HUB_VFOLDER_HOSTS": json.dumps(self.hosts),
                "BACKENDAI_HUB_VFOLDER_DEFAULT_HOST": self.default_host,
                "BACKENDAI_HUB_VFOLDER_QUOTA": self.quota_backend}

    # -- layout -----------------------------------------------------------------------------------

    def root(self, host: str) -> str:
        if host not in self.hosts:
            raise InvalidInput(f"host: {host!r} is not a configured storage host "
                               f"(configured: {', '.join(sorted(self.hosts)) or 'none'})", field="host")
        return self.hosts[host]

    def path(self, host: str, vfid: str) -> str:
        return os.path.join(self.root(host), vfid[:2], vfid)

    def image(self, host: str, vfid: str) -> str:
        return os.path.join(self.root(host), IMAGES_DIR, f"{vfid}.img")

    @property
    def loopback(self) -> LoopbackQuota:
        return LoopbackQuota(self.uid, self.gid)

    def uses_image(self, host: str, vfid: str) -> bool:
        return os.path.exists(self.image(host, vfid))

    def check_quota(self, quota: int | None) -> None:
        if quota is not None and self.quota_backend == "loopback":
            try:
                LoopbackQuota.check_size(quota)
            except ValueError as e:
                raise InvalidInput(f"quota: {e}", field="quota") from None

    # -- life of a folder ---------------------------------------------------------------------------

    def chown(self, path: str, *, dir_fd: int | None = None) -> None:
        # sessions run as uid/gid: what the service creates must be theirs, or they cannot write it
        if os.geteuid() == 0:
            os.chown(path, self.uid, self.gid, dir_fd=dir_fd, follow_symlinks=False)

    def create(self, host: str, vfid: str, quota: int | None) -> str:
        path = self.path(host, vfid)
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        if self.quota_backend == "loopback" and quota is not None:
            try:
                self.loopback.create(self.image(host, vfid), path, quota)
            except QuotaError as e:
                raise StorageError(f"cannot set up the quota of the new folder: {e}") from None
        else:
            os.mkdir(path, 0o755)
            self.chown(path)
        return path

    def ready_path(self, host: str, vfid: str) -> str:
        """The folder's root, with its quota image mounted; a clear error when the data is gone."""
        path = self.path(host, vfid)
        if self.uses_image(host, vfid):
            try:
                self.loopback.ensure_mounted(self.image(host, vfid), path)
            except QuotaError as e:
                raise StorageError(f"the folder's storage is not available: {e}") from None
        elif not os.path.isdir(path):
            raise NotFound(f"the folder's data is missing on storage host {host!r}", field="vfolder")
        return path

    def resize(self, host: str, vfid: str, quota: int | None) -> None:
        if not self.uses_image(host, vfid):
            return  # enforced by the API only: nothing on disk changes
        if quota is None:
            raise InvalidInput("quota: a folder with a loopback quota cannot become unlimited", field="quota")
        try:
            self.loopback.grow(self.image(host, vfid), self.path(host, vfid), quota)
        except ValueError as e:
            raise InvalidInput(f"quota: {e}", field="quota") from None
        except QuotaError as e:
            raise StorageError(f"cannot grow the folder's quota: {e}") from None

    def destroy(self, host: str, vfid: str) -> None:
        path = self.path(host, vfid)
        if self.uses_image(host, vfid):
            try:
                self.loopback.destroy(self.image(host, vfid), path)
            except QuotaError as e:
                raise StorageError(f"cannot remove the folder's storage: {e}") from None
        else:
            shutil.rmtree(path, ignore_errors=True)

    def full_error(self, host: str, vfid: str) -> Callable[[], TenancyError]:
        """What a write into the folder that finds no space left means: its own quota filesystem is full
        (413), or the storage host itself is (507, whatever the folder's quota says)."""
        if self.uses_image(host, vfid):
            return lambda: QuotaExceeded("the vfolder is full: its quota is reached")
        return lambda: InsufficientStorage(f"the storage host {host!r} is full (no space left on device); an "
                                           f"upload keeps what it wrote: resume it once there is room (HEAD "
                                           f"gives the offset) or abort it (DELETE)")

    def free_bytes(self, host: str, vfid: str) -> int | None:
        """What the filesystem itself still takes (loopback quotas); None when only the API counts."""
        if not self.uses_image(host, vfid):
            return None
        return LoopbackQuota.free_bytes(self.path(host, vfid))


def walk(root: str) -> Iterator[os.DirEntry]:
    """Every entry below ``root`` without following links (iterative: deep trees never recurse)."""
    stack = [root]
    while stack:
        try:
            it = os.scandir(stack.pop())
        except OSError:
            continue
        with it:
            for entry in it:
                yield entry
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)


def usage(path: str) -> tuple[int, int]:
    """(bytes, number of files) of a folder, partial uploads included (they hold space too)."""
    size = count = 0
    uploads = os.path.join(path, UPLOAD_DIR) + os.sep
    for entry in walk(path):
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if entry.is_file(follow_symlinks=False):
            size += st.st_size
            count += not entry.path.startswith(uploads)
    return size, count
