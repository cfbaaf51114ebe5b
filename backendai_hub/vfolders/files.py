"""File operations inside a folder's root: list, mkdir, move, delete — always through :mod:`.paths`."""

from __future__ import annotations

import errno
import os
import shutil
import stat as st
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from ..errors import Conflict, InvalidInput, NotFound
from . import paths
from .storage import UPLOAD_DIR, StorageHosts

MAX_ENTRIES = 10000


RESERVED = (UPLOAD_DIR,)  # what users never reach, by any path (paths.resolve checks where links lead)


def _kind(mode: int) -> str:
    return "dir" if st.S_ISDIR(mode) else "symlink" if st.S_ISLNK(mode) else "file" if st.S_ISREG(mode) else "other"


def _entry(name: str, s: os.stat_result) -> dict:
    return {"name": name, "type": _kind(s.st_mode), "size": s.st_size, "mode": oct(st.S_IMODE(s.st_mode)),
            "permissions": st.filemode(s.st_mode), "mtime": s.st_mtime,
            "modified": datetime.fromtimestamp(s.st_mtime, timezone.utc).isoformat()}


def list_dir(root: str, path: Any) -> list[dict]:
    rel = paths.clean(path)
    out = []
    with paths.open_dir(root, rel, reserved=RESERVED) as fd:
        for name in sorted(os.listdir(fd)):
            if not rel and name == UPLOAD_DIR:
                continue
            try:
                out.append(_entry(name, os.stat(name, dir_fd=fd, follow_symlinks=False)))
            except FileNotFoundError:
                continue  # removed meanwhile
            if len(out) >= MAX_ENTRIES:
                break
    return out


def stat(root: str, path: Any) -> dict:
    rel = paths.clean(path)
    if not rel:
        return _entry("", os.stat(paths.resolve(root, "")))
    with paths.open_parent(root, rel, reserved=RESERVED) as (fd, name):
        try:
            return _entry(name, os.stat(name, dir_fd=fd, follow_symlinks=False))
        except FileNotFoundError:
            raise NotFound(f"path: no such file or directory {rel!r}", field="path") from None


