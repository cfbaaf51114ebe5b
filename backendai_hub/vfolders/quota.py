"""Per-folder quotas that hold inside sessions: a sparse ext4 image per folder, loop-mounted at its root.

Why this mechanism: a session writes to its vfolders through bind mounts, directly on the host's
filesystem, so only the kernel can stop it at the quota. Project quotas (XFS/ext4 ``prjquota``)
need the storage filesystem mounted with them, which we cannot assume; a loop-mounted image
works on any filesystem that holds sparse files. A process in a container that writes past the
quota gets ENOSPC ("No space left on device") from the folder's own filesystem, and nothing it
does can touch its neighbours' space. See README.md beside this module for the trade-offs.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from typing import Callable, Sequence

MiB = 1 << 20
MIN_LOOPBACK_QUOTA = 8 * MiB  # ext4's own metadata and journal leave too little below this
_MOUNT_OPTIONS = "loop,nosuid,nodev,noatime"

log = logging.getLogger(__name__)


class QuotaError(RuntimeError):
    """The host could not set up or change a folder's quota (missing tool, no loop device, not root)."""


Runner = Callable[[Sequence[str]], None]


def _run(cmd: Sequence[str], timeout: float = 120) -> None:
    # e2fsck exits 1 when it corrected errors: the filesystem is fine afterwards
    ok = (0, 1) if cmd[0] == "e2fsck" else (0,)
    try:
        done = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
        if done.returncode not in ok:
            raise subprocess.CalledProcessError(done.returncode, cmd, done.stdout, done.stderr)
    except FileNotFoundError:
        raise QuotaError(f"{cmd[0]} is not installed on the storage host") from None
    except subprocess.TimeoutExpired:
        raise QuotaError(f"{cmd[0]} timed out after {timeout:.0f} s") from None
    except subprocess.CalledProcessError as e:
        detail = (e.stderr or e.stdout or "").strip().splitlines()
        raise QuotaError(f"{' '.join(cmd[:2])}: {detail[-1] if detail else f'exit {e.returncode}'}") from None


class LoopbackQuota:
    """Create, mount, grow and destroy one ext4 image per folder (needs root and free loop devices)."""

    def __init__(self, uid: int, gid: int, run: Runner = _run):
        self.uid, self.gid, self._run = uid, gid, run

    @staticmethod
    def check_size(size: int) -> None:
        if size < MIN_LOOPBACK_QUOTA:
            raise ValueError(f"at least {MIN_LOOPBACK_QUOTA // MiB} MiB with loopback quotas")

    def create(self, image: str, mountpoint: str, size: int) -> None:
        self.check_size(size)
        os.makedirs(os.path.dirname(image), mode=0o700, exist_ok=True)
        with open(image, "xb") as f:
            f.truncate(size)  # sparse: takes host space only as the folder fills
        try:
            # -m 0: no blocks reserved for root (sessions never run as root);
            # root_owner: the folder's root belongs to the session user, not to root
            self._run(["mkfs.ext4", "-F", "-q", "-m", "0", "-E", f"root_owner={self.uid}:{self.gid}", image])
            os.makedirs(mountpoint, exist_ok=True)
            self.mount(image, mountpoint)
            lost = os.path.join(mountpoint, "lost+found")
            if os.path.isdir(lost):
                os.rmdir(lost)  # e2fsck recreates it when it needs it
        except BaseException:
            self._cleanup(image, mountpoint)
            raise

    def _cleanup(self, image: str, mountpoint: str) -> None:
        if os.path.ismount(mountpoint):
            try:
                self._run(["umount", mountpoint])
            except QuotaError:
                return  # never delete an image that is still mounted
        for fn in (lambda: os.unlink(image), lambda: os.rmdir(mountpoint)):
            try:
                fn()
            except OSError:
                pass

    def mount(self, image: str, mountpoint: str) -> None:
        self._run(["mount", "-t", "ext4", "-o", _MOUNT_OPTIONS, image, mountpoint])

    def ensure_mounted(self, image: str, mountpoint: str) -> None:
        """Mount the image again after a host reboot; check it first, as a crash may have left it dirty."""
        if os.path.ismount(mountpoint):
            return
        if not os.path.exists(image):
            raise QuotaError(f"quota image {image} is missing")
        os.makedirs(mountpoint, exist_ok=True)
        if os.listdir(mountpoint):
            # writes that landed on the host filesystem would be hidden (and unquoted): refuse
            raise QuotaError(f"{mountpoint} is not empty while its quota image is not mounted")
        self._run(["e2fsck", "-p", image], timeout=600)
        self.mount(image, mountpoint)
        log.info("Mounted vfolder image %s at %s", image, mountpoint)

    def grow(self, image: str, mountpoint: str, size: int) -> None:
        """Grow the image, then the filesystem: online where the kernel lets us, else unmounted.

        Online growth (EXT4_IOC_RESIZE_FS) needs more than some hosts grant (user namespaces,
        restricted containers); offline growth needs the folder not to be mounted by a session.
        """
        self.check_size(size)
        if size < os.path.getsize(image):
            raise ValueError("loopback quotas only grow; copy the folder into a smaller one instead")
        self.ensure_mounted(image, mountpoint)
        device = subprocess.run(["findmnt", "-n", "-o", "SOURCE", "--target", mountpoint],
                                capture_output=True, text=True, check=False).stdout.strip()
        with open(image, "r+b") as f:
            f.truncate(size)
        if device.startswith("/dev/loop"):
            try:
                self._run(["losetup", "-c", device])
                self._run(["resize2fs", device], timeout=600)
                return
            except QuotaError as e:
                log.info("Online resize of %s refused (%s); resizing it unmounted", image, e)
        try:
            self._run(["umount", mountpoint])
        except QuotaError as e:
            raise QuotaError(f"the folder is in use (a session mounts it?); grow it when it is not: {e}") from None
        try:
            self._run(["e2fsck", "-f", "-y", image], timeout=600)
            self._run(["resize2fs", image], timeout=600)
        finally:
            self.mount(image, mountpoint)

    def destroy(self, image: str, mountpoint: str) -> None:
        if os.path.ismount(mountpoint):
            self._run(["umount", mountpoint])
        if os.path.exists(image):
            os.unlink(image)
        shutil.rmtree(mountpoint, ignore_errors=True)

    @staticmethod
    def free_bytes(mountpoint: str) -> int | None:
        if not os.path.ismount(mountpoint):
            return None
        st = os.statvfs(mountpoint)
        return st.f_bavail * st.f_frsize
