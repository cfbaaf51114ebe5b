"""File operations inside a folder's root: list, mkdir, move, delete — always through :mod:`.paths`."""

from __future__ import annotations

import errno
import os
import shutil
import stat as st
from datetime import datetime, timezone
from typing import Any

from ..errors import Conflict, InvalidInput, NotFound
from . import paths
from .storage import UPLOAD_DIR, StorageHosts

MAX_ENTRIES = 10000


def check_reserved(rel: str, field: str) -> None:
    if rel.split("/", 1)[0] == UPLOAD_DIR:
        raise InvalidInput(f"{field}: {UPLOAD_DIR!r} holds uploads in progress and is not yours to change",
                           field=field)


def _kind(mode: int) -> str:
    return "dir" if st.S_ISDIR(mode) else "symlink" if st.S_ISLNK(mode) else "file" if st.S_ISREG(mode) else "other"


def _entry(name: str, s: os.stat_result) -> dict:
    return {"name": name, "type": _kind(s.st_mode), "size": s.st_size, "mode": oct(st.S_IMODE(s.st_mode)),
            "permissions": st.filemode(s.st_mode), "mtime": s.st_mtime,
            "modified": datetime.fromtimestamp(s.st_mtime, timezone.utc).isoformat()}


def list_dir(root: str, path: Any) -> list[dict]:
    rel = paths.clean(path)
    if rel:
        check_reserved(rel, "path")
    out = []
    with paths.open_dir(root, rel) as fd:
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
    with paths.open_parent(root, rel) as (fd, name):
        try:
            return _entry(name, os.stat(name, dir_fd=fd, follow_symlinks=False))
        except FileNotFoundError:
            raise NotFound(f"path: no such file or directory {rel!r}", field="path") from None


def mkdir(storage: StorageHosts, root: str, path: Any, *, parents: bool = False, exist_ok: bool = False) -> None:
    rel = paths.clean(path, allow_root=False)
    check_reserved(rel, "path")
    parts = rel.split("/")
    for i in range(1 if parents else len(parts), len(parts) + 1):
        sub = "/".join(parts[:i])
        last = i == len(parts)
        with paths.open_parent(root, sub) as (fd, name):
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
    check_reserved(src_rel, "src")
    check_reserved(dst_rel, "dst")
    if dst_rel == src_rel or dst_rel.startswith(src_rel + "/"):
        raise InvalidInput(f"dst: cannot move {src_rel!r} into itself", field="dst")
    with paths.open_parent(root, src_rel, field="src") as (sfd, sname), \
            paths.open_parent(root, dst_rel, field="dst") as (dfd, dname):
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
    check_reserved(rel, "path")
    with paths.open_parent(root, rel) as (fd, name):
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