def mkdir(storage: StorageHosts, root: str, path: Any, *, parents: bool = False, exist_ok: bool = False) -> None:
    rel = paths.clean(path, allow_root=False)
    parts = rel.split("/")
    for i in range(1 if parents else len(parts), len(parts) + 1):
        sub = "/".join(parts[:i])
        last = i == len(parts)
        with paths.open_parent(root, sub, reserved=RESERVED) as (fd, name):
            try:
                os.mkdir(name, 0o755, dir_fd=fd)
                storage.chown(name, dir_fd=fd)
            except FileExistsError:
                if not st.S_ISDIR(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                    raise Conflict(f"path: {sub!r} exists and is not a directory", field="path") from None
                if last and not (exist_ok or parents):
                    raise Conflict(f"path: {sub!r} already exists", field="path") from None
            except OSError as e:
                _translate(e, "path", sub)


def move(root: str, src: Any, dst: Any, *, overwrite: bool = False) -> None:
    """Rename or move an entry (the entry itself, never a link's target) within the folder."""
    src_rel = paths.clean(src, field="src", allow_root=False)
    dst_rel = paths.clean(dst, field="dst", allow_root=False)
    if dst_rel == src_rel or dst_rel.startswith(src_rel + "/"):
        raise InvalidInput(f"dst: cannot move {src_rel!r} into itself", field="dst")
    with paths.open_parent(root, src_rel, field="src", reserved=RESERVED) as (sfd, sname), \
            paths.open_parent(root, dst_rel, field="dst", reserved=RESERVED) as (dfd, dname):
        try:
            os.stat(sname, dir_fd=sfd, follow_symlinks=False)
        except FileNotFoundError:
            raise NotFound(f"src: no such file or directory {src_rel!r}", field="src") from None
        exists = True
        try:
            os.stat(dname, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            exists = False
        if exists and not overwrite:
            raise Conflict(f"dst: {dst_rel!r} already exists", field="dst")
        try:
            os.rename(sname, dname, src_dir_fd=sfd, dst_dir_fd=dfd)
        except OSError as e:
            _translate(e, "dst", dst_rel)


def delete(root: str, path: Any, *, recursive: bool = False) -> None:
    rel = paths.clean(path, allow_root=False)
    with paths.open_parent(root, rel, reserved=RESERVED) as (fd, name):
        try:
            mode = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
        except FileNotFoundError:
            raise NotFound(f"path: no such file or directory {rel!r}", field="path") from None
        try:
            if st.S_ISDIR(mode):
                if recursive:
                    shutil.rmtree(name, dir_fd=fd)  # symlink-attack safe: works on descriptors
                else:
                    os.rmdir(name, dir_fd=fd)
            else:
                os.unlink(name, dir_fd=fd)
        except OSError as e:
            if e.errno == errno.ENOTEMPTY:
                raise Conflict(f"path: directory {rel!r} is not empty; delete it with recursive=true",
                               field="path") from None
            _translate(e, "path", rel)


def _translate(e: OSError, field: str, rel: str) -> None:
    if e.errno == errno.ENOSPC or e.errno == errno.EDQUOT:
        raise Conflict(f"{field}: the vfolder is full (its quota is reached)", field=field) from None
    if e.errno in (errno.ENOTDIR, errno.EISDIR, errno.EINVAL, errno.ENOTEMPTY, errno.EEXIST):
        raise Conflict(f"{field}: {rel!r}: {e.strerror}", field=field) from None
    if e.errno == errno.ENAMETOOLONG:
        raise InvalidInput(f"{field}: {rel!r} is too long", field=field) from None
    raise e


_SPECIAL = {st.S_IFIFO: "named pipe", st.S_IFSOCK: "socket", st.S_IFCHR: "character device",
            st.S_IFBLK: "block device"}
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def copy_tree(src_root: str, dst_root: str, *, uid: int | None = None, gid: int | None = None,
              progress: Callable[[int, str], None] | None = None) -> None:
    """Copy a folder's content into another folder's (empty) root, descriptor by descriptor.

    Sessions may change the source while it is copied, so nothing is followed: every directory is
    reopened from the root with ``O_NOFOLLOW`` at each component, files are opened with
    ``O_NOFOLLOW | O_NONBLOCK`` and copied only if the descriptor is a regular file, links are
    copied as links. A named pipe, socket or device fails the copy with its name. Modes (without
    set-id bits) and modification times are kept; with ``uid``, everything is owned by the session
    user. ``progress(bytes, path)`` after each file. Uploads in progress are not copied.
    """
    src_real, dst_real = os.path.realpath(src_root), os.path.realpath(dst_root)
    pending = [""]
    while pending:
        rel = pending.pop()
        parts = rel.split("/") if rel else []
        sfd = paths._walk(src_real, parts, "path", rel or "/")
        try:
            dfd = paths._walk(dst_real, parts, "path", rel or "/")
            try:
                for name in sorted(os.listdir(sfd)):
                    if not rel and name == UPLOAD_DIR:
                        continue
                    child = f"{rel}/{name}" if rel else name
                    if _copy_entry(sfd, dfd, name, child, uid, gid, progress):
                        pending.append(child)
            finally:
                os.close(dfd)
        finally:
            os.close(sfd)


def _copy_entry(sfd: int, dfd: int, name: str, child: str, uid: int | None, gid: int | None,
                progress: Callable[[int, str], None] | None) -> bool:
    """Copy one entry; True for a directory (its content is copied later)."""
    try:
        s = os.stat(name, dir_fd=sfd, follow_symlinks=False)
    except FileNotFoundError:
        return False  # removed meanwhile
    if st.S_ISLNK(s.st_mode):
        os.symlink(os.readlink(name, dir_fd=sfd), name, dir_fd=dfd)
    elif st.S_ISDIR(s.st_mode):
        os.mkdir(name, 0o700, dir_fd=dfd)
    elif st.S_ISREG(s.st_mode):
        _copy_file(sfd, dfd, name, child, progress)
    else:
        kind = _SPECIAL.get(st.S_IFMT(s.st_mode), "special file")
        raise InvalidInput(f"{child!r} is a {kind}, which cannot be copied", field="path")
    if uid is not None:
        os.chown(name, uid, gid if gid is not None else -1, dir_fd=dfd, follow_symlinks=False)
    if not st.S_ISLNK(s.st_mode):
        os.chmod(name, st.S_IMODE(s.st_mode) & 0o1777, dir_fd=dfd, follow_symlinks=True)
    os.utime(name, ns=(s.st_atime_ns, s.st_mtime_ns), dir_fd=dfd, follow_symlinks=False)
    return st.S_ISDIR(s.st_mode)


def _copy_file(sfd: int, dfd: int, name: str, child: str, progress: Callable[[int, str], None] | None) -> None:
    try:
        src = os.open(name, _READ_FLAGS, dir_fd=sfd)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENXIO):  # swapped for a link or a special file meanwhile
            raise InvalidInput(f"{child!r} changed while it was copied; try again", field="path") from None
        raise
    try:
        s = os.fstat(src)
        if not st.S_ISREG(s.st_mode):
            raise InvalidInput(f"{child!r} changed while it was copied; try again", field="path")
        dst = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd)
        try:
            copied, in_kernel = 0, hasattr(os, "copy_file_range")
            while True:
                try:
                    n = os.copy_file_range(src, dst, 1 << 30) if in_kernel else os.sendfile(dst, src, None, 1 << 30)
                except OSError as e:
                    if not in_kernel or e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                        raise
                    in_kernel = False  # folders on different filesystems (loopback images)
                    continue
                if n == 0:
                    break
                copied += n
        finally:
            os.close(dst)
    finally:
        os.close(src)
    if progress is not None:
        progress(copied, child)
